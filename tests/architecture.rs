//! The layout ARCHITECTURE.md describes, kept: dependencies among the
//! top-level modules of `src/` point one way (no cycle), and no function
//! outside the tests grows past what can be read at once.
//!
//! A module depends on another when its non-test code names it by a
//! `crate::` path (`use crate::x::Y`, `use crate::{x, y::Z}`, `crate::x::f()`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function (in lines, signature to closing brace) outside tests.
const MAX_FUNCTION_LINES: usize = 100;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file of `src/` (relative path) and its text.
fn sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            (path.strip_prefix(&src).expect("in src").to_owned(), text)
        })
        .collect()
}

/// The top-level module a file belongs to: `wal` for `wal/frame.rs`.
fn top_module(path: &Path) -> String {
    let first = path.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_owned()
}

/// Where the block opened by the `{` at `open` closes.
fn block_end(text: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// The text without `#[cfg(test)] mod ... { ... }` blocks and `//` comments.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let is_module = after["#[cfg(test)]".len()..]
            .trim_start()
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ")
            .starts_with("mod ");
        match after.find('{').filter(|_| is_module) {
            Some(open) => rest = &after[block_end(after, open)..],
            None => {
                out.push_str("#[cfg(test)]");
                rest = &after["#[cfg(test)]".len()..];
            }
        }
    }
    out.push_str(rest);
    out.lines()
        .map(|line| line.find("//").map_or(line, |c| &line[..c]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The top-level modules `code` names by `crate::` paths.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = code.as_bytes();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && is_ident(bytes[at - 1]) {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each path.
            let inner = &group[..block_end(rest, 0) - 2];
            let mut depth = 0;
            let mut start = true;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let len = inner[i..].bytes().take_while(|b| is_ident(*b)).count();
                        names.insert(inner[i..i + len].to_owned());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let len = rest.bytes().take_while(|b| is_ident(*b)).count();
            names.insert(rest[..len].to_owned());
        }
    }
    names
}

/// The graph of top-level modules: each one and those it names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(path, _)| top_module(path))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (path, text) in &files {
        let from = top_module(path);
        let Some(edges) = graph.get_mut(&from) else {
            continue;
        };
        for to in named_modules(&non_test_code(text)) {
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in &graph[node] {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|n| n == next).expect("on the path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph.keys().find_map(|node| {
        (!marks.contains_key(node))
            .then(|| visit(node, graph, &mut marks, &mut Vec::new()))
            .flatten()
    })
}

#[test]
fn top_level_modules_depend_on_each_other_one_way() {
    let graph = module_graph();
    assert!(graph.len() > 10, "modules found: {graph:?}");
    assert!(
        graph["agent"].contains("queue") && graph["wal"].contains("series"),
        "the scan finds dependencies: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "a cycle among top-level modules: {} (give the type they share a home of its own)",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(str::to_owned)
                .collect()
        )
    );
    let code = "use crate::{wal::x, series::{A, B}, clock};\nfn f() { crate::exposition::write(); }\n\
                #[cfg(test)]\nmod tests { use crate::agent; }\n// crate::metrics\n";
    assert_eq!(
        named_modules(&non_test_code(code)),
        ["clock", "exposition", "series", "wal"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}

#[test]
fn no_function_outside_the_tests_is_longer_than_a_screen() {
    let mut long = Vec::new();
    for (path, text) in sources() {
        let code = non_test_code(&text);
        for (at, _) in code.match_indices("fn ") {
            if at > 0 && is_ident(code.as_bytes()[at - 1]) {
                continue;
            }
            // A function with a body: its signature ends at `{` before any `;`.
            let Some(open) = code[at..]
                .find(['{', ';'])
                .filter(|&o| code.as_bytes()[at + o] == b'{')
            else {
                continue;
            };
            let end = block_end(&code, at + open);
            let lines = code[at..end].lines().count();
            if lines > MAX_FUNCTION_LINES {
                let name: String = code[at + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                long.push(format!("{}: {name} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "functions to split: {long:?}");
}

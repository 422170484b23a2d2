//! A small parser of the text exposition format for the tests: series
//! (name plus sorted labels) to value, and names to types.

use std::collections::BTreeMap;

pub type SeriesKey = (String, Vec<(String, String)>);

#[derive(Debug, Default)]
pub struct Page {
    pub values: BTreeMap<SeriesKey, f64>,
    pub types: BTreeMap<String, String>,
    /// `# HELP` texts by family, as written (escapes kept).
    pub helps: BTreeMap<String, String>,
}

impl Page {
    pub fn parse(text: &str) -> Page {
        let mut page = Page::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    page.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                page.helps.insert(name.to_owned(), text.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => (name.to_owned(), parse_labels(rest.trim_end_matches('}'))),
            };
            page.values.insert((name, labels), value);
        }
        page
    }

    /// The type of a sample's family (`x_sum` of a summary is a summary).
    pub fn type_of(&self, name: &str) -> Option<&str> {
        if let Some(t) = self.types.get(name) {
            return Some(t);
        }
        for suffix in ["_sum", "_count", "_bucket"] {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(t) = self.types.get(base)
            {
                return Some(t);
            }
        }
        None
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.values.get(&(name.to_owned(), labels)).copied()
    }

    /// The sum of the series of `name` that have `labels` among theirs
    /// (the agent's remote-write counters carry each endpoint's
    /// `remote_name` and `url`); `None` when there is none.
    pub fn total(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for ((n, have), value) in &self.values {
            let matches = labels
                .iter()
                .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v));
            if n == name && matches {
                *found.get_or_insert(0.0) += value;
            }
        }
        found
    }

    pub fn names(&self) -> std::collections::BTreeSet<&str> {
        self.values.keys().map(|(n, _)| n.as_str()).collect()
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label =\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((name.trim_start_matches(',').to_owned(), value));
        rest = after[end..].trim_start_matches(',');
    }
    labels.sort();
    labels
}

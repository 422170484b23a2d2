//! Property tests over hostile input: the INFO parser and mapper, and the
//! config loader, fed arbitrary bytes and mutated real input, must never
//! panic, and what they produce must stay well formed.
//!
//! 500 cases per property in CI; `FUZZ_CASES=200000 cargo test --release
//! --test hostile_input` for a longer run.

mod common;

use std::path::Path;

use common::exposition::Page;
use common::fixture;
use proptest::prelude::*;
use redpush::testing::Families;
use redpush::testing::Info;
use redpush::testing::write_families;
use redpush::testing::{MapOptions, Reading, ServerConfig, Slowlog, map_reading};
use redpush::testing::{Overrides, Settings};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// Maps `text` as a reading and checks the exposition of the result.
fn map_and_check(text: &str, config: &ServerConfig) -> Result<(), TestCaseError> {
    let info = Info::parse(text);
    let mut families = Families::new();
    let reading = Reading {
        info: &info,
        config: Some(config),
        slowlog: Some(Slowlog::default()),
        extras: Default::default(),
        now_secs: 1.7e9,
    };
    map_reading(&reading, MapOptions::default(), &mut families);
    for family in &families {
        let name = family.name;
        let valid = name.bytes().enumerate().all(|(i, b)| {
            b == b'_' || b == b':' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
        });
        prop_assert!(valid && !name.is_empty(), "invalid metric name {:?}", name);
    }
    let mut out = String::new();
    write_families(&mut out, &families, &[]);
    // Every sample line parses back as one sample (label values escaped,
    // values well formed), and every point of the families has its line.
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    prop_assert_eq!(lines.len(), families.sample_count());
    for line in lines {
        let parsed = std::panic::catch_unwind(|| Page::parse(line).values.len());
        prop_assert_eq!(
            parsed.ok(),
            Some(1),
            "{:?} does not parse as one sample",
            line
        );
    }
    Ok(())
}

/// Lines that look like INFO: real keys, the structured prefixes, and
/// values that are numbers, garbage or `k=v` lists.
fn info_line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("used_memory".to_owned()),
        Just("role".to_owned()),
        Just("master_host".to_owned()),
        Just("master_link_status".to_owned()),
        Just("cluster_enabled".to_owned()),
        Just("uptime_in_seconds".to_owned()),
        "[a-z_]{1,20}",
        "db[0-9]{1,12}",
        "cmdstat_[a-z|]{0,12}",
        "errorstat_[A-Z\"\\\\\n]{0,8}",
        "latency_percentiles_usec_[a-z]{0,6}",
        "slave[0-9]{1,3}",
        "used_active_time_io_thread_[0-9a-z]{0,3}",
        ".{0,12}",
    ];
    let value = prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        Just("ok".to_owned()),
        Just("up".to_owned()),
        "([a-z_.0-9]{0,8}=[-0-9a-z.e]{0,10},?){0,6}",
        ".{0,40}",
    ];
    let section = "# [A-Za-z]{0,12}";
    prop_oneof![
        8 => (key, value).prop_map(|(k, v)| format!("{k}:{v}")),
        1 => section.prop_map(|s| s.to_owned()),
        1 => ".{0,30}".prop_map(|s| s.to_owned()),
    ]
}

fn config_reply() -> impl Strategy<Value = ServerConfig> {
    (any::<Option<u32>>(), ".{0,60}", any::<Option<f64>>()).prop_map(
        |(databases, cobl, maxmemory)| ServerConfig {
            databases,
            client_output_buffer_limit: Some(cobl),
            maxmemory,
            ..ServerConfig::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_break_the_mapper(bytes in proptest::collection::vec(any::<u8>(), 0..4096), config in config_reply()) {
        map_and_check(&String::from_utf8_lossy(&bytes), &config)?;
    }

    #[test]
    fn info_shaped_garbage_never_breaks_the_mapper(lines in proptest::collection::vec(info_line(), 0..120), crlf in any::<bool>(), config in config_reply()) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        map_and_check(&text, &config)?;
    }

    #[test]
    fn mutated_real_info_never_breaks_the_mapper(cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..40)) {
        let mut bytes = fixture("info-redis7.0-primary.txt").into_bytes();
        for (at, byte) in cuts {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        map_and_check(&String::from_utf8_lossy(&bytes), &ServerConfig::default())?;
    }

    #[test]
    fn arbitrary_text_never_breaks_the_config_loader(text in ".{0,400}") {
        if let Err(e) = Settings::from_toml(Path::new("fuzz.toml"), &text, &Overrides::default()) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn mutated_example_config_never_breaks_the_loader(edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, ".{0,12}"), 1..8)) {
        let mut lines: Vec<String> = include_str!("../config/redpush.example.toml").lines().map(str::to_owned).collect();
        for (at, kind, text) in edits {
            let i = at.index(lines.len().max(1));
            match kind {
                0 if !lines.is_empty() => { lines.remove(i); }
                1 => lines.insert(i.min(lines.len()), text),
                _ => if let Some(line) = lines.get_mut(i) { line.push_str(&text); },
            }
        }
        let text = lines.join("\n");
        match Settings::from_toml(Path::new("fuzz.toml"), &text, &Overrides::default()) {
            Ok(settings) => { let _ = settings.to_string(); }
            Err(e) => prop_assert!(e.to_string().contains("fuzz.toml") || e.to_string().contains("default"), "{}", e),
        }
    }
}

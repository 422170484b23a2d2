//! Relabeling end to end: a target's `metric_relabel_configs` shape what
//! `/metrics` and every push get; an endpoint's `write_relabel_configs`
//! only what that endpoint gets. Checked on the agent's page and by
//! querying a real Prometheus that received the pushes. (The rules'
//! semantics, case by case against Prometheus' documented behaviours, are
//! `relabel`'s unit tests.)

mod common;

use std::time::Duration;

use common::servers::{Agent, Receiver, Redis, eventually, redpush_run};

const RULES: &str = r#"
[[targets.metric_relabel_configs]]
source_labels = ["__name__"]
regex = "redis_commands_duration_seconds_total"
action = "drop"

[[targets.metric_relabel_configs]]
source_labels = ["instance"]
regex = ".*:(.*)"
target_label = "port"
"#;

const WRITE_RULES: &str = r#"
[[remote_write.write_relabel_configs]]
source_labels = ["__name__"]
regex = "redis_connected_clients"
action = "drop"

[[remote_write.write_relabel_configs]]
source_labels = ["__name__"]
regex = "redis_uptime_in_(seconds)"
target_label = "__name__"
replacement = "redis_uptime_${1}_renamed"
"#;

#[test]
fn metric_and_write_rules_shape_the_page_and_what_the_receiver_stores() {
    let redis = Redis::start(&[]);
    let prometheus = Receiver::prometheus();
    let port = redis
        .instance()
        .rsplit_once(':')
        .expect("port")
        .1
        .to_owned();
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n{RULES}\n\
         [remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\n{WRITE_RULES}",
        redis.url(),
        prometheus.write_url()
    );
    let agent = Agent::start(&config, &[]);
    let with_port = [("port", port.as_str())];

    // The page: the metric rules apply, the write rules do not.
    let page = agent.wait_page("a relabeled reading", |p| {
        p.get("redis_up", &with_port) == Some(1.0)
            && p.get("redis_connected_clients", &with_port).is_some()
    });
    let names = page.names();
    assert!(names.contains("redis_commands_total"), "{names:?}");
    assert!(
        !names.contains("redis_commands_duration_seconds_total"),
        "dropped by a metric rule: {names:?}"
    );
    assert!(
        page.values
            .keys()
            .filter(|(name, _)| name.starts_with("redis_"))
            .all(|(_, labels)| labels.contains(&("port".to_owned(), port.clone()))),
        "every series of the target has the replaced label"
    );

    // The receiver: both kinds of rules apply.
    let query = |q: &str| prometheus.query(q);
    let selector = format!("{{port=\"{port}\"}}");
    eventually(
        "the relabeled series at the receiver",
        Duration::from_secs(60),
        || query(&format!("redis_up{selector}")),
        |r| r.len() == 1 && r[0].1 == 1.0,
    );
    let renamed = eventually(
        "the renamed series",
        Duration::from_secs(30),
        || query(&format!("redis_uptime_seconds_renamed{selector}")),
        |r| r.len() == 1,
    );
    assert!(renamed[0].1 >= 0.0);
    let commands = query(&format!("redis_commands_total{selector}"));
    assert!(!commands.is_empty(), "a kept family arrived");
    for gone in [
        "redis_commands_duration_seconds_total",
        "redis_connected_clients",
        "redis_uptime_in_seconds",
    ] {
        let found = query(&format!("count({gone})"));
        assert!(found.is_empty(), "{gone} reached the receiver: {found:?}");
    }
    // Nothing of the target arrived without the metric rule's label.
    let unlabeled = query(&format!(
        "count({{instance=\"{}\", port=\"\"}})",
        redis.instance()
    ));
    assert!(unlabeled.is_empty(), "{unlabeled:?}");
}

#[test]
fn check_config_names_a_bad_rule_by_its_index() {
    let dir = tempfile::TempDir::new().expect("dir");
    let path = dir.path().join("redpush.toml");
    std::fs::write(
        &path,
        "[[targets]]\nurl = \"redis://127.0.0.1:6379\"\n\
         [[targets.metric_relabel_configs]]\naction = \"drop\"\nregex = \"x\"\n\
         [[targets.metric_relabel_configs]]\naction = \"labeldrop\"\nsource_labels = [\"a\"]\n",
    )
    .expect("write");
    let (code, out, err) =
        redpush_run(&["check-config", "--config", path.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("redpush.toml:6: `targets[0].metric_relabel_configs[1]`")
            && err.contains("the labeldrop action takes only regex"),
        "{err}"
    );
}

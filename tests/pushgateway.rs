//! Pushing to a real prometheus-pushgateway: the agent's continuous pushes
//! with grouping labels, the agent's own metrics in a group of their own,
//! `redpush once --pushgateway` for batch jobs, and delete_on_shutdown.

mod common;

use std::time::Duration;

use common::exposition::Page;
use common::servers::{Agent, PushgatewayServer, Redis, free_port, redpush_run};
use common::{wait_until, when};

fn wait_page(pg: &PushgatewayServer, what: &str, ok: impl Fn(&Page) -> bool) -> Page {
    wait_until(what, Duration::from_secs(20), || {
        let text = pg.scrape();
        let page = Page::parse(&text);
        let accepted = ok(&page);
        when(accepted, page, || text)
    })
}

#[test]
fn the_agent_pushes_every_target_with_its_grouping_labels() {
    let redis = Redis::start(&[]);
    redis.cli(&["SET", "k", "v"]);
    let pg = PushgatewayServer::start();
    let config = format!(
        "interval = \"1s\"\nadaptive = false\njob = \"cache\"\n[[targets]]\nurl = \"{}\"\n[pushgateway]\nurl = \"{}\"\ninterval = \"1s\"\ngrouping = {{ dc = \"eu west\" }}\ndelete_on_shutdown = true\n",
        redis.url(),
        pg.url()
    );
    let mut agent = Agent::start(&config, &[]);
    let group = [
        ("dc", "eu west"),
        ("instance", redis.instance().leak() as &str),
        ("job", "cache"),
    ];
    let page = wait_page(&pg, "redis_up in its group", |p| {
        p.get("redis_up", &group) == Some(1.0)
    });
    let mut keys = group.to_vec();
    keys.push(("db", "db0"));
    assert_eq!(page.get("redis_db_keys", &keys), Some(1.0));
    // The Pushgateway stamps each push; it refused none (it answers 400 to a timestamp).
    assert!(page.names().contains("push_time_seconds"));
    assert!(page.names().contains("push_failure_time_seconds"));
    let failures: Vec<f64> = page
        .values
        .iter()
        .filter(|((n, _), _)| n == "push_failure_time_seconds")
        .map(|(_, v)| *v)
        .collect();
    assert!(failures.iter().all(|v| *v == 0.0), "{failures:?}");
    // The agent's own metrics sit in a group of their own (without remote
    // write, no endpoint's counters: its agent-wide ones).
    let own = page
        .values
        .keys()
        .find(|(n, _)| n == "redpush_config_last_reload_successful")
        .map(|(_, labels)| labels.clone())
        .expect("agent metrics pushed");
    let instance = own
        .iter()
        .find(|(k, _)| k == "instance")
        .map(|(_, v)| v.clone());
    assert_ne!(instance, Some(redis.instance()));

    // Pushes keep coming: the key count follows the server.
    redis.cli(&["SET", "k2", "v"]);
    wait_page(&pg, "updated reading", |p| {
        p.get("redis_db_keys", &keys) == Some(2.0)
    });

    // delete_on_shutdown removes the groups.
    assert_eq!(
        agent.process.terminate(),
        Some(0),
        "{}",
        agent.process.output()
    );
    let page = Page::parse(&pg.scrape());
    assert_eq!(
        page.get("redis_up", &group),
        None,
        "group left behind:\n{}",
        pg.scrape()
    );
}

#[test]
fn once_pushes_each_target_and_reports_failure_in_its_exit_code() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let pg = PushgatewayServer::start();
    let (code, out, err) = redpush_run(&[
        "once",
        "--redis",
        &a.url(),
        "--redis",
        &b.url(),
        "--pushgateway",
        &pg.url(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    let page = Page::parse(&pg.scrape());
    for r in [&a, &b] {
        let instance = r.instance();
        assert_eq!(
            page.get("redis_up", &[("instance", &instance), ("job", "redis")]),
            Some(1.0)
        );
    }

    // A query (a token a proxy in front wants) stays after the group path.
    let with_query = format!("{}/?token=Tk-S3cret", pg.url());
    let c = Redis::start(&[]);
    let (code, _, err) = redpush_run(&["once", "--redis", &c.url(), "--pushgateway", &with_query]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("Tk-S3cret"), "{err}");
    let page = Page::parse(&pg.scrape());
    assert_eq!(
        page.get("redis_up", &[("instance", &c.instance()), ("job", "redis")]),
        Some(1.0)
    );

    // Nothing listening: exit 3 and the reason.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = redpush_run(&["once", "--redis", &a.url(), "--pushgateway", &nowhere]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Pushgateway request failed"), "{err}");
}

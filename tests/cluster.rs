//! Redis Cluster discovery against a real 3-primary, 3-replica cluster made
//! with `redis-cli --cluster create`: one seed target expands to every node,
//! a killed node reports redis_up 0, an added node becomes a target, and a
//! forgotten node stops being one.

mod common;

use std::process::Command;

use common::servers::{Agent, Redis};

fn cluster_node() -> Redis {
    Redis::start(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
    ])
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn one_seed_expands_to_every_node_and_follows_changes() {
    let nodes: Vec<Redis> = (0..6).map(|_| cluster_node()).collect();
    let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
    create.extend(nodes.iter().map(Redis::instance));
    create.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
    let args: Vec<&str> = create.iter().map(String::as_str).collect();
    redis_cli(&args);
    for node in &nodes {
        node.wait_cluster_ok();
    }

    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\ncluster = true\ndiscovery_interval = \"1s\"\n",
        nodes[0].url()
    );
    let agent = Agent::start(&config, &[]);
    // A node may report cluster_state:ok before gossip has told it of every
    // other node, so the page is waited on until each node's own figures
    // say the cluster is whole, and then checked for every node.
    let page = agent.wait_page("all six nodes sampled, each knowing six", |p| {
        nodes.iter().all(|n| {
            let instance = n.instance();
            p.get("redis_up", &[("instance", &instance)]) == Some(1.0)
                && p.get("redis_cluster_known_nodes", &[("instance", &instance)]) == Some(6.0)
        })
    });
    for n in &nodes {
        let instance = n.instance();
        assert_eq!(
            page.get("redis_cluster_state", &[("instance", &instance)]),
            Some(1.0)
        );
        assert_eq!(
            page.get("redis_cluster_enabled", &[("instance", &instance)]),
            Some(1.0)
        );
    }

    // Kill one node: it stays in CLUSTER NODES (as failed) and reports redis_up 0.
    let mut nodes = nodes;
    let killed = nodes.pop().expect("node");
    let killed_instance = killed.instance();
    let killed_id = nodes[0]
        .cli(&["CLUSTER", "NODES"])
        .lines()
        .find(|l| l.contains(&format!("{killed_instance}@")))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .expect("killed node id");
    drop(killed);
    agent.wait_page("the killed node reports down", |p| {
        p.get("redis_up", &[("instance", &killed_instance)]) == Some(0.0)
    });

    // Add a node: it becomes a target.
    let added = cluster_node();
    redis_cli(&[
        "--cluster",
        "add-node",
        &added.instance(),
        &nodes[0].instance(),
    ]);
    agent.wait_page("the added node is sampled", |p| {
        p.get("redis_up", &[("instance", &added.instance())]) == Some(1.0)
    });

    // Forget the killed node everywhere: it stops being a target.
    for n in nodes.iter().chain([&added]) {
        let _ = n.cli(&["CLUSTER", "FORGET", &killed_id]);
    }
    agent.wait_page("the forgotten node is no target any more", |p| {
        p.get("redis_up", &[("instance", &killed_instance)])
            .is_none()
    });
    assert!(agent.process.output().contains("cluster nodes discovered"));
}

//! Discovery: a target marked `cluster = true` stands for every node of
//! its cluster (`CLUSTER NODES`); a Sentinel marked `sentinel_discovery =
//! true` adds the masters and replicas it watches (`SENTINEL MASTERS`,
//! `SENTINEL SLAVES`). Read periodically; the nodes become targets with the
//! seed's settings (credentials, TLS, labels, intervals), and nodes that
//! join or leave become or stop being targets (the agent's supervisor sends
//! the stale markers of those that left).

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Address, MetricsSettings, TargetSettings};
use crate::redis::replies::{bytes_text, pairs_of};
use crate::redis::sampler::{RoundTrip, SampleError, Sampler};
use crate::untrusted::OneLine;

/// The node addresses of a `CLUSTER NODES` reply, in reply order.
///
/// A line is `<id> <ip:port@cport[,hostname]> <flags> ...`; nodes without
/// an address (`noaddr`, `:0`) or still in `handshake` are left out.
pub(crate) fn cluster_nodes(reply: &str) -> Vec<(String, u16)> {
    let mut nodes = Vec::new();
    for line in reply.lines() {
        let mut parts = line.split_whitespace();
        let (Some(_id), Some(address), Some(flags)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if flags.split(',').any(|f| f == "noaddr" || f == "handshake") {
            continue;
        }
        let endpoint = address.split(['@', ',']).next().unwrap_or("");
        let Some((host, port)) = endpoint.rsplit_once(':') else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if !plausible_host(host) || port == 0 {
            continue;
        }
        if !nodes.iter().any(|(h, p)| h == host && *p == port) {
            nodes.push((host.to_owned(), port));
        }
    }
    nodes
}

/// Whether a node address a server gave is a host name or an IP address.
/// Anything else (control characters, spaces, quotes) is a hostile or
/// broken reply: it would become a target's `instance` label and appear
/// in every log line about it.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'))
}

/// The targets for `nodes`: the seed's settings at each node's address.
pub(crate) fn node_targets(seed: &TargetSettings, nodes: &[(String, u16)]) -> Vec<TargetSettings> {
    nodes
        .iter()
        .map(|(host, port)| {
            let mut t = seed.clone();
            t.address = Address::Tcp {
                host: host.clone(),
                port: *port,
            };
            t.instance = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            // A cluster has database 0 only; the nodes are not seeds themselves.
            if seed.cluster {
                t.db = 0;
            }
            t.cluster = false;
            t.sentinel_discovery = false;
            t
        })
        .collect()
}

/// What a discovery task reports: the seed's instance and its nodes.
pub(crate) type Discovered = (String, Vec<TargetSettings>);

/// Reads `CLUSTER NODES` from `seed` every `seed.discovery_interval` and
/// reports the node set whenever it changes.
pub(crate) async fn run(
    seed: TargetSettings,
    metrics: MetricsSettings,
    updates: mpsc::Sender<Discovered>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = seed.discovery_interval;
    let mut sampler = Sampler::new(seed.clone(), metrics);
    let mut last: Option<Vec<(String, u16)>> = None;
    let mut failing = false;
    let kind = if seed.cluster { "cluster" } else { "sentinel" };
    loop {
        let found = if seed.cluster {
            sampler
                .cluster_nodes()
                .await
                .map(|reply| cluster_nodes(&reply))
        } else {
            sentinel_nodes(&mut sampler).await
        };
        match found {
            Ok(nodes) => {
                failing = false;
                if !nodes.is_empty() && last.as_ref() != Some(&nodes) {
                    info!(
                        seed = seed.instance,
                        nodes = nodes.len(),
                        "{kind} nodes discovered"
                    );
                    last = Some(nodes.clone());
                    if updates
                        .send((seed.instance.clone(), node_targets(&seed, &nodes)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(e) => {
                if !failing {
                    warn!(
                        seed = seed.instance,
                        "{kind} discovery failed, keeping the known nodes: {}",
                        OneLine(e)
                    );
                    failing = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The masters a Sentinel watches and their replicas, as `host:port`.
async fn sentinel_nodes(sampler: &mut Sampler) -> Result<Vec<(String, u16)>, SampleError> {
    let address = |entry: &redis::Value| -> Option<(String, String, u16)> {
        let fields: Vec<(String, String)> = pairs_of(entry)
            .into_iter()
            .filter_map(|(k, v)| Some((bytes_text(k)?, bytes_text(v)?)))
            .collect();
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let ip = get("ip").filter(|ip| plausible_host(ip))?;
        Some((get("name")?, ip, get("port")?.parse().ok()?))
    };
    let mut pipe = redis::pipe();
    pipe.cmd("SENTINEL").arg("MASTERS");
    let masters = match sampler
        .query(&pipe, RoundTrip::SentinelDiscovery)
        .await?
        .into_iter()
        .next()
    {
        Some(redis::Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let mut nodes = Vec::new();
    let mut names = Vec::new();
    for m in &masters {
        if let Some((name, ip, port)) = address(m) {
            nodes.push((ip, port));
            names.push(name);
        }
    }
    if !names.is_empty() {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for name in &names {
            pipe.cmd("SENTINEL").arg("SLAVES").arg(name);
        }
        for replicas in sampler.query(&pipe, RoundTrip::SentinelDiscovery).await? {
            if let redis::Value::Array(items) = replicas {
                nodes.extend(
                    items
                        .iter()
                        .filter_map(address)
                        .map(|(_, ip, port)| (ip, port)),
                );
            }
        }
    }
    let mut unique = Vec::new();
    for node in nodes {
        if !unique.contains(&node) {
            unique.push(node);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_of_a_cluster_nodes_reply() {
        let reply = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,node-4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 noaddr - 0 0 0 disconnected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006 handshake - 0 0 0 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca ::1:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            cluster_nodes(reply),
            vec![
                ("127.0.0.1".to_owned(), 30004),
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
                ("::1".to_owned(), 30001),
            ]
        );
        assert!(cluster_nodes("garbage\n\n:::\nid a b").is_empty());
        // A node address that is no host name never becomes a target.
        assert!(cluster_nodes("id h\u{1b}[2J:7000@17000 master - 0 0 1 connected").is_empty());
        assert!(!plausible_host("a\"b") && !plausible_host("") && plausible_host("fe80::1%eth0"));
    }

    #[test]
    fn node_targets_keep_the_seed_settings() {
        let mut seed = crate::config::parse_target(
            "redis://user:pw@10.0.0.1:7000",
            crate::config::Origin::Default,
            "redis",
        )
        .expect("valid");
        seed.cluster = true;
        seed.labels = vec![("shard".into(), "all".into())];
        let targets = node_targets(&seed, &[("10.0.0.2".into(), 7001), ("::1".into(), 7002)]);
        assert_eq!(targets[0].instance, "10.0.0.2:7001");
        assert_eq!(targets[1].instance, "[::1]:7002");
        assert_eq!(targets[0].username.as_deref(), Some("user"));
        assert_eq!(targets[0].labels, seed.labels);
        assert!(!targets[0].cluster);
    }
}

//! Real servers for the integration tests, each on a free port in a
//! directory of its own, killed when dropped: redis-server, Prometheus with
//! its remote-write receiver, VictoriaMetrics, the Pushgateway, Debian's
//! prometheus-redis-exporter, and redpush itself.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::exposition::Page;
use super::{wait_until, when};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The path of a program the tests need, or a panic that says how to get it.
pub fn program(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} is not installed: the integration tests need it (bash .ci/install-test-deps installs everything)")
    })
}

/// A child process killed on drop, its output in `log`.
pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Process {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Process {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `ready` holds, or panics with the process's output.
pub fn wait_for(process: &Process, what: &str, mut ready: impl FnMut() -> bool) {
    let what = format!("{} ready ({what})", process.name);
    wait_until(&what, Duration::from_secs(60), || {
        when(ready(), (), || process.output())
    });
}

fn http_ok(url: &str) -> bool {
    ureq::get(url).call().is_ok()
}

pub fn http_get(url: &str) -> String {
    let mut response = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response.body_mut().read_to_string().expect("body")
}

// ---------------------------------------------------------------------------

pub struct Redis {
    pub port: u16,
    pub process: Process,
    pub dir: TempDir,
}

/// Arguments that make a redis-server look like managed Redis: CONFIG and
/// SLOWLOG disabled.
pub const MANAGED_REDIS: &[&str] = &[
    "--rename-command",
    "CONFIG",
    "",
    "--rename-command",
    "SLOWLOG",
    "",
];

impl Redis {
    pub fn start(extra: &[&str]) -> Redis {
        Redis::start_binary(&program("redis-server"), extra)
    }

    pub fn start_binary(binary: &Path, extra: &[&str]) -> Redis {
        Redis::start_on(binary, free_port(), extra)
    }

    /// Starts a server on `port` (to bring a stopped target back on its address).
    pub fn start_on(binary: &Path, port: u16, extra: &[&str]) -> Redis {
        let dir = TempDir::new().expect("temp dir");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--dir".to_owned(), dir.path().display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = Process::spawn("redis-server", binary, &args, dir.path());
        let redis = Redis { port, process, dir };
        wait_for(&redis.process, "PING", || redis.answers_ping());
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn instance(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the server answers PING (with PONG, or NOAUTH when it wants a password).
    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 16];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok_and(|n| {
                reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH")
            })
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs one redis-cli command and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// LATENCY HISTOGRAM <cmd> as redis-cli prints it: calls, and each
    /// level's (key in µs, calls at or below it).
    pub fn latency_histogram(&self, cmd: &str) -> (f64, Vec<(String, f64)>) {
        let raw = self.cli(&["LATENCY", "HISTOGRAM", cmd]);
        let lines: Vec<&str> = raw.lines().map(str::trim).collect();
        assert_eq!(lines.first(), Some(&cmd), "{raw}");
        let calls = lines[2].parse().expect("calls");
        let levels = lines[4..]
            .chunks(2)
            .map(|kv| (kv[0].to_owned(), kv[1].parse().expect("count")))
            .collect();
        (calls, levels)
    }

    /// The `usec` of `cmdstat_<cmd>`: the command's total time.
    pub fn cmdstat_usec(&self, cmd: &str) -> f64 {
        self.info_field(&format!("cmdstat_{cmd}"))
            .and_then(|v| {
                v.split(',')
                    .find_map(|p| p.strip_prefix("usec=").map(str::to_owned))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("cmdstat_{cmd} usec"))
    }

    pub fn info_field(&self, field: &str) -> Option<String> {
        let info = self.cli(&["INFO", "ALL"]);
        info.lines().find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{field}:"))
                .map(str::to_owned)
        })
    }

    /// What the server has served so far, from one `INFO ALL` (which the
    /// server counts once it has answered it).
    pub fn served(&self) -> Served {
        let info = self.cli(&["INFO", "ALL"]);
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Served {
            info_calls: field("cmdstat_info:calls="),
            histogram_calls: field("cmdstat_latency|histogram:calls="),
            connections: field("total_connections_received:"),
            error_replies: field("total_error_replies:"),
        }
    }

    /// Starts counting what clients other than the tests' own (the
    /// agent) are served from now on.
    pub fn watch(&self) -> Watch<'_> {
        Watch {
            redis: self,
            since: self.served(),
            own: 0,
        }
    }

    /// Waits until this cluster node says `cluster_state:ok`.
    pub fn wait_cluster_ok(&self) {
        wait_until("cluster_state:ok", Duration::from_secs(30), || {
            let info = self.cli(&["CLUSTER", "INFO"]);
            when(info.contains("cluster_state:ok"), (), || info)
        });
    }

    /// Waits until this replica's link to its primary is up.
    /// Steady SET/GET load from `redis-benchmark` with `clients`
    /// connections until the returned child is killed.
    pub fn load(&self, clients: u32) -> Load {
        let child = Command::new(program("redis-benchmark"))
            .args(["-p", &self.port.to_string(), "-n", "100000000", "-c"])
            .arg(clients.to_string())
            .args(["-t", "set,get", "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-benchmark");
        Load(child)
    }

    pub fn wait_replica_link(&self) {
        wait_for(&self.process, "master_link_status:up", || {
            self.info_field("master_link_status").as_deref() == Some("up")
        });
    }

    /// Waits until this primary lists `n` replicas in state `online`.
    ///
    /// The replica reports its link up while the primary may still show it
    /// as `wait_bgsave`/`send_bulk`; a test comparing two reads of the
    /// primary taken a moment apart needs the state to be settled.
    pub fn wait_replicas_online(&self, n: usize) {
        wait_for(&self.process, "replicas online", || {
            let info = self.cli(&["INFO", "REPLICATION"]);
            info.lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .count()
                >= n
        });
    }
}

// ---------------------------------------------------------------------------

/// A remote-write receiver with a PromQL API: Prometheus (receiver enabled,
/// nothing to scrape) or VictoriaMetrics single-node.
pub struct Receiver {
    pub port: u16,
    pub process: Process,
    pub dir: TempDir,
    /// CA file and user:password when the receiver is behind TLS and basic auth.
    https: Option<(String, String)>,
    /// Prometheus started with native histograms on (kept over a restart).
    native: bool,
}

/// Prometheus' flag for native histograms.
const NATIVE: &[&str] = &["--enable-feature=native-histograms"];

/// A native histogram as the query API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Native {
    pub count: f64,
    pub sum: f64,
    /// (lower, upper, count) of each bucket with a count.
    pub buckets: Vec<(f64, f64, f64)>,
}

impl Native {
    fn of(json: &serde_json::Value) -> Native {
        let number = |v: &serde_json::Value| -> f64 {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a number: {v}"))
        };
        Native {
            count: number(&json["count"]),
            sum: number(&json["sum"]),
            buckets: json["buckets"]
                .as_array()
                .map(|buckets| {
                    buckets
                        .iter()
                        .map(|b| (number(&b[1]), number(&b[2]), number(&b[3])))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl Receiver {
    pub fn prometheus() -> Receiver {
        Receiver::prometheus_scraping("")
    }

    /// Prometheus with native histograms on (2.40+ `--enable-feature`):
    /// remote write takes them, and scrapes ask for the protobuf format.
    /// `scrape_configs` (YAML, may be empty) is added to its configuration.
    pub fn prometheus_native(scrape_configs: &str) -> Receiver {
        let mut receiver = Receiver::prometheus_scraping_with(scrape_configs, NATIVE);
        receiver.native = true;
        receiver
    }

    fn prometheus_scraping(scrape_configs: &str) -> Receiver {
        Receiver::prometheus_scraping_with(scrape_configs, &[])
    }

    fn prometheus_scraping_with(scrape_configs: &str, extra: &[&str]) -> Receiver {
        let dir = TempDir::new().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1m\n{scrape_configs}"),
        )
        .expect("config");
        Receiver::start_prometheus(dir, free_port(), extra)
    }

    fn start_prometheus(dir: TempDir, port: u16, extra: &[&str]) -> Receiver {
        let mut args = vec![
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".to_owned(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        Receiver::spawn("prometheus", &args, dir, port, "/-/ready")
    }

    /// The native histogram samples of a range selector (`metric[5m]`) of
    /// one series, now: (ms since the epoch, histogram) in time order.
    pub fn native_samples(&self, selector: &str) -> Vec<(i64, Native)> {
        let mut response = ureq::get(&format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query("query", selector)
            .call()
            .unwrap_or_else(|e| panic!("query {selector}: {e}"));
        let body = response.body_mut().read_to_string().expect("body");
        let items = result_items(selector, &body);
        assert!(items.len() <= 1, "one series: {body}");
        items
            .first()
            .and_then(|item| item["histograms"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|pair| {
                let seconds = pair[0].as_f64().expect("a timestamp");
                ((seconds * 1000.0).round() as i64, Native::of(&pair[1]))
            })
            .collect()
    }

    /// The native histograms an instant query of `selector` gives, by their labels.
    pub fn native_histograms(&self, selector: &str) -> Vec<(BTreeMap<String, String>, Native)> {
        let mut response = ureq::get(&format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query("query", selector)
            .call()
            .unwrap_or_else(|e| panic!("query {selector}: {e}"));
        let body = response.body_mut().read_to_string().expect("body");
        result_items(selector, &body)
            .iter()
            .filter(|item| item.get("histogram").is_some())
            .map(|item| (labels_of(item), Native::of(&item["histogram"][1])))
            .collect()
    }

    /// VictoriaMetrics, answering queries without its default delay for fresh data.
    pub fn victoria_metrics() -> Receiver {
        Receiver::victoria_metrics_with(&[])
    }

    /// VictoriaMetrics with extra flags (e.g. `-dedup.minScrapeInterval=1s`).
    pub fn victoria_metrics_with(extra: &[&str]) -> Receiver {
        let dir = TempDir::new().expect("temp dir");
        let port = free_port();
        let mut args = vec![
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", dir.path().join("data").display()),
            "-search.latencyOffset=0s".to_owned(),
            "-search.disableCache".to_owned(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        Receiver::spawn("victoria-metrics", &args, dir, port, "/health")
    }

    /// An instant query of a range selector (`metric[5m]`) at `time`: each
    /// series' raw samples as (labels, [(unix seconds, value)]).
    pub fn raw_samples(&self, selector: &str, time: f64) -> Vec<SeriesSamples> {
        let mut response = ureq::get(&format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query("query", selector)
            .query("time", time.to_string())
            .call()
            .unwrap_or_else(|e| panic!("query {selector}: {e}"));
        let body = response.body_mut().read_to_string().expect("body");
        parse_matrix(selector, &body)
    }

    /// A range query (`/api/v1/query_range`): each series' (labels, [(unix seconds, value)]).
    pub fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: &str,
    ) -> Vec<SeriesSamples> {
        let mut response = ureq::get(&format!(
            "http://127.0.0.1:{}/api/v1/query_range",
            self.port
        ))
        .query("query", promql)
        .query("start", start.to_string())
        .query("end", end.to_string())
        .query("step", step)
        .call()
        .unwrap_or_else(|e| panic!("query_range {promql}: {e}"));
        let body = response.body_mut().read_to_string().expect("body");
        parse_matrix(promql, &body)
    }
}

impl Receiver {
    fn spawn(name: &str, args: &[String], dir: TempDir, port: u16, ready_path: &str) -> Receiver {
        let process = Process::spawn(name, &program(name), args, dir.path());
        let receiver = Receiver {
            port,
            process,
            dir,
            https: None,
            native: false,
        };
        let ready = format!("http://127.0.0.1:{port}{ready_path}");
        wait_for(&receiver.process, ready_path, || http_ok(&ready));
        receiver
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    pub fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let Some((ca, auth)) = &self.https else {
            return query(
                &format!("http://127.0.0.1:{}/api/v1/query", self.port),
                promql,
            );
        };
        // The tests' HTTP client has no TLS; curl does.
        let out = Command::new(program("curl"))
            .args(["-s", "--cacert", ca, "-u", auth, "-G", "--data-urlencode"])
            .arg(format!("query={promql}"))
            .arg(format!("https://127.0.0.1:{}/api/v1/query", self.port))
            .output()
            .expect("curl");
        parse_query_answer(promql, &String::from_utf8_lossy(&out.stdout))
    }

    /// Prometheus serving (receiver and API) behind `web_config` (TLS and
    /// basic auth); queries go over HTTPS with `ca_file` and `auth`.
    pub fn prometheus_with_web_config(
        web_config: &Path,
        ca_file: &str,
        auth: (&str, &str),
    ) -> Receiver {
        let dir = TempDir::new().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("config");
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.config.file={}", web_config.display()),
            "--web.enable-remote-write-receiver".to_owned(),
        ];
        let process = Process::spawn("prometheus", &program("prometheus"), &args, dir.path());
        let https = Some((ca_file.to_owned(), format!("{}:{}", auth.0, auth.1)));
        let receiver = Receiver {
            port,
            process,
            dir,
            https,
            native: false,
        };
        wait_for(&receiver.process, "listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        receiver
    }

    /// Starts this Prometheus again (after `process.terminate()`), on the
    /// same port and data directory.
    pub fn restart(self) -> Receiver {
        let Receiver {
            port,
            process,
            dir,
            native,
            ..
        } = self;
        drop(process);
        let mut receiver = Receiver::start_prometheus(dir, port, if native { NATIVE } else { &[] });
        receiver.native = native;
        receiver
    }
}

/// The Prometheus Pushgateway.
pub struct PushgatewayServer {
    pub port: u16,
    pub process: Process,
    pub dir: TempDir,
}

impl PushgatewayServer {
    pub fn start() -> PushgatewayServer {
        let dir = TempDir::new().expect("temp dir");
        let port = free_port();
        let args = vec![format!("--web.listen-address=127.0.0.1:{port}")];
        let process = Process::spawn(
            "prometheus-pushgateway",
            &program("prometheus-pushgateway"),
            &args,
            dir.path(),
        );
        let server = PushgatewayServer { port, process, dir };
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        wait_for(&server.process, "/-/ready", || http_ok(&ready));
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the Pushgateway exposes on its own /metrics.
    pub fn scrape(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.port))
    }
}

/// A TCP server that accepts connections and never answers: a Redis that
/// hangs, which a real server cannot be made to do on command.
pub struct SilentServer {
    pub port: u16,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        SilentServer { port }
    }
}

/// What a misbehaving Redis does after it has read the first command.
#[derive(Clone, Copy, Debug)]
pub enum Misbehaviour {
    /// Bytes that are not RESP.
    Garbage,
    /// A bulk string header announcing a gigabyte, then bytes without end.
    Huge,
    /// Half a reply, then the connection closed.
    ResetMidReply,
    /// An error reply to AUTH that echoes the password it was sent, with a
    /// forged log line and a terminal escape in it.
    EchoAuth,
    /// A server that answers INFO with this many command statistics (a
    /// valid reply far larger than any real server's) and refuses every
    /// other command.
    HugeInfo(usize),
}

/// A fake Redis for the faults a real server cannot be made to produce.
pub struct FakeRedis {
    pub port: u16,
}

impl FakeRedis {
    pub fn start(how: Misbehaviour) -> FakeRedis {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    if let Misbehaviour::HugeInfo(fields) = how {
                        return serve_huge_info(stream, fields);
                    }
                    let mut buf = [0u8; 4096];
                    let read = stream.read(&mut buf).unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    match how {
                        Misbehaviour::Garbage => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 400 Bad Request\r\n\x00\xff\xfe garbage\r\n");
                            std::thread::sleep(Duration::from_secs(30));
                        }
                        Misbehaviour::Huge => {
                            let _ = stream.write_all(b"$1073741824\r\n");
                            let chunk = vec![b'x'; 64 * 1024];
                            while stream.write_all(&chunk).is_ok() {}
                        }
                        Misbehaviour::EchoAuth => {
                            // The request is `*2 $4 AUTH $n <password>`: the
                            // password is its last line.
                            let request = String::from_utf8_lossy(&buf[..read]);
                            let password = request.trim_end().rsplit("\r\n").next().unwrap_or("");
                            // A RESP3 blob error may hold any byte.
                            let words = format!(
                                "WRONGPASS {password} is wrong\nlevel=ERROR msg=forged\u{1b}[2J"
                            );
                            let reply = format!("!{}\r\n{words}\r\n", words.len());
                            let _ = stream.write_all(reply.as_bytes());
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        Misbehaviour::HugeInfo(_) => unreachable!("served above"),
                        Misbehaviour::ResetMidReply => {
                            let _ = stream.write_all(b"$1000\r\n# Server\r\nredis_ver");
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                        }
                    }
                });
            }
        });
        FakeRedis { port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Answers the commands of one connection: INFO with `fields` command
/// statistics, anything else with an error.
fn serve_huge_info(stream: TcpStream, fields: usize) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut info = String::from("# Server\r\nredis_version:7.0.0\r\n# Commandstats\r\n");
    for i in 0..fields {
        info.push_str(&format!(
            "cmdstat_fake{i}:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n"
        ));
    }
    let info_reply = format!("${}\r\n{info}\r\n", info.len());
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    // `*N` or `$N`: the count or length after `prefix`; `None` at the end
    // of the stream or on anything else.
    let header = |reader: &mut BufReader<TcpStream>, prefix: char| -> Option<usize> {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        line.trim_end().strip_prefix(prefix)?.parse().ok()
    };
    loop {
        let Some(count) = header(&mut reader, '*') else {
            return;
        };
        let mut args = Vec::new();
        for _ in 0..count {
            let Some(len) = header(&mut reader, '$') else {
                return;
            };
            let mut arg = vec![0u8; len + 2];
            if reader.read_exact(&mut arg).is_err() {
                return;
            }
            args.push(String::from_utf8_lossy(&arg[..len]).to_ascii_uppercase());
        }
        let reply = match args.first().map(String::as_str) {
            Some("INFO") => info_reply.as_str(),
            Some("PING") => "+PONG\r\n",
            _ => "-ERR unknown command\r\n",
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// An instant PromQL query; the vector result as (labels, value) pairs.
pub fn query(endpoint: &str, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut response = ureq::get(endpoint)
        .query("query", promql)
        .call()
        .unwrap_or_else(|e| panic!("query {promql}: {e}"));
    let body = response.body_mut().read_to_string().expect("body");
    parse_query_answer(promql, &body)
}

/// The `result` items of a query answer, after checking its status.
fn result_items(promql: &str, body: &str) -> Vec<serde_json::Value> {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("query {promql}: {e}: {body}"));
    assert_eq!(json["status"], "success", "query {promql}: {body}");
    json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn labels_of(item: &serde_json::Value) -> BTreeMap<String, String> {
    item["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A `[time, "value"]` pair of the query API.
fn sample_of(pair: &serde_json::Value) -> (f64, f64) {
    let t = pair[0].as_f64().expect("a timestamp");
    let v = pair[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a value");
    (t, v)
}

/// A vector answer's (labels, value) pairs; a native histogram's value is its count.
fn parse_query_answer(promql: &str, body: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    result_items(promql, body)
        .iter()
        .map(|item| match item.get("histogram") {
            Some(h) => (labels_of(item), Native::of(&h[1]).count),
            None => (labels_of(item), sample_of(&item["value"]).1),
        })
        .collect()
}

/// One series of a matrix answer: its labels and its (unix seconds, value) samples.
pub type SeriesSamples = (BTreeMap<String, String>, Vec<(f64, f64)>);

/// A matrix answer of the query API: each series' (labels, [(unix seconds, value)]).
fn parse_matrix(promql: &str, body: &str) -> Vec<SeriesSamples> {
    result_items(promql, body)
        .iter()
        .map(|item| {
            let values = item["values"]
                .as_array()
                .map(|pairs| pairs.iter().map(sample_of).collect())
                .unwrap_or_default();
            (labels_of(item), values)
        })
        .collect()
}

/// Waits until an instant query's result satisfies `accept`; returns it.
pub fn eventually(
    what: &str,
    timeout: Duration,
    mut run: impl FnMut() -> Vec<(BTreeMap<String, String>, f64)>,
    accept: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
) -> Vec<(BTreeMap<String, String>, f64)> {
    wait_until(what, timeout, || {
        let result = run();
        when(accept(&result), result.clone(), || format!("{result:?}"))
    })
}

// ---------------------------------------------------------------------------

/// Debian's prometheus-redis-exporter (1.45) pointed at one Redis.
pub struct Exporter {
    pub port: u16,
    pub process: Process,
    pub dir: TempDir,
}

impl Exporter {
    pub fn start(redis: &Redis) -> Exporter {
        Exporter::start_with(redis, &[])
    }

    /// An exporter of `redis` with `extra` flags (`-check-single-keys=...`).
    pub fn start_with(redis: &Redis, extra: &[&str]) -> Exporter {
        let dir = TempDir::new().expect("temp dir");
        let port = free_port();
        let mut args = vec![
            format!("-redis.addr={}", redis.url()),
            format!("-web.listen-address=127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = Process::spawn(
            "redis-exporter",
            &program("prometheus-redis-exporter"),
            &args,
            dir.path(),
        );
        let exporter = Exporter { port, process, dir };
        wait_for(&exporter.process, "listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        exporter
    }

    pub fn scrape(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.port))
    }
}

// ---------------------------------------------------------------------------

pub fn redpush_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_redpush"))
}

/// Runs `redpush` to completion: (exit code, stdout, stderr).
pub fn redpush_run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(redpush_binary())
        .args(args)
        .output()
        .expect("run redpush");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An agent config that samples `targets` every second (adaptive off) and
/// remote-writes to `write_url` with a 1 s flush deadline; `extra` goes
/// before the targets (top-level keys, `[external_labels]`...).
pub fn push_config(targets: &[String], write_url: &str, extra: &str) -> String {
    let mut config = format!("interval = \"1s\"\nadaptive = false\n{extra}\n");
    for url in targets {
        config.push_str(&format!("\n[[targets]]\nurl = \"{url}\"\n"));
    }
    config.push_str(&format!(
        "\n[remote_write]\nurl = \"{write_url}\"\nflush_deadline = \"1s\"\n"
    ));
    config
}

/// A running agent with its config file and state dir.
pub struct Agent {
    pub process: Process,
    pub listen: u16,
    pub dir: TempDir,
}

impl Agent {
    /// Starts `redpush` with `config` (TOML, `listen` and `state_dir` are added).
    pub fn start(config: &str, args: &[&str]) -> Agent {
        Agent::start_in(TempDir::new().expect("temp dir"), config, args)
    }

    /// Starts `redpush` in `dir`, whose `state` directory may hold a queue
    /// from an earlier run.
    pub fn start_in(dir: TempDir, config: &str, args: &[&str]) -> Agent {
        Agent::start_under(&[], dir, config, args)
    }

    /// [`Agent::start_in`] run by `wrapper` (a program and its arguments
    /// that exec the agent, such as `prlimit --nofile=100`).
    pub fn start_under(wrapper: &[&str], dir: TempDir, config: &str, args: &[&str]) -> Agent {
        let listen = free_port();
        let config_path = dir.path().join("redpush.toml");
        let state = dir.path().join("state");
        let full = format!(
            "listen = \"127.0.0.1:{listen}\"\nstate_dir = \"{}\"\n{config}",
            state.display()
        );
        std::fs::write(&config_path, full).expect("config");
        let mut all: Vec<String> = wrapper.iter().skip(1).map(|s| s.to_string()).collect();
        let program = match wrapper.first() {
            Some(program) => {
                all.push(redpush_binary().display().to_string());
                PathBuf::from(program)
            }
            None => redpush_binary(),
        };
        all.extend(["--config".to_owned(), config_path.display().to_string()]);
        all.extend(args.iter().map(|s| s.to_string()));
        let process = Process::spawn("redpush", &program, &all, dir.path());
        let agent = Agent {
            process,
            listen,
            dir,
        };
        // A connection is accepted once the endpoint serves (HTTP or HTTPS).
        wait_for(&agent.process, "listening", || {
            TcpStream::connect(("127.0.0.1", listen)).is_ok()
        });
        agent
    }

    /// `kill -9`: no chance to flush anything. Returns the directory with the state.
    pub fn kill(self) -> TempDir {
        let Agent { process, dir, .. } = self;
        drop(process);
        dir
    }

    /// Rewrites the config file (same `listen` and `state_dir`) and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        self.rewrite(config);
        let status = Command::new("kill")
            .args(["-HUP", &self.process.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Rewrites the config file (same `listen` and `state_dir`), as an
    /// editor or a ConfigMap update does: no signal.
    pub fn rewrite(&self, config: &str) {
        let full = format!(
            "listen = \"127.0.0.1:{}\"\nstate_dir = \"{}\"\n{config}",
            self.listen,
            self.state_dir().display()
        );
        // Written aside and renamed into place, so the agent never reads
        // half a file.
        let path = self.dir.path().join("redpush.toml");
        let aside = self.dir.path().join(".redpush.toml.new");
        std::fs::write(&aside, full).expect("config");
        std::fs::rename(&aside, &path).expect("config");
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.listen))
    }

    /// Waits until the agent's page satisfies `accept`; returns the page.
    pub fn wait_page(&self, what: &str, accept: impl Fn(&Page) -> bool) -> Page {
        self.wait_page_within(what, Duration::from_secs(40), accept)
    }

    /// [`Agent::wait_page`] for an event that may take up to `timeout`.
    pub fn wait_page_within(
        &self,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&Page) -> bool,
    ) -> Page {
        wait_until(what, timeout, || {
            let text = self.metrics();
            let page = Page::parse(&text);
            let ok = accept(&page);
            when(ok, page, || {
                format!("page:\n{text}\nagent log:\n{}", self.process.output())
            })
        })
    }
}

/// What clients other than the tests' own were served since it started
/// (see `Redis::watch`).
pub struct Watch<'a> {
    redis: &'a Redis,
    since: Served,
    /// The tests' own reads since: each counts one connection, and one INFO
    /// in every later read.
    own: u64,
}

impl Watch<'_> {
    /// Waits until the others have sent `n` INFO commands in all (the
    /// agent's samples); returns what they were served so far.
    pub fn wait_for_samples(&mut self, n: u64) -> Served {
        wait_until(
            &format!("{n} INFO calls of the agent"),
            Duration::from_secs(60),
            || {
                let now = self.redis.served();
                // `since` and the own reads before this one have counted
                // their INFO by now; this one has counted its connection.
                self.own += 1;
                let others = Served {
                    info_calls: now.info_calls - self.since.info_calls - self.own,
                    histogram_calls: now.histogram_calls - self.since.histogram_calls,
                    connections: now.connections - self.since.connections - self.own,
                    error_replies: now.error_replies - self.since.error_replies,
                };
                when(others.info_calls >= n, others, || format!("{others:?}"))
            },
        )
    }
}

/// Counters of what a Redis server served (see `Redis::served`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Served {
    pub info_calls: u64,
    pub histogram_calls: u64,
    pub connections: u64,
    pub error_replies: u64,
}

/// A running `redis-benchmark`, stopped when dropped.
pub struct Load(std::process::Child);

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

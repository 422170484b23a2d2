//! The command line, as README's "Command line" documents it. Options are global so they may
//! stand before or after the subcommand (`redpush once --redis URL`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "redpush",
    version,
    about = "Samples Redis and pushes its metrics (Prometheus remote write, Pushgateway) or serves them on /metrics.",
    long_about = "Samples Redis and pushes its metrics (Prometheus remote write, Pushgateway) or serves them on /metrics.\n\n\
        Without a subcommand, runs the agent: samples every target on its interval, serves /metrics, and pushes when a remote-write URL is set.\n\
        With neither a config file nor --redis, the target is redis://127.0.0.1:6379 and /metrics is served on 127.0.0.1:9121."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sample every target once: print the exposition text to stdout, or with
    /// --remote-write / --pushgateway push it once. Exit 0 on success, 1 if no
    /// target answered, 2 on a configuration error, 3 if a push failed.
    Once,
    /// Validate the configuration, print the effective settings (secrets left out), exit 0 or 2.
    CheckConfig,
    /// Ask the running agent at `listen` (or --listen) what it is doing: targets, queue, delivery.
    Status,
    /// Exit 0 if the running agent at `listen` answers /healthz (with --ready: /readyz), 1 if not. For container health checks and exec probes; works with [http] TLS.
    Healthcheck {
        /// Check /readyz (delivering) instead of /healthz (alive).
        #[arg(long)]
        ready: bool,
    },
    /// Look at the on-disk queue under --state-dir.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Print the backlog: segments, pending records and samples, their age. Read-only.
    Inspect,
}

#[derive(Debug, Args)]
pub struct Options {
    /// TOML config file (see config/redpush.example.toml).
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Redis to sample: redis://[user[:pass]@]host[:port][/db] or unix:///path. Repeatable; replaces the file's targets.
    #[arg(long = "redis", global = true, value_name = "URL")]
    pub redis: Vec<String>,
    /// Prometheus remote-write endpoint, e.g. http://prometheus:9090/api/v1/write.
    #[arg(long, global = true, value_name = "URL")]
    pub remote_write: Option<String>,
    /// Pushgateway base URL, e.g. http://pushgateway:9091.
    #[arg(long, global = true, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Sampling interval, e.g. 10s.
    #[arg(long, global = true, value_name = "DUR")]
    pub interval: Option<String>,
    /// Shortest interval allowed, e.g. 1s.
    #[arg(long, global = true, value_name = "DUR")]
    pub min_interval: Option<String>,
    /// Longest interval allowed, e.g. 60s (at most 4m50s).
    #[arg(long, global = true, value_name = "DUR")]
    pub max_interval: Option<String>,
    /// Directory for the agent's state (the queue).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address for /metrics, /api/status, /healthz and /readyz, e.g. 127.0.0.1:9121 (for `status`: the agent to ask).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log level: error, warn, info, debug or trace (default info; warn for `once`). Without it, a non-empty RUST_LOG (tracing's filter syntax) wins over the file's [log] level.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: text (default) or json (one object per line).
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl Options {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            redis: self.redis.clone(),
            remote_write: self.remote_write.clone(),
            pushgateway: self.pushgateway.clone(),
            interval: self.interval.clone(),
            min_interval: self.min_interval.clone(),
            max_interval: self.max_interval.clone(),
            state_dir: self.state_dir.clone(),
            listen: self.listen.clone(),
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
        }
    }
}

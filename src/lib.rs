//! redpush: samples Redis, maps the readings to the community exporter's
//! metric names, and pushes them (Prometheus remote write, Pushgateway) or
//! serves them on `/metrics`. See ARCHITECTURE.md for the data flow.
//!
//! The crate is the binary's: its root exposes what `main.rs` starts, and
//! [`testing`] what the integration tests and benchmarks drive directly.
//! Everything else is `pub(crate)`.

#![warn(unreachable_pub)]

pub(crate) mod agent;
pub(crate) mod agent_client;
pub mod cli;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod delivery;
pub(crate) mod exposition;
pub(crate) mod failure_streak;
pub(crate) mod http_client;
pub(crate) mod log_throttle;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod oauth2_token;
pub(crate) mod once;
pub(crate) mod pushgateway;
pub(crate) mod queue;
pub(crate) mod reading;
pub(crate) mod redis;
pub(crate) mod relabel;
pub(crate) mod remote_write;
pub(crate) mod schedule;
pub(crate) mod secret;
pub(crate) mod self_metrics;
pub(crate) mod series;
#[cfg(feature = "sigv4")]
pub(crate) mod sigv4;
pub(crate) mod status;
pub(crate) mod target;
pub(crate) mod tls;
pub(crate) mod untrusted;
pub(crate) mod wal;

pub use agent::run as run_agent;
pub use agent_client::{healthcheck, run as run_status};
pub use config::{ConfigError, LogLevel, Overrides, Settings};
pub use once::{EXIT_CONFIG, run as run_once};
pub use wal::inspect as inspect_queue;

/// What the integration tests and benchmarks use of the crate's insides.
/// Not an interface: it changes with them.
#[doc(hidden)]
pub mod testing {
    pub use crate::clock::now_ms;
    pub use crate::config::{
        Endpoint, Fsync, LatencyHistograms, Overrides, RemoteWriteSettings, Settings,
    };
    pub use crate::exposition::{write_families, write_series};
    pub use crate::metrics::mapper::{Extras, MAX_CLIENT_GROUPS, MapOptions, Reading, map_reading};
    pub use crate::metrics::native::{NativeHistogram, Span};
    pub use crate::metrics::{Families, Kind};
    pub use crate::queue::{DropReason, DroppedFor, Queue, QueueEvents, Queued, Writer};
    pub use crate::reading::{CommandHistogram, LatencyEvent, ServerConfig, Slowlog};
    pub use crate::redis::info::Info;
    pub use crate::remote_write::encode::{Encoder, encode};
    pub use crate::remote_write::proto::WriteRequest;
    pub use crate::remote_write::sender::Sender;
    pub use crate::self_metrics::{EndpointMetrics, SelfMetrics};
    pub use crate::series::{
        Flattener, HistogramSeries, Matched, Record, Series, StaleTracker, TargetSeries, flatten,
        is_stale_marker, shape, target_labels,
    };
    pub use crate::status::{DestinationStatus, QueueStatus, Status, TargetStatus};
    pub use crate::wal::{Disk, DiskQueue, FileSystem, SegmentFile, WalSettings, frame, inspect};
}

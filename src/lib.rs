//! redpush: samples Redis, maps the readings to the community exporter's
//! metric names, and pushes them (Prometheus remote write, Pushgateway) or
//! serves them on `/metrics`. See ARCHITECTURE.md for the data flow.

pub mod agent;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod http;
pub mod http_client;
pub mod intern;
pub mod metrics;
pub mod once;
pub mod pushgateway;
pub mod queue;
pub mod redis;
pub mod remote_write;
pub mod schedule;
pub mod self_metrics;
pub mod series;
pub mod stale;
pub mod target;
pub mod wal;

//! Everything that talks to Redis: the stream (`transport.rs`), the
//! connection over it (`connection.rs`), one target's connection and round
//! trips (`sampler.rs`), which commands a sample sends (`plan.rs`), their
//! replies read into `reading`'s values (`replies.rs`, pure) and INFO's
//! (`info.rs`, pure), the key sampler (`keys.rs`), and cluster and Sentinel
//! discovery (`discovery.rs`).

pub(crate) mod connection;
pub(crate) mod discovery;
pub(crate) mod info;
pub(crate) mod key_groups;
pub(crate) mod keys;
pub(crate) mod plan;
pub(crate) mod replies;
pub(crate) mod sampler;
pub(crate) mod transport;

//! Everything that talks to Redis: the connection and per-sample commands
//! (`sampler.rs`) and the INFO parser (`info.rs`, pure).

pub mod info;
pub mod keys;
pub mod sampler;
pub mod transport;

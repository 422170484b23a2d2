//! Everything that talks to Redis: the stream (`transport.rs`), the
//! connection over it (`connection.rs`), the per-sample commands
//! (`sampler.rs`), the key sampler (`keys.rs`) and the INFO parser
//! (`info.rs`, pure).

pub mod connection;
pub mod info;
pub mod keys;
pub mod sampler;
pub mod transport;

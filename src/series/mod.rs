//! Series: what a reading's families become, shared across targets and
//! kept as records.
//!
//! - `catalogue.rs`: shapes (a series without its target) and target label
//!   sets, one shared copy each in the process;
//! - `intern.rs`: one shared copy of each label string, which shapes and
//!   sets hold;
//! - `flatten.rs`: a reading's families → series, by position against the
//!   reading before;
//! - `stale.rs`: which series ended, and Prometheus' stale marker;
//! - `target_series.rs`: one target's readings over time → records;
//! - `relabeled.rs`: relabeling rules applied to series, once per shape;
//! - `record.rs`: the record, what the queue stores and the encoders send.

mod catalogue;
mod flatten;
mod intern;
mod record;
mod relabeled;
mod stale;
mod target_series;

pub(crate) use catalogue::{EncodedLabels, Label, Shape, TargetLabels};
pub(crate) use catalogue::{families, generation};
pub use catalogue::{shape, target_labels};
pub use flatten::{Flattener, Matched, flatten};
pub use record::{HistogramSeries, Record, Series};
pub(crate) use relabeled::Relabeler;
#[cfg(test)]
pub(crate) use stale::stale_nan;
pub use stale::{StaleTracker, is_stale_marker};
pub use target_series::TargetSeries;

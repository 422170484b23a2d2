//! The record model: what one reading of one target becomes, and what the
//! queue stores, the page shows and the encoder sends.

use std::sync::Arc;

use super::catalogue::{Shape, TargetLabels};
use crate::metrics::NativeHistogram;

/// One series of a reading: its shape and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub shape: Arc<Shape>,
    pub value: f64,
}

/// One native histogram series of a reading: its shape (of kind histogram,
/// no suffix) and its value. [`NativeHistogram::stale`] ends it.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSeries {
    pub shape: Arc<Shape>,
    pub histogram: NativeHistogram,
}

/// Everything one reading of one target produced, stamped with one time:
/// its series (shared shapes, see `catalogue`) and the target's labels,
/// which an encoder adds to each of them. A complete reading's record may
/// end with stale markers (`stale`) for series that ended, in either lane.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub target: Arc<TargetLabels>,
    pub series: Vec<Series>,
    /// Native histograms: only complete readings have any, and only with
    /// `[metrics] latency_histograms` other than `classic`.
    pub histograms: Vec<HistogramSeries>,
}

impl Record {
    /// Float samples and native histogram samples together.
    pub fn samples(&self) -> usize {
        self.series.len() + self.histograms.len()
    }
}

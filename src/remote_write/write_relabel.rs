//! `write_relabel_configs`: an endpoint's rules applied to each batch
//! before it is encoded, once per series shape and target set (the
//! outcomes are kept, `series::Relabeler`). The queue keeps the records as
//! they were read: rules of one endpoint never change what another gets.

use std::sync::Arc;

use crate::queue::Queued;
use crate::relabel::Rules;
use crate::series::Relabeler;

/// An endpoint's rules and their kept outcomes; without rules a batch
/// passes as it is, at no cost.
pub(crate) struct WriteRelabel(Option<Relabeler>);

impl WriteRelabel {
    pub(crate) fn new(rules: &Rules) -> WriteRelabel {
        WriteRelabel((!rules.is_empty()).then(|| Relabeler::new(rules.clone())))
    }

    /// `batch` after the rules: each record keeps its sequence number and
    /// timestamp; its series are those the rules keep, relabeled. A record
    /// may be left with no series.
    pub(crate) fn batch(&mut self, batch: Vec<Queued>) -> Vec<Queued> {
        let Some(relabeler) = &mut self.0 else {
            return batch;
        };
        batch
            .into_iter()
            .map(|q| Queued {
                seq: q.seq,
                record: Arc::new(relabeler.record(&q.record)),
            })
            .collect()
    }
}

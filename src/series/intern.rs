//! One shared copy of each label name and value in the process.
//!
//! With many targets, most label strings repeat across series and targets:
//! every target has `redis_commands_total`, `cmd="get"`, `instance`, `job`.
//! Shapes and target label sets (`series.rs`) hold `Arc<str>`s taken from
//! here, so equal strings are kept once whatever holds them. Only the cold
//! path uses it: a shape or a target's label set is built once and shared
//! by every reading that has it.
//!
//! Strings nobody else holds any more (a removed target's `instance`, a
//! replica gone) are dropped when the table has doubled since the last
//! sweep, so the table stays proportional to what is in use.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Table {
    strings: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// Size after the last sweep.
    swept_at: usize,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// Smallest table worth sweeping.
const SWEEP_FROM: usize = 1024;

/// The shared copy of `s`.
pub(super) fn intern(s: &str) -> Arc<str> {
    // A panic elsewhere while holding the lock leaves the table valid (an
    // insert either happened or not), so a poisoned lock is used as is.
    let mut guard = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    let table = guard.get_or_insert_with(Table::default);
    if let Some(found) = table.strings.get(s) {
        return found.clone();
    }
    if table.strings.len() >= SWEEP_FROM.max(table.swept_at * 2) {
        table.strings.retain(|s| Arc::strong_count(s) > 1);
        table.swept_at = table.strings.len();
    }
    let shared: Arc<str> = Arc::from(s);
    table.strings.insert(shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy() {
        let a = intern("redis_commands_total");
        let b = intern(&String::from("redis_commands_total"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "redis_commands_total");
        assert!(!Arc::ptr_eq(&a, &intern("redis_up")));
    }

    #[test]
    fn strings_no_one_holds_are_swept() {
        // Other tests intern concurrently; count only this test's strings.
        let kept = intern("intern-test-kept");
        for i in 0..4 * SWEEP_FROM {
            drop(intern(&format!("intern-test-dropped-{i}")));
        }
        let guard = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
        let table = guard.as_ref().expect("table");
        let dropped = table
            .strings
            .iter()
            .filter(|s| s.starts_with("intern-test-dropped-"))
            .count();
        assert!(dropped < 2 * SWEEP_FROM, "{dropped} unused strings kept");
        assert!(table.strings.contains("intern-test-kept"));
        drop(kept);
    }
}

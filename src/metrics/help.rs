//! What each family is, for people and metric browsers: its `# HELP` text
//! on `/metrics` and its help and unit in remote write's metadata. Pure.
//!
//! Families the exporter has keep the exporter's text, so a page reads as
//! its page does: its written descriptions (below, as 1.45 prints them),
//! and for a family mapped from an INFO field its rule, the name without
//! `redis_` and the word `metric` (`redis_connected_clients` →
//! `connected_clients metric`). Families only redpush gives have texts of
//! their own.

use std::borrow::Cow;

/// Written descriptions, sorted by name (a test checks the order).
const WRITTEN: &[(&str, &str)] = &[
    (
        "redis_clients_biggest_output_buffer_bytes",
        "Largest output buffer of a client connection, from CLIENT LIST",
    ),
    (
        "redis_clients_biggest_query_buffer_bytes",
        "Largest query buffer of a client connection, from CLIENT LIST",
    ),
    (
        "redis_clients_by_flags",
        "Client connections by CLIENT LIST flags",
    ),
    ("redis_clients_by_name", "Client connections by client name"),
    ("redis_clients_by_user", "Client connections by ACL user"),
    (
        "redis_clients_oldest_connection_seconds",
        "Age of the oldest client connection in seconds",
    ),
    (
        "redis_commands_duration_seconds_total",
        "Total amount of time in seconds spent per command",
    ),
    (
        "redis_commands_failed_calls_total",
        "Total number of errors prior command execution per command",
    ),
    (
        "redis_commands_latencies_usec",
        "Latency of each command in microseconds (LATENCY HISTOGRAM)",
    ),
    (
        "redis_commands_rejected_calls_total",
        "Total number of errors within command execution per command",
    ),
    ("redis_commands_total", "Total number of calls per command"),
    (
        "redis_connected_slave_lag_seconds",
        "Lag of connected slave",
    ),
    (
        "redis_connected_slave_offset_bytes",
        "Offset of connected slave",
    ),
    ("redis_db_avg_ttl_seconds", "Avg TTL in seconds"),
    ("redis_db_keys", "Total number of keys by DB"),
    (
        "redis_db_keys_expiring",
        "Total number of expiring keys by DB",
    ),
    (
        "redis_errors_total",
        "Total number of errors per error type",
    ),
    (
        "redis_instance_info",
        "Information about the Redis instance",
    ),
    (
        "redis_key_memory_usage_bytes",
        "Memory used by a checked key in bytes (MEMORY USAGE)",
    ),
    ("redis_key_size", "The length or size of a checked key"),
    (
        "redis_key_ttl_seconds",
        "Time to live of a checked key in seconds",
    ),
    ("redis_key_value", "The numeric value of a checked key"),
    (
        "redis_key_value_as_string",
        "The value of a checked key as a label",
    ),
    ("redis_keys_count", "Count of keys matching a pattern"),
    (
        "redis_last_slow_execution_duration_seconds",
        "The amount of time needed for last slow execution, in seconds",
    ),
    (
        "redis_latency_percentiles_usec",
        "A summary of latency percentile distribution per command",
    ),
    (
        "redis_latency_spike_duration_seconds",
        "Length of the last latency spike in seconds, per event",
    ),
    (
        "redis_latency_spike_last",
        "When the last latency spike of an event occurred, in seconds since the epoch",
    ),
    (
        "redis_master_last_io_seconds_ago",
        "Master last io seconds ago",
    ),
    ("redis_master_link_up", "Master link status on Redis slave"),
    ("redis_master_sync_in_progress", "Master sync in progress"),
    (
        "redis_script_result",
        "Result of the script run on every sample",
    ),
    (
        "redis_script_values",
        "Values returned by the script run on every sample",
    ),
    ("redis_slave_info", "Information about the Redis slave"),
    ("redis_slave_repl_offset", "Slave replication offset"),
    ("redis_slowlog_last_id", "Last id of slowlog"),
    ("redis_slowlog_length", "Total slowlog"),
    (
        "redis_start_time_seconds",
        "Start time of the Redis instance since unix epoch in seconds.",
    ),
    ("redis_up", "Information about the Redis instance"),
    ("redpush_build_info", "The agent's version, always 1"),
    (
        "redpush_config_last_reload_success_timestamp_seconds",
        "When the configuration last loaded, in seconds since the epoch",
    ),
    (
        "redpush_config_last_reload_successful",
        "Whether the last configuration load (start, SIGHUP or an edit) took",
    ),
    (
        "redpush_last_send_timestamp_seconds",
        "When the receiver last accepted a request, in seconds since the epoch",
    ),
    (
        "redpush_pushgateway_errors_total",
        "Pushgateway pushes that failed",
    ),
    (
        "redpush_pushgateway_pushes_total",
        "Pushgateway pushes that succeeded",
    ),
    ("redpush_queue_bytes", "Size of the on-disk queue in bytes"),
    (
        "redpush_queue_oldest_sample_age_seconds",
        "Age of the oldest sample not yet accepted by the receiver",
    ),
    (
        "redpush_queue_records",
        "Readings queued and not yet accepted by the receiver",
    ),
    (
        "redpush_queue_samples",
        "Samples queued and not yet accepted by the receiver",
    ),
    (
        "redpush_queue_write_errors_total",
        "Failed writes to the on-disk queue",
    ),
    (
        "redpush_redis_command_duration_seconds",
        "Duration of the agent's last round trip of each kind to the server",
    ),
    (
        "redpush_requests_sent_total",
        "Remote-write requests accepted by the receiver",
    ),
    (
        "redpush_sample_duration_seconds",
        "Duration of the last sample of the target",
    ),
    (
        "redpush_sample_interval_seconds",
        "The target's current sampling interval",
    ),
    (
        "redpush_samples_dropped_total",
        "Samples lost rather than delivered, by reason",
    ),
    (
        "redpush_samples_sent_total",
        "Samples accepted by the remote-write receiver",
    ),
    (
        "redpush_send_duration_seconds_total",
        "Time spent in remote-write requests the receiver accepted",
    ),
    (
        "redpush_send_errors_total",
        "Failed remote-write attempts, by HTTP status or failure",
    ),
    (
        "redpush_send_retries_total",
        "Remote-write requests sent again after a failure",
    ),
    (
        "redpush_series_limited_total",
        "Readings cut to max_series_per_target",
    ),
    (
        "redpush_target_errors_total",
        "Failed samples of the target, by reason",
    ),
];

/// The help text of family `name`.
pub(crate) fn help(name: &str) -> Cow<'static, str> {
    if let Ok(i) = WRITTEN.binary_search_by(|(n, _)| (*n).cmp(name)) {
        return Cow::Borrowed(WRITTEN[i].1);
    }
    match name.strip_prefix("redis_") {
        Some(field) => Cow::Owned(format!("{field} metric")),
        None => Cow::Owned(format!("{name} metric")),
    }
}

/// The unit of family `name` as its name says it (the Prometheus naming
/// convention: a unit before `_total`, if any, at the end): `seconds`,
/// `bytes`, or none.
pub(crate) fn unit(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    ["seconds", "bytes", "milliseconds", "ratio"]
        .into_iter()
        .find(|unit| {
            base.strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'))
        })
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_texts_are_sorted_and_unique() {
        assert!(WRITTEN.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn exporter_rule_for_info_fields_and_written_texts_first() {
        assert_eq!(help("redis_connected_clients"), "connected_clients metric");
        assert_eq!(
            help("redis_commands_total"),
            "Total number of calls per command"
        );
        assert_eq!(
            help("redpush_queue_bytes"),
            "Size of the on-disk queue in bytes"
        );
    }

    #[test]
    fn units_from_names() {
        assert_eq!(unit("redis_memory_used_bytes"), "bytes");
        assert_eq!(unit("redis_cpu_sys_seconds_total"), "seconds");
        assert_eq!(unit("redis_connected_clients"), "");
        assert_eq!(unit("redis_mem_fragmentation_ratio"), "ratio");
        assert_eq!(unit("seconds"), "");
    }
}

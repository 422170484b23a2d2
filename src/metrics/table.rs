//! The INFO field → metric table: the community Redis exporter's mapping,
//! as data. One row per INFO field: metric name, type, unit conversion.
//!
//! Names and types are copied as that exporter has them, quirks included
//! (gauges ending in `_total`, counters without it, byte values without
//! `_bytes`), because dashboards and alert rules query exactly these names.
//! Fields with labels or derived values (keyspace, commandstats, replicas,
//! instance info, ...) are handled in `mapper.rs`, not here.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::Kind;

/// How an INFO value becomes the metric value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scale {
    One,
    /// INFO reports microseconds, the metric is in seconds.
    MicrosToSeconds,
}

impl Scale {
    pub(crate) fn apply(self, value: f64) -> f64 {
        match self {
            Scale::One => value,
            Scale::MicrosToSeconds => value / 1e6,
        }
    }
}

/// One row: INFO field, metric name, type, unit conversion.
pub(crate) type Row = (&'static str, &'static str, Kind, Scale);

/// Looks up an INFO field: one hash and one comparison. Every field of
/// every reading is looked up, and a binary search compared about eight
/// strings for each.
pub(crate) fn lookup(field: &str) -> Option<&'static Row> {
    // Seeded per process: the keys looked up come from the server.
    static INDEX: LazyLock<HashMap<&str, &Row, foldhash::fast::RandomState>> =
        LazyLock::new(|| INFO_FIELDS.iter().map(|row| (row.0, row)).collect());
    INDEX.get(field).copied()
}

/// Fields that identify the server rather than measure it. Some of them can
/// look like numbers (`redis_git_sha1:00000000`, a run id of only digits) but
/// belong in `redis_instance_info` labels, not in a series of their own.
pub(crate) const IDENTITY_FIELDS: &[&str] = &[
    "arch_bits",
    "atomicvar_api",
    "config_file",
    "executable",
    "gcc_version",
    "lru_clock",
    "master_replid",
    "master_replid2",
    "os",
    "process_supervised",
    "redis_build_id",
    "redis_git_dirty",
    "redis_git_sha1",
    "redis_version",
    "run_id",
    "server_time_usec",
    "tcp_port",
    "uptime_in_days",
    "valkey_version",
];

/// Every known INFO field, sorted by field name.
#[rustfmt::skip]
pub(crate) static INFO_FIELDS: &[Row] = &[
    ("acl_access_denied_auth",                          "redis_acl_access_denied_auth_total",                       Kind::Counter, Scale::One),
    ("acl_access_denied_channel",                       "redis_acl_access_denied_channel_total",                    Kind::Counter, Scale::One),
    ("acl_access_denied_cmd",                           "redis_acl_access_denied_cmd_total",                        Kind::Counter, Scale::One),
    ("acl_access_denied_key",                           "redis_acl_access_denied_key_total",                        Kind::Counter, Scale::One),
    ("active_defrag_hits",                              "redis_defrag_hits",                                        Kind::Gauge,   Scale::One),
    ("active_defrag_key_hits",                          "redis_defrag_key_hits",                                    Kind::Gauge,   Scale::One),
    ("active_defrag_key_misses",                        "redis_defrag_key_misses",                                  Kind::Gauge,   Scale::One),
    ("active_defrag_misses",                            "redis_defrag_misses",                                      Kind::Gauge,   Scale::One),
    ("active_defrag_running",                           "redis_active_defrag_running",                              Kind::Gauge,   Scale::One),
    ("allocator_active",                                "redis_allocator_active_bytes",                             Kind::Gauge,   Scale::One),
    ("allocator_allocated",                             "redis_allocator_allocated_bytes",                          Kind::Gauge,   Scale::One),
    ("allocator_frag_bytes",                            "redis_allocator_frag_bytes",                               Kind::Gauge,   Scale::One),
    ("allocator_frag_ratio",                            "redis_allocator_frag_ratio",                               Kind::Gauge,   Scale::One),
    ("allocator_muzzy",                                 "redis_allocator_muzzy_bytes",                              Kind::Gauge,   Scale::One),
    ("allocator_resident",                              "redis_allocator_resident_bytes",                           Kind::Gauge,   Scale::One),
    ("allocator_rss_bytes",                             "redis_allocator_rss_bytes",                                Kind::Gauge,   Scale::One),
    ("allocator_rss_ratio",                             "redis_allocator_rss_ratio",                                Kind::Gauge,   Scale::One),
    ("aof_base_size",                                   "redis_aof_base_size_bytes",                                Kind::Gauge,   Scale::One),
    ("aof_buffer_length",                               "redis_aof_buffer_length",                                  Kind::Gauge,   Scale::One),
    ("aof_current_rewrite_time_sec",                    "redis_aof_current_rewrite_duration_sec",                   Kind::Gauge,   Scale::One),
    ("aof_current_size",                                "redis_aof_current_size_bytes",                             Kind::Gauge,   Scale::One),
    ("aof_delayed_fsync",                               "redis_aof_delayed_fsync",                                  Kind::Gauge,   Scale::One),
    ("aof_enabled",                                     "redis_aof_enabled",                                        Kind::Gauge,   Scale::One),
    ("aof_last_bgrewrite_status",                       "redis_aof_last_bgrewrite_status",                          Kind::Gauge,   Scale::One),
    ("aof_last_cow_size",                               "redis_aof_last_cow_size_bytes",                            Kind::Gauge,   Scale::One),
    ("aof_last_rewrite_time_sec",                       "redis_aof_last_rewrite_duration_sec",                      Kind::Gauge,   Scale::One),
    ("aof_last_write_status",                           "redis_aof_last_write_status",                              Kind::Gauge,   Scale::One),
    ("aof_pending_bio_fsync",                           "redis_aof_pending_bio_fsync",                              Kind::Gauge,   Scale::One),
    ("aof_pending_rewrite",                             "redis_aof_pending_rewrite",                                Kind::Gauge,   Scale::One),
    ("aof_rewrite_buffer_length",                       "redis_aof_rewrite_buffer_length",                          Kind::Gauge,   Scale::One),
    ("aof_rewrite_in_progress",                         "redis_aof_rewrite_in_progress",                            Kind::Gauge,   Scale::One),
    ("aof_rewrite_scheduled",                           "redis_aof_rewrite_scheduled",                              Kind::Gauge,   Scale::One),
    ("async_loading",                                   "redis_async_loading",                                      Kind::Gauge,   Scale::One),
    ("bf_bloom_capacity_across_objects",                "redis_bf_bloom_capacity_across_objects",                   Kind::Gauge,   Scale::One),
    ("bf_bloom_defrag_hits",                            "redis_bf_bloom_defrag_hits_total",                         Kind::Counter, Scale::One),
    ("bf_bloom_defrag_misses",                          "redis_bf_bloom_defrag_misses_total",                       Kind::Counter, Scale::One),
    ("bf_bloom_num_filters_across_objects",             "redis_bf_bloom_num_filters_across_objects",                Kind::Gauge,   Scale::One),
    ("bf_bloom_num_items_across_objects",               "redis_bf_bloom_num_items_across_objects",                  Kind::Gauge,   Scale::One),
    ("bf_bloom_num_objects",                            "redis_bf_bloom_num_objects",                               Kind::Gauge,   Scale::One),
    ("bf_bloom_total_memory_bytes",                     "redis_bf_bloom_total_memory_bytes",                        Kind::Gauge,   Scale::One),
    ("blocked_clients",                                 "redis_blocked_clients",                                    Kind::Gauge,   Scale::One),
    ("cached_keys",                                     "redis_cached_keys_total",                                  Kind::Counter, Scale::One),
    ("client_biggest_input_buf",                        "redis_client_biggest_input_buf",                           Kind::Gauge,   Scale::One),
    ("client_longest_output_list",                      "redis_client_longest_output_list",                         Kind::Gauge,   Scale::One),
    ("client_output_buffer_limit_disconnections",       "redis_client_output_buffer_limit_disconnections_total",    Kind::Counter, Scale::One),
    ("client_query_buffer_limit_disconnections",        "redis_client_query_buffer_limit_disconnections_total",     Kind::Counter, Scale::One),
    ("client_recent_max_input_buffer",                  "redis_client_recent_max_input_buffer_bytes",               Kind::Gauge,   Scale::One),
    ("client_recent_max_output_buffer",                 "redis_client_recent_max_output_buffer_bytes",              Kind::Gauge,   Scale::One),
    ("clients_in_timeout_table",                        "redis_clients_in_timeout_table",                           Kind::Gauge,   Scale::One),
    ("cluster_enabled",                                 "redis_cluster_enabled",                                    Kind::Gauge,   Scale::One),
    ("cluster_state",                                   "redis_cluster_state",                                      Kind::Gauge,   Scale::One),
    ("cluster_stats_messages_received",                 "redis_cluster_messages_received_total",                    Kind::Gauge,   Scale::One),
    ("cluster_stats_messages_sent",                     "redis_cluster_messages_sent_total",                        Kind::Gauge,   Scale::One),
    ("configured_hz",                                   "redis_configured_hz",                                      Kind::Gauge,   Scale::One),
    ("connected_clients",                               "redis_connected_clients",                                  Kind::Gauge,   Scale::One),
    ("connected_slaves",                                "redis_connected_slaves",                                   Kind::Gauge,   Scale::One),
    ("current_client_thread",                           "redis_current_client_thread",                              Kind::Gauge,   Scale::One),
    ("current_eviction_exceeded_time",                  "redis_current_eviction_exceeded_time_ms",                  Kind::Gauge,   Scale::One),
    ("dump_payload_sanitizations",                      "redis_dump_payload_sanitizations",                         Kind::Counter, Scale::One),
    ("eventloop_cycles",                                "redis_eventloop_cycles_total",                             Kind::Counter, Scale::One),
    ("eventloop_duration_cmd_sum",                      "redis_eventloop_duration_cmd_sum_usec_total",              Kind::Counter, Scale::One),
    ("eventloop_duration_sum",                          "redis_eventloop_duration_sum_usec_total",                  Kind::Counter, Scale::One),
    ("evicted_clients",                                 "redis_evicted_clients_total",                              Kind::Counter, Scale::One),
    ("evicted_keys",                                    "redis_evicted_keys_total",                                 Kind::Counter, Scale::One),
    ("evicted_scripts",                                 "redis_evicted_scripts_total",                              Kind::Counter, Scale::One),
    ("expire_cycle_cpu_milliseconds",                   "redis_expire_cycle_cpu_time_ms_total",                     Kind::Counter, Scale::One),
    ("expired_keys",                                    "redis_expired_keys_total",                                 Kind::Counter, Scale::One),
    ("expired_stale_perc",                              "redis_expired_stale_percentage",                           Kind::Gauge,   Scale::One),
    ("expired_subkeys",                                 "redis_expired_subkeys_total",                              Kind::Counter, Scale::One),
    ("expired_time_cap_reached_count",                  "redis_expired_time_cap_reached_total",                     Kind::Counter, Scale::One),
    ("hz",                                              "redis_hz",                                                 Kind::Gauge,   Scale::One),
    ("instantaneous_eventloop_cycles_per_sec",          "redis_instantaneous_eventloop_cycles_per_sec",             Kind::Gauge,   Scale::One),
    ("instantaneous_eventloop_duration_usec",           "redis_instantaneous_eventloop_duration_usec",              Kind::Gauge,   Scale::One),
    ("io_threaded_reads_processed",                     "redis_io_threaded_reads_processed",                        Kind::Counter, Scale::One),
    ("io_threaded_writes_processed",                    "redis_io_threaded_writes_processed",                       Kind::Counter, Scale::One),
    ("io_threads_active",                               "redis_io_threads_active",                                  Kind::Gauge,   Scale::One),
    ("json_num_documents",                              "redis_json_num_documents",                                 Kind::Gauge,   Scale::One),
    ("json_total_memory_bytes",                         "redis_json_total_memory_bytes",                            Kind::Gauge,   Scale::One),
    ("keyspace_hits",                                   "redis_keyspace_hits_total",                                Kind::Counter, Scale::One),
    ("keyspace_misses",                                 "redis_keyspace_misses_total",                              Kind::Counter, Scale::One),
    ("latest_fork_usec",                                "redis_latest_fork_seconds",                                Kind::Gauge,   Scale::MicrosToSeconds),
    ("lazyfree_pending_objects",                        "redis_lazyfree_pending_objects",                           Kind::Gauge,   Scale::One),
    ("lazyfreed_objects",                               "redis_lazyfreed_objects",                                  Kind::Gauge,   Scale::One),
    ("loading",                                         "redis_loading_dump_file",                                  Kind::Gauge,   Scale::One),
    ("long_lock_waits",                                 "redis_long_lock_waits_total",                              Kind::Gauge,   Scale::One),
    ("master_repl_offset",                              "redis_master_repl_offset",                                 Kind::Gauge,   Scale::One),
    ("maxclients",                                      "redis_max_clients",                                        Kind::Gauge,   Scale::One),
    ("maxfragmentationmemory_desired_reservation",      "redis_memory_max_fragmentation_reservation_desired_bytes", Kind::Gauge,   Scale::One),
    ("maxfragmentationmemory_reservation",              "redis_memory_max_fragmentation_reservation_bytes",         Kind::Gauge,   Scale::One),
    ("maxmemory",                                       "redis_memory_max_bytes",                                   Kind::Gauge,   Scale::One),
    ("maxmemory_desired_reservation",                   "redis_memory_max_reservation_desired_bytes",               Kind::Gauge,   Scale::One),
    ("maxmemory_reservation",                           "redis_memory_max_reservation_bytes",                       Kind::Gauge,   Scale::One),
    ("mem_aof_buffer",                                  "redis_mem_aof_buffer_bytes",                               Kind::Gauge,   Scale::One),
    ("mem_clients_normal",                              "redis_mem_clients_normal",                                 Kind::Gauge,   Scale::One),
    ("mem_clients_slaves",                              "redis_mem_clients_slaves",                                 Kind::Gauge,   Scale::One),
    ("mem_cluster_links",                               "redis_mem_cluster_links_bytes",                            Kind::Gauge,   Scale::One),
    ("mem_fragmentation_bytes",                         "redis_mem_fragmentation_bytes",                            Kind::Gauge,   Scale::One),
    ("mem_fragmentation_ratio",                         "redis_mem_fragmentation_ratio",                            Kind::Gauge,   Scale::One),
    ("mem_not_counted_for_evict",                       "redis_mem_not_counted_for_eviction_bytes",                 Kind::Gauge,   Scale::One),
    ("mem_overhead_db_hashtable_rehashing",             "redis_mem_overhead_db_hashtable_rehashing_bytes",          Kind::Gauge,   Scale::One),
    ("mem_replication_backlog",                         "redis_mem_replication_backlog_bytes",                      Kind::Gauge,   Scale::One),
    ("mem_total_replication_buffers",                   "redis_mem_total_replication_buffers_bytes",                Kind::Gauge,   Scale::One),
    ("migrate_cached_sockets",                          "redis_migrate_cached_sockets_total",                       Kind::Gauge,   Scale::One),
    ("module_fork_in_progress",                         "redis_module_fork_in_progress",                            Kind::Gauge,   Scale::One),
    ("module_fork_last_cow_size",                       "redis_module_fork_last_cow_size",                          Kind::Gauge,   Scale::One),
    ("number_of_cached_scripts",                        "redis_number_of_cached_scripts",                           Kind::Gauge,   Scale::One),
    ("number_of_functions",                             "redis_number_of_functions",                                Kind::Gauge,   Scale::One),
    ("number_of_libraries",                             "redis_number_of_libraries",                                Kind::Gauge,   Scale::One),
    ("process_id",                                      "redis_process_id",                                         Kind::Gauge,   Scale::One),
    ("pubsub_channels",                                 "redis_pubsub_channels",                                    Kind::Gauge,   Scale::One),
    ("pubsub_clients",                                  "redis_pubsub_clients",                                     Kind::Gauge,   Scale::One),
    ("pubsub_patterns",                                 "redis_pubsub_patterns",                                    Kind::Gauge,   Scale::One),
    ("pubsubshard_channels",                            "redis_pubsubshard_channels",                               Kind::Gauge,   Scale::One),
    ("rdb_bgsave_in_progress",                          "redis_rdb_bgsave_in_progress",                             Kind::Gauge,   Scale::One),
    ("rdb_changes_since_last_save",                     "redis_rdb_changes_since_last_save",                        Kind::Gauge,   Scale::One),
    ("rdb_current_bgsave_time_sec",                     "redis_rdb_current_bgsave_duration_sec",                    Kind::Gauge,   Scale::One),
    ("rdb_last_bgsave_status",                          "redis_rdb_last_bgsave_status",                             Kind::Gauge,   Scale::One),
    ("rdb_last_bgsave_time_sec",                        "redis_rdb_last_bgsave_duration_sec",                       Kind::Gauge,   Scale::One),
    ("rdb_last_cow_size",                               "redis_rdb_last_cow_size_bytes",                            Kind::Gauge,   Scale::One),
    ("rdb_last_load_keys_expired",                      "redis_rdb_last_load_expired_keys",                         Kind::Gauge,   Scale::One),
    ("rdb_last_load_keys_loaded",                       "redis_rdb_last_load_loaded_keys",                          Kind::Gauge,   Scale::One),
    ("rdb_last_save_time",                              "redis_rdb_last_save_timestamp_seconds",                    Kind::Gauge,   Scale::One),
    ("rdb_saves",                                       "redis_rdb_saves_total",                                    Kind::Gauge,   Scale::One),
    ("rejected_connections",                            "redis_rejected_connections_total",                         Kind::Counter, Scale::One),
    ("repl_backlog_active",                             "redis_repl_backlog_is_active",                             Kind::Gauge,   Scale::One),
    ("repl_backlog_first_byte_offset",                  "redis_repl_backlog_first_byte_offset",                     Kind::Gauge,   Scale::One),
    ("repl_backlog_histlen",                            "redis_repl_backlog_history_bytes",                         Kind::Gauge,   Scale::One),
    ("repl_backlog_size",                               "redis_replication_backlog_bytes",                          Kind::Gauge,   Scale::One),
    ("reply_buffer_expands",                            "redis_reply_buffer_expands_total",                         Kind::Counter, Scale::One),
    ("reply_buffer_shrinks",                            "redis_reply_buffer_shrinks_total",                         Kind::Counter, Scale::One),
    ("search_bytes_collected",                          "redis_search_collected_bytes",                             Kind::Gauge,   Scale::One),
    ("search_dialect_1",                                "redis_search_dialect_1",                                   Kind::Gauge,   Scale::One),
    ("search_dialect_2",                                "redis_search_dialect_2",                                   Kind::Gauge,   Scale::One),
    ("search_dialect_3",                                "redis_search_dialect_3",                                   Kind::Gauge,   Scale::One),
    ("search_dialect_4",                                "redis_search_dialect_4",                                   Kind::Gauge,   Scale::One),
    ("search_errors_indexing_failures",                 "redis_search_errors_indexing_failures",                    Kind::Gauge,   Scale::One),
    ("search_failure_requests_count",                   "redis_search_failure_requests_count",                      Kind::Counter, Scale::One),
    ("search_gc_bytes_collected",                       "redis_search_gc_collected_bytes",                          Kind::Gauge,   Scale::One),
    ("search_gc_marked_deleted_vectors",                "redis_search_gc_marked_deleted_vectors",                   Kind::Gauge,   Scale::One),
    ("search_gc_total_cycles",                          "redis_search_gc_cycles_total",                             Kind::Counter, Scale::One),
    ("search_gc_total_docs_not_collected",              "redis_search_gc_total_docs_not_collected",                 Kind::Gauge,   Scale::One),
    ("search_gc_total_ms_run",                          "redis_search_gc_run_ms_total",                             Kind::Counter, Scale::One),
    ("search_global_idle",                              "redis_search_global_idle",                                 Kind::Gauge,   Scale::One),
    ("search_global_idle_internal",                     "redis_search_global_idle_internal",                        Kind::Gauge,   Scale::One),
    ("search_global_idle_user",                         "redis_search_global_idle_user",                            Kind::Gauge,   Scale::One),
    ("search_global_total",                             "redis_search_global_total",                                Kind::Gauge,   Scale::One),
    ("search_global_total_internal",                    "redis_search_global_total_internal",                       Kind::Gauge,   Scale::One),
    ("search_global_total_user",                        "redis_search_global_total_user",                           Kind::Gauge,   Scale::One),
    ("search_hnsw_add_exceptions_count",                "redis_search_hnsw_add_exceptions_count",                   Kind::Counter, Scale::One),
    ("search_hnsw_create_exceptions_count",             "redis_search_hnsw_create_exceptions_count",                Kind::Counter, Scale::One),
    ("search_hnsw_modify_exceptions_count",             "redis_search_hnsw_modify_exceptions_count",                Kind::Counter, Scale::One),
    ("search_hnsw_remove_exceptions_count",             "redis_search_hnsw_remove_exceptions_count",                Kind::Counter, Scale::One),
    ("search_hnsw_search_exceptions_count",             "redis_search_hnsw_search_exceptions_count",                Kind::Counter, Scale::One),
    ("search_hybrid_requests_count",                    "redis_search_hybrid_requests_count",                       Kind::Counter, Scale::One),
    ("search_inline_filtering_requests_count",          "redis_search_inline_filtering_requests_count",             Kind::Counter, Scale::One),
    ("search_largest_memory_index",                     "redis_search_largest_memory_index_bytes",                  Kind::Gauge,   Scale::One),
    ("search_number_of_active_indexes",                 "redis_search_number_of_active_indexes",                    Kind::Gauge,   Scale::One),
    ("search_number_of_active_indexes_indexing",        "redis_search_number_of_active_indexes_indexing",           Kind::Gauge,   Scale::One),
    ("search_number_of_active_indexes_running_queries", "redis_search_number_of_active_indexes_running_queries",    Kind::Gauge,   Scale::One),
    ("search_number_of_attributes",                     "redis_search_number_of_attributes",                        Kind::Gauge,   Scale::One),
    ("search_number_of_indexes",                        "redis_search_number_of_indexes",                           Kind::Gauge,   Scale::One),
    ("search_query_queue_size",                         "redis_search_query_queue_size",                            Kind::Gauge,   Scale::One),
    ("search_rdb_load_failure_cnt",                     "redis_search_rdb_load_failure_count",                      Kind::Counter, Scale::One),
    ("search_rdb_load_success_cnt",                     "redis_search_rdb_load_success_count",                      Kind::Counter, Scale::One),
    ("search_rdb_save_failure_cnt",                     "redis_search_rdb_save_failure_count",                      Kind::Counter, Scale::One),
    ("search_rdb_save_success_cnt",                     "redis_search_rdb_save_success_count",                      Kind::Counter, Scale::One),
    ("search_reader_resumed_cnt",                       "redis_search_reader_resumed_count",                        Kind::Counter, Scale::One),
    ("search_smallest_memory_index",                    "redis_search_smallest_memory_index_bytes",                 Kind::Gauge,   Scale::One),
    ("search_string_interning_store_size",              "redis_search_string_interning_store_size",                 Kind::Gauge,   Scale::One),
    ("search_successful_requests_count",                "redis_search_successful_requests_count",                   Kind::Counter, Scale::One),
    ("search_total_active_queries",                     "redis_search_active_queries_total",                        Kind::Counter, Scale::One),
    ("search_total_active_write_threads",               "redis_search_total_active_write_threads",                  Kind::Gauge,   Scale::One),
    ("search_total_cycles",                             "redis_search_cycles_total",                                Kind::Counter, Scale::One),
    ("search_total_indexed_documents",                  "redis_search_total_indexed_documents",                     Kind::Gauge,   Scale::One),
    ("search_total_indexing_time",                      "redis_search_indexing_time_ms_total",                      Kind::Counter, Scale::One),
    ("search_total_ms_run",                             "redis_search_run_ms_total",                                Kind::Counter, Scale::One),
    ("search_total_num_docs_in_indexes",                "redis_search_total_num_docs_in_indexes",                   Kind::Gauge,   Scale::One),
    ("search_total_queries_processed",                  "redis_search_queries_processed_total",                     Kind::Counter, Scale::One),
    ("search_total_query_commands",                     "redis_search_query_commands_total",                        Kind::Counter, Scale::One),
    ("search_total_query_execution_time_ms",            "redis_search_query_execution_time_ms_total",               Kind::Counter, Scale::One),
    ("search_used_memory_bytes",                        "redis_search_used_memory_bytes",                           Kind::Gauge,   Scale::One),
    ("search_used_memory_indexes",                      "redis_search_used_memory_indexes_bytes",                   Kind::Gauge,   Scale::One),
    ("search_used_memory_vector_index",                 "redis_search_used_memory_vector_index_bytes",              Kind::Gauge,   Scale::One),
    ("search_vector_externing_deferred_entry_cnt",      "redis_search_vector_externing_deferred_entry_count",       Kind::Counter, Scale::One),
    ("search_vector_externing_entry_count",             "redis_search_vector_externing_entry_count",                Kind::Counter, Scale::One),
    ("search_vector_externing_generated_value_cnt",     "redis_search_vector_externing_generated_value_count",      Kind::Counter, Scale::One),
    ("search_vector_externing_hash_extern_errors",      "redis_search_vector_externing_hash_extern_errors",         Kind::Gauge,   Scale::One),
    ("search_vector_externing_lru_promote_cnt",         "redis_search_vector_externing_lru_promote_count",          Kind::Counter, Scale::One),
    ("search_vector_externing_num_lru_entries",         "redis_search_vector_externing_num_lru_entries",            Kind::Gauge,   Scale::One),
    ("search_worker_pool_suspend_cnt",                  "redis_search_worker_pool_suspend_count",                   Kind::Counter, Scale::One),
    ("search_writer_queue_size",                        "redis_search_writer_queue_size",                           Kind::Gauge,   Scale::One),
    ("search_writer_resumed_cnt",                       "redis_search_writer_resumed_count",                        Kind::Counter, Scale::One),
    ("search_writer_suspension_expired_cnt",            "redis_search_writer_suspension_expired_count",             Kind::Counter, Scale::One),
    ("second_repl_offset",                              "redis_second_repl_offset",                                 Kind::Gauge,   Scale::One),
    ("server_threads",                                  "redis_server_threads_total",                               Kind::Gauge,   Scale::One),
    ("slave_expires_tracked_keys",                      "redis_slave_expires_tracked_keys",                         Kind::Gauge,   Scale::One),
    ("slave_priority",                                  "redis_slave_priority",                                     Kind::Gauge,   Scale::One),
    ("slave_repl_offset",                               "redis_slave_repl_offset",                                  Kind::Gauge,   Scale::One),
    ("storage_provider_read_hits",                      "redis_storage_provider_read_hits",                         Kind::Counter, Scale::One),
    ("storage_provider_read_misses",                    "redis_storage_provider_read_misses",                       Kind::Counter, Scale::One),
    ("sync_full",                                       "redis_replica_resyncs_full",                               Kind::Gauge,   Scale::One),
    ("sync_partial_err",                                "redis_replica_partial_resync_denied",                      Kind::Gauge,   Scale::One),
    ("sync_partial_ok",                                 "redis_replica_partial_resync_accepted",                    Kind::Gauge,   Scale::One),
    ("total_blocking_keys",                             "redis_total_blocking_keys",                                Kind::Gauge,   Scale::One),
    ("total_blocking_keys_on_nokey",                    "redis_total_blocking_keys_on_nokey",                       Kind::Gauge,   Scale::One),
    ("total_commands_processed",                        "redis_commands_processed_total",                           Kind::Counter, Scale::One),
    ("total_connections_received",                      "redis_connections_received_total",                         Kind::Counter, Scale::One),
    ("total_error_replies",                             "redis_total_error_replies",                                Kind::Counter, Scale::One),
    ("total_eviction_exceeded_time",                    "redis_eviction_exceeded_time_ms_total",                    Kind::Counter, Scale::One),
    ("total_net_input_bytes",                           "redis_net_input_bytes_total",                              Kind::Counter, Scale::One),
    ("total_net_output_bytes",                          "redis_net_output_bytes_total",                             Kind::Counter, Scale::One),
    ("total_net_repl_input_bytes",                      "redis_net_repl_input_bytes_total",                         Kind::Counter, Scale::One),
    ("total_net_repl_output_bytes",                     "redis_net_repl_output_bytes_total",                        Kind::Counter, Scale::One),
    ("total_reads_processed",                           "redis_total_reads_processed",                              Kind::Counter, Scale::One),
    ("total_system_memory",                             "redis_total_system_memory_bytes",                          Kind::Gauge,   Scale::One),
    ("total_watched_keys",                              "redis_total_watched_keys",                                 Kind::Gauge,   Scale::One),
    ("total_writes_processed",                          "redis_total_writes_processed",                             Kind::Counter, Scale::One),
    ("tracking_clients",                                "redis_tracking_clients",                                   Kind::Gauge,   Scale::One),
    ("tracking_total_items",                            "redis_tracking_total_items",                               Kind::Gauge,   Scale::One),
    ("tracking_total_keys",                             "redis_tracking_total_keys",                                Kind::Gauge,   Scale::One),
    ("tracking_total_prefixes",                         "redis_tracking_total_prefixes",                            Kind::Gauge,   Scale::One),
    ("unexpected_error_replies",                        "redis_unexpected_error_replies",                           Kind::Counter, Scale::One),
    ("uptime_in_seconds",                               "redis_uptime_in_seconds",                                  Kind::Gauge,   Scale::One),
    ("used_active_time_main_thread",                    "redis_active_time_main_thread_seconds_total",              Kind::Counter, Scale::One),
    ("used_cpu_sys",                                    "redis_cpu_sys_seconds_total",                              Kind::Counter, Scale::One),
    ("used_cpu_sys_children",                           "redis_cpu_sys_children_seconds_total",                     Kind::Counter, Scale::One),
    ("used_cpu_sys_main_thread",                        "redis_cpu_sys_main_thread_seconds_total",                  Kind::Counter, Scale::One),
    ("used_cpu_user",                                   "redis_cpu_user_seconds_total",                             Kind::Counter, Scale::One),
    ("used_cpu_user_children",                          "redis_cpu_user_children_seconds_total",                    Kind::Counter, Scale::One),
    ("used_cpu_user_main_thread",                       "redis_cpu_user_main_thread_seconds_total",                 Kind::Counter, Scale::One),
    ("used_memory",                                     "redis_memory_used_bytes",                                  Kind::Gauge,   Scale::One),
    ("used_memory_dataset",                             "redis_memory_used_dataset_bytes",                          Kind::Gauge,   Scale::One),
    ("used_memory_functions",                           "redis_memory_used_functions_bytes",                        Kind::Gauge,   Scale::One),
    ("used_memory_lua",                                 "redis_memory_used_lua_bytes",                              Kind::Gauge,   Scale::One),
    ("used_memory_overhead",                            "redis_memory_used_overhead_bytes",                         Kind::Gauge,   Scale::One),
    ("used_memory_peak",                                "redis_memory_used_peak_bytes",                             Kind::Gauge,   Scale::One),
    ("used_memory_rss",                                 "redis_memory_used_rss_bytes",                              Kind::Gauge,   Scale::One),
    ("used_memory_scripts",                             "redis_memory_used_scripts_bytes",                          Kind::Gauge,   Scale::One),
    ("used_memory_scripts_eval",                        "redis_memory_used_scripts_eval_bytes",                     Kind::Gauge,   Scale::One),
    ("used_memory_startup",                             "redis_memory_used_startup_bytes",                          Kind::Gauge,   Scale::One),
    ("used_memory_vm_eval",                             "redis_memory_used_vm_eval_bytes",                          Kind::Gauge,   Scale::One),
    ("used_memory_vm_functions",                        "redis_memory_used_vm_functions_bytes",                     Kind::Gauge,   Scale::One),
    ("used_memory_vm_total",                            "redis_memory_used_vm_total",                               Kind::Gauge,   Scale::One),
    ("watching_clients",                                "redis_watching_clients",                                   Kind::Gauge,   Scale::One),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_sorted_without_duplicates() {
        for pair in INFO_FIELDS.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{} must sort before {}",
                pair[0].0,
                pair[1].0
            );
        }
    }

    #[test]
    fn every_row_is_an_info_field() {
        for row in INFO_FIELDS {
            assert!(
                row.0
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is no INFO field name",
                row.0
            );
        }
    }

    #[test]
    fn every_metric_name_is_used_once() {
        let mut seen = HashSet::new();
        for row in INFO_FIELDS {
            assert!(seen.insert(row.1), "{} is the target of two fields", row.1);
            assert!(row.1.starts_with("redis_"));
        }
    }

    #[test]
    fn lookup_finds_quirky_rows() {
        assert_eq!(
            lookup("rdb_saves").map(|r| (r.1, r.2)),
            Some(("redis_rdb_saves_total", Kind::Gauge))
        );
        assert_eq!(
            lookup("total_error_replies").map(|r| (r.1, r.2)),
            Some(("redis_total_error_replies", Kind::Counter))
        );
        assert_eq!(
            lookup("maxmemory").map(|r| r.1),
            Some("redis_memory_max_bytes")
        );
        assert_eq!(
            lookup("total_system_memory").map(|r| r.1),
            Some("redis_total_system_memory_bytes")
        );
        assert_eq!(
            lookup("latest_fork_usec").map(|r| r.3.apply(546.0)),
            Some(0.000546)
        );
        assert!(lookup("instantaneous_ops_per_sec").is_none());
    }
}

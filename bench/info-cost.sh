#!/usr/bin/env bash
# What each INFO variant costs the Redis server, per call, under the load of
# bench/side-by-side.sh: one redis-server, redis-benchmark SET/GET bursts,
# and one INFO a second (as an agent at a 1 s interval sends it) for CALLS
# seconds per variant. The figure is Redis' own commandstats usec_per_call
# of INFO, reset between variants; no agent runs meanwhile.
#
# It shows where the Redis-side cost of a 1 s interval comes from: the
# exporter's INFO ALL against the sections redpush reads between complete
# readings, and each of those alone.
#
# usage: bench/info-cost.sh               (CALLS=25)
set -euo pipefail

CALLS=${CALLS:-25}
root=$(cd "$(dirname "$0")/.." && pwd)
tools=(redis-server:redis-server redis-benchmark:redis-tools python3:python3 curl:curl)
need_redpush=0
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

start_redis
start_load
port=$redis_port
sleep 5

printf '%-52s %12s\n' "INFO sections" "µs per call"
for sections in "ALL" "clients memory stats replication cluster keyspace" \
    "memory stats" "memory" "stats" "clients" "replication" "keyspace" "server"; do
    redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
    for _ in $(seq "$CALLS"); do
        # shellcheck disable=SC2086 # the sections are separate arguments
        redis-cli -p "$port" INFO $sections >/dev/null
        sleep 1
    done
    per_call=$(redis-cli -p "$port" INFO commandstats |
        awk -F'[:,=]' '$1 == "cmdstat_info" {print $7}')
    printf '%-52s %12s\n' "$sections" "$per_call"
done
# The load's loop is a subshell: its redis-benchmark goes with the server.

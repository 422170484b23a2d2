#!/usr/bin/env bash
# Memory and queue growth of redpush sampling a server whose INFO holds
# FIELDS fields (default 400,000: a 6.3 MB reply, within the 8 MiB reply
# budget) every second for DURATION seconds while the remote-write receiver
# is down (so everything stays queued): peak RSS, RSS at the end, and the
# queue's size on disk. `[metrics] max_series_per_target` (10,000) bounds
# both. REDPUSH=path measures another build.
#
#   bash bench/hostile-info.sh            # FIELDS=400000 DURATION=60
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=(python3:python3 curl:curl bc:bc)
source "$root/bench/common.sh"
fields=${FIELDS:-400000}
duration=${DURATION:-60}

python3 "$root/bench/huge_info.py" "$fields" >"$work/port" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
listen=$(free_port)
closed=$(free_port) # nothing listens: the receiver is down
"$redpush" --redis "redis://127.0.0.1:$port" --interval 1s --listen "127.0.0.1:$listen" \
    --remote-write "http://127.0.0.1:$closed/api/v1/write" --state-dir "$work/state" \
    --log-level error 2>"$work/redpush.log" &
pid=$!
pids+=($pid)
wait_http "http://127.0.0.1:$listen/healthz"
sleep "$duration"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
queue=$(du -sk "$work/state/wal" | cut -f1)
series=$(curl -fs "http://127.0.0.1:$listen/metrics" | grep -vc '^#')
printf 'INFO fields %d, %d s at 1 s: peak RSS %.1f MiB, RSS %.1f MiB, queue %.1f MiB, %d series on /metrics\n' \
    "$fields" "$duration" "$(echo "$hwm/1024" | bc -l)" "$(echo "$rss/1024" | bc -l)" \
    "$(echo "$queue/1024" | bc -l)" "$series"

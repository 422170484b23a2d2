#!/usr/bin/env bash
# One redpush with many targets: CPU, memory, and whether every target keeps
# its interval.
#
# The targets are one real redis-server (Debian's 7.0) seen through
# bench/fanout.py, a TCP fan-out that gives it N ports: every target is a
# real Redis answering real INFO, over its own connection. redpush samples
# all N at a fixed 10 s interval (adaptive off) and remote-writes to a
# VictoriaMetrics. After WARMUP seconds the script measures DURATION seconds
# of redpush's CPU (utime+stime), then its peak resident memory (VmHWM), then
# reads every raw redis_up sample of the window back from VictoriaMetrics and
# reports the largest gap between two samples of one target, and the samples
# queued at the start and the end of the window (a backlog that grows means
# the sender does not keep up).
#
# usage: bench/scale.sh                 (TARGETS="100 1000" DURATION=120 WARMUP=30)
#        ENDPOINTS=2 bench/scale.sh     pushes to two VictoriaMetrics as two
#                                       [[remote_write]] endpoints; samples/s
#                                       is the first one's, the gaps are read
#                                       from it, the backlog is the larger
#        OUTAGE=30 bench/scale.sh       the receivers start 30 s after redpush:
#                                       peak memory includes catching up
set -euo pipefail

TARGETS=${TARGETS:-"100 1000"}
ENDPOINTS=${ENDPOINTS:-1}
DURATION=${DURATION:-120}
WARMUP=${WARMUP:-30}
OUTAGE=${OUTAGE:-0}
INTERVAL=10
root=$(cd "$(dirname "$0")/.." && pwd)

tools=(redis-server:redis-server redis-cli:redis-tools victoria-metrics:victoria-metrics
    curl:curl python3:python3)
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"
# 1000 targets need 1000 sockets in redpush and 3000 in the fan-out.
ulimit -n "$(ulimit -Hn)"
cpu_ticks() { # pid -> "utime stime" in clock ticks
    local f
    read -r -a f < <(sed 's/^.*) //' "/proc/$1/stat")
    echo "${f[11]} ${f[12]}"
}

start_receivers() { # vm_ports -> vm_pids: a VictoriaMetrics on each
    for ((e = 0; e < ENDPOINTS; e++)); do
        victoria-metrics -httpListenAddr="127.0.0.1:${vm_ports[$e]}" -storageDataPath="$run/vm$e" \
            -search.latencyOffset=0s -search.disableCache -loggerLevel=ERROR >"$run/vm$e.log" 2>&1 &
        vm_pids+=($!)
        pids+=($!)
        wait_http "http://127.0.0.1:${vm_ports[$e]}/health"
    done
}

# --- one real Redis with some data and command history -----------------------
start_redis_with_history

printf '%8s %10s %10s %7s %7s %9s %8s %12s %10s %10s %8s %9s %10s\n' targets samples/s "CPU %core" user sys \
    "peak MiB" threads "redis_up pts" "max gap s" "late tgts" missing "queued@0" "queued@end"
for n in $TARGETS; do
    run="$work/$n"
    mkdir -p "$run"
    coproc FANOUT { exec python3 "$root/bench/fanout.py" "$n" "127.0.0.1:$redis_port"; }
    pids+=("$FANOUT_PID")
    read -r first <&"${FANOUT[0]}"

    vm_ports=() vm_pids=()
    for ((e = 0; e < ENDPOINTS; e++)); do vm_ports+=("$(free_port)"); done
    vm_port=${vm_ports[0]}

    listen_port=$(free_port)
    {
        echo "listen = \"127.0.0.1:$listen_port\""
        echo "state_dir = \"$run/state\""
        echo "interval = \"${INTERVAL}s\""
        echo "adaptive = false"
        for ((e = 0; e < ENDPOINTS; e++)); do
            if [ "$ENDPOINTS" = 1 ]; then echo "[remote_write]"; else echo "[[remote_write]]"; fi
            echo "url = \"http://127.0.0.1:${vm_ports[$e]}/api/v1/write\""
            # More settings of each endpoint, e.g. REMOTE_WRITE_EXTRA='max_samples_per_send = 20000'.
            echo "${REMOTE_WRITE_EXTRA:-}"
        done
        for ((i = 0; i < n; i++)); do
            # TARGET_EXTRA: TOML added to every target (relabeling rules...).
            printf '[[targets]]\nurl = "redis://127.0.0.1:%d"\n%s\n' $((first + i)) "${TARGET_EXTRA:-}"
        done
        # More settings for experiments, e.g. EXTRA_CONFIG=$'[queue]\nfsync = "never"'.
        echo "${EXTRA_CONFIG:-}"
    } >"$run/redpush.toml"
    if [ "$OUTAGE" = 0 ]; then start_receivers; fi
    RUST_LOG=warn "$redpush" --config "$run/redpush.toml" >"$run/redpush.log" 2>&1 &
    redpush_pid=$!
    pids+=($redpush_pid)
    wait_http "http://127.0.0.1:$listen_port/healthz"
    # OUTAGE: the receivers start that long after redpush, which queues
    # meanwhile and then catches up (the window starts WARMUP s after).
    sleep "$OUTAGE"
    start_receivers

    sleep "$WARMUP"
    start=$(date +%s)
    read -r user0 sys0 < <(cpu_ticks "$redpush_pid")
    page=$(curl -fs "http://127.0.0.1:$listen_port/metrics")
    # The first endpoint's; the backlog of the one furthest behind.
    sent0=$(awk '/^redpush_samples_sent_total/ {print $NF; exit}' <<<"$page")
    backlog0=$(awk '/^redpush_queue_samples[{ ]/ {if ($NF > m) m = $NF} END {print m + 0}' <<<"$page")
    sleep "$DURATION"
    read -r user1 sys1 < <(cpu_ticks "$redpush_pid")
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$redpush_pid/status")
    page=$(curl -fs "http://127.0.0.1:$listen_port/metrics")
    sent1=$(awk '/^redpush_samples_sent_total/ {print $NF; exit}' <<<"$page")
    # Samples still queued: a backlog that grows run after run means the
    # sender does not keep up.
    backlog=$(awk '/^redpush_queue_samples[{ ]/ {if ($NF > m) m = $NF} END {print m + 0}' <<<"$page")
    end=$(date +%s)
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$redpush_pid/status")
    kill "$redpush_pid" "$FANOUT_PID"
    # Let the last batches land before reading back.
    sleep 2
    curl -fs "http://127.0.0.1:$vm_port/api/v1/export" -d 'match[]=redis_up' \
        -d "start=$start" -d "end=$end" >"$run/redis_up.jsonl"
    kill "${vm_pids[@]}"

    python3 - "$run/redis_up.jsonl" "$n" "$INTERVAL" "$start" "$end" \
        "$((user1 - user0))" "$((sys1 - sys0))" "$(getconf CLK_TCK)" "$hwm" "$sent0" "$sent1" "$threads" "$backlog0" "$backlog" <<'EOF'
import json, sys
path, n, interval, start, end, user, system, hz, hwm, sent0, sent1, threads, backlog0, backlog = sys.argv[1:]
n, interval, start, end = int(n), float(interval), int(start), int(end)
duration = end - start
points, worst, late, seen = 0, 0.0, 0, 0
for line in open(path):
    series = json.loads(line)
    ts = sorted(t / 1000 for t in series["timestamps"])
    if not ts:
        continue
    seen += 1
    points += len(ts)
    # Gaps include the window's edges, so a target that stopped early counts.
    gaps = [b - a for a, b in zip([start] + ts, ts + [end])]
    worst = max(worst, max(gaps))
    if max(gaps) > 1.5 * interval:
        late += 1
user = int(user) / int(hz) / duration * 100
system = int(system) / int(hz) / duration * 100
rate = (float(sent1) - float(sent0)) / duration
print(f"{n:8d} {rate:10.0f} {user + system:10.2f} {user:7.2f} {system:7.2f} {int(hwm) / 1024:9.1f} {threads:>8}"
      f" {points:12d} {worst:10.1f} {late:10d} {n - seen:8d} {int(float(backlog0)):>9d} {int(float(backlog)):>10d}")
EOF
done

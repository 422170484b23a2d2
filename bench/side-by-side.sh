#!/usr/bin/env bash
# Side-by-side cost of the usual pair and of redpush, on one machine, one run.
#
#   (a) Debian's prometheus-redis-exporter, scraped every 1 s by Prometheus in
#       agent mode, which remote-writes to a receiving Prometheus;
#   (b) redpush sampling every 1 s (adaptive off), remote-writing to a
#       receiving Prometheus of its own.
#
# Both sample the same redis-server under the same steady redis-benchmark
# load. The phases run one after the other (not together: on a small machine
# they would steal CPU from each other), each for DURATION seconds after a
# WARMUP. Each side's remote write goes through bench/wire_meter.py, a
# counting proxy, so the wire bytes are counted the same way for both.
#
# Printed per side: CPU seconds (utime+stime of all its processes) per 1000
# delivered samples, peak resident memory (VmHWM, summed over its processes),
# request bytes per delivered sample (headers + body, as sent), and the Redis
# server's CPU spent on the monitoring commands (commandstats usec of every
# command but the load's SET and GET). Then the ratios redpush / pair.
#
# usage: bench/side-by-side.sh            (DURATION=180 WARMUP=30 by default)
#        SECOND_ENDPOINT=1 ...   both sides also remote-write to a second
#                                endpoint (bench/sink.py, answering 204);
#                                the figures are the first one's
#        WRITE_RELABEL=1 ...     both sides apply a write relabel rule to
#                                each endpoint (instance's host copied into
#                                a label `host`: every series relabeled,
#                                none dropped)
set -euo pipefail

SECOND_ENDPOINT=${SECOND_ENDPOINT:-0}
WRITE_RELABEL=${WRITE_RELABEL:-0}
DURATION=${DURATION:-180}
WARMUP=${WARMUP:-30}
root=$(cd "$(dirname "$0")/.." && pwd)

tools=(redis-server:redis-server redis-benchmark:redis-tools prometheus:prometheus
    prometheus-redis-exporter:prometheus-redis-exporter curl:curl python3:python3)
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"
# How much of the linker's function order this build matches (resident memory
# depends on it: bench/function-order.sh).
bash "$root/bench/function-order.sh" --check "$redpush" >&2
cpu_ticks() { # pid... : utime+stime in clock ticks
    local total=0 pid
    for pid in "$@"; do
        # Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
        read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat")
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
peak_rss_kib() { # pid...
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}
monitoring_usec() { # Redis CPU of every command but the load's
    redis-cli -p "$redis_port" INFO commandstats |
        awk -F'[:,=]' '/^cmdstat_/ && $1 != "cmdstat_set" && $1 != "cmdstat_get" {u += $5} END {print u + 0}'
}
samples_appended() { # receiver port
    curl -fs "http://127.0.0.1:$1/metrics" |
        awk '/^prometheus_tsdb_head_samples_appended_total/ {s += $NF} END {printf "%d\n", s}'
}
wire_bytes() { # meter port
    curl -fs "http://127.0.0.1:$1/__stats" |
        python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["header_bytes"]+s["body_bytes"], s["requests"], s["non_2xx"])'
}
# The same relabel rule on both sides (WRITE_RELABEL=1), and the second
# endpoint's sink (SECOND_ENDPOINT=1).
pair_endpoint_extra() {
    if [ "$WRITE_RELABEL" = 1 ]; then
        printf '    write_relabel_configs:\n      - source_labels: [instance]\n        regex: "(.*):.*"\n        target_label: host\n'
    fi
}
redpush_endpoint() { # port
    if [ "$SECOND_ENDPOINT" = 1 ]; then echo "[[remote_write]]"; else echo "[remote_write]"; fi
    echo "url = \"http://127.0.0.1:$1/api/v1/write\""
    if [ "$WRITE_RELABEL" = 1 ]; then
        printf '[[remote_write.write_relabel_configs]]\nsource_labels = ["instance"]\nregex = "(.*):.*"\ntarget_label = "host"\n'
    fi
}
if [ "$SECOND_ENDPOINT" = 1 ]; then
    sink_port=$(free_port)
    python3 "$root/bench/sink.py" "$sink_port" &
    pids+=($!)
fi

start_receiver() { # name -> sets recv_port, meter_port
    recv_port=$(free_port)
    meter_port=$(free_port)
    mkdir -p "$work/$1-receiver"
    printf 'global:\n  scrape_interval: 1m\n' >"$work/$1-receiver/prometheus.yml"
    prometheus --config.file="$work/$1-receiver/prometheus.yml" \
        --storage.tsdb.path="$work/$1-receiver/data" \
        --web.listen-address="127.0.0.1:$recv_port" \
        --web.enable-remote-write-receiver >"$work/$1-receiver/log" 2>&1 &
    pids+=($!)
    python3 "$root/bench/wire_meter.py" "$meter_port" "127.0.0.1:$recv_port" &
    pids+=($!)
    wait_http "http://127.0.0.1:$recv_port/-/ready"
    wait_http "http://127.0.0.1:$meter_port/__stats"
}

# --- the monitored server and its load --------------------------------------
start_redis
start_load

# measure NAME PID... : runs the warm-up and the window, prints one result line.
measure() {
    local name=$1
    shift
    sleep "$WARMUP"
    local cpu0 usec0 samples0 wire0
    cpu0=$(cpu_ticks "$@")
    usec0=$(monitoring_usec)
    redis-cli -p "$redis_port" INFO commandstats >"$work/$name.stats0"
    samples0=$(samples_appended "$recv_port")
    read -r wire0 _ _ < <(wire_bytes "$meter_port")
    sleep "$DURATION"
    local cpu1 usec1 samples1 wire1 requests failed rss
    cpu1=$(cpu_ticks "$@")
    usec1=$(monitoring_usec)
    redis-cli -p "$redis_port" INFO commandstats >"$work/$name.stats1"
    samples1=$(samples_appended "$recv_port")
    read -r wire1 requests failed < <(wire_bytes "$meter_port")
    rss=$(peak_rss_kib "$@")
    echo "$name $((cpu1 - cpu0)) $((samples1 - samples0)) $((wire1 - wire0)) $rss $((usec1 - usec0)) $requests $failed" >>"$work/results"
}

# --- (a) exporter + Prometheus agent ----------------------------------------
start_receiver pair
exporter_port=$(free_port)
agent_port=$(free_port)
prometheus-redis-exporter --redis.addr="redis://127.0.0.1:$redis_port" \
    --web.listen-address="127.0.0.1:$exporter_port" >"$work/exporter.log" 2>&1 &
exporter_pid=$!
pids+=($exporter_pid)
mkdir -p "$work/agent"
cat >"$work/agent/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: redis
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
remote_write:
  - url: http://127.0.0.1:$meter_port/api/v1/write
$(pair_endpoint_extra)
EOF
if [ "$SECOND_ENDPOINT" = 1 ]; then
    printf '  - url: http://127.0.0.1:%s/api/v1/write\n%s\n' "$sink_port" "$(pair_endpoint_extra)" \
        >>"$work/agent/prometheus.yml"
fi
prometheus --enable-feature=agent --config.file="$work/agent/prometheus.yml" \
    --storage.agent.path="$work/agent/data" \
    --web.listen-address="127.0.0.1:$agent_port" >"$work/agent/log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
echo "phase (a): exporter + Prometheus agent, ${WARMUP}s warm-up + ${DURATION}s" >&2
measure pair "$exporter_pid" "$agent_pid"
kill "$exporter_pid" "$agent_pid"

# --- (b) redpush --------------------------------------------------------------
start_receiver redpush
mkdir -p "$work/redpush"
cat >"$work/redpush/redpush.toml" <<EOF
listen = "127.0.0.1:$(free_port)"
state_dir = "$work/redpush/state"
interval = "1s"
adaptive = false
[[targets]]
url = "redis://127.0.0.1:$redis_port"
EOF
redpush_endpoint "$meter_port" >>"$work/redpush/redpush.toml"
if [ "$SECOND_ENDPOINT" = 1 ]; then
    redpush_endpoint "$sink_port" >>"$work/redpush/redpush.toml"
fi
RUST_LOG=warn "$redpush" --config "$work/redpush/redpush.toml" >"$work/redpush/log" 2>&1 &
redpush_pid=$!
pids+=($redpush_pid)
echo "phase (b): redpush, ${WARMUP}s warm-up + ${DURATION}s" >&2
measure redpush "$redpush_pid"
kill "$redpush_pid"

# --- report ---------------------------------------------------------------------
python3 - "$work/results" "$(getconf CLK_TCK)" "$DURATION" "$work" <<'EOF'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    name, ticks, samples, wire, rss, usec, requests, failed = line.split()
    rows[name] = dict(cpu=int(ticks) / int(sys.argv[2]), samples=int(samples), wire=int(wire),
                      rss=int(rss) / 1024, usec=int(usec), requests=int(requests), failed=int(failed))
duration = float(sys.argv[3])
def figures(r):
    per_k = r["cpu"] / r["samples"] * 1000 if r["samples"] else float("nan")
    return dict(cpu_per_1000=per_k, rss=r["rss"], bytes_per_sample=r["wire"] / max(r["samples"], 1),
                redis_ms_per_s=r["usec"] / 1000 / duration, samples_per_s=r["samples"] / duration,
                cpu_pct=r["cpu"] / duration * 100)
a, b = figures(rows["pair"]), figures(rows["redpush"])
print(f"{'':34} {'exporter+agent':>15} {'redpush':>12} {'ratio':>8}")
for key, label in [("cpu_per_1000", "CPU s per 1000 delivered samples"),
                   ("rss", "peak resident memory (MiB)"),
                   ("bytes_per_sample", "wire bytes per delivered sample"),
                   ("redis_ms_per_s", "Redis CPU on monitoring (ms/s)")]:
    print(f"{label:34} {a[key]:15.4f} {b[key]:12.4f} {b[key] / a[key]:8.3f}")
for key, label in [("samples_per_s", "delivered samples per second"),
                   ("cpu_pct", "CPU (% of one core)")]:
    print(f"{label:34} {a[key]:15.1f} {b[key]:12.1f}")
def usec(path):
    out = {}
    for line in open(path):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+)", line)
        if m:
            out[m[1]] = (int(m[2]), int(m[3]))
    return out
for name in ("pair", "redpush"):
    r = rows[name]
    print(f"{name}: {r['requests']} requests, {r['failed']} not 2xx; Redis time per command:")
    before, after = usec(f"{sys.argv[4]}/{name}.stats0"), usec(f"{sys.argv[4]}/{name}.stats1")
    for cmd, (calls, us) in sorted(after.items(), key=lambda kv: -kv[1][1]):
        c0, u0 = before.get(cmd, (0, 0))
        if cmd not in ("set", "get") and calls > c0:
            print(f"    {cmd:20} {calls - c0:6} calls {us - u0:9} usec  {(us - u0) / (calls - c0):7.1f} usec/call")
EOF

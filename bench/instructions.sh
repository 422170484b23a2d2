#!/usr/bin/env bash
# Instructions per reading: redpush's whole work for one target's reading
# (sample, parse, map, flatten, queue, encode, send), counted by callgrind.
#
# CPU seconds on a shared machine vary by ±10% between runs of the same
# build (bench/scale.sh); an instruction count does not, so this is the
# figure to compare two builds by (REDPUSH=path for the other one). The
# setup is bench/scale.sh's: one real redis-server seen through
# bench/fanout.py as TARGETS targets, sampled every 10 s (adaptive off) into
# VictoriaMetrics. After WARMUP seconds the counters are zeroed; after
# DURATION more they are dumped and divided by the readings taken meanwhile
# (from redpush's own redpush_samples_sent_total and the samples per reading).
#
# usage: bench/instructions.sh          (TARGETS=100 DURATION=60 WARMUP=40)
#        PROFILE=file bench/instructions.sh   also keeps the window's callgrind
#                                             profile, for callgrind_annotate
#        TARGET_EXTRA=... REMOTE_WRITE_EXTRA=... TOML added to every [[targets]]
#                                             and to [remote_write] (relabel
#                                             rules: keep them from dropping
#                                             series, or the count is off)
set -euo pipefail

TARGETS=${TARGETS:-100}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-40}
root=$(cd "$(dirname "$0")/.." && pwd)

tools=(redis-server:redis-server redis-cli:redis-tools victoria-metrics:victoria-metrics
    curl:curl python3:python3 valgrind:valgrind)
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"
ulimit -n "$(ulimit -Hn)"

start_redis_with_history

coproc FANOUT { exec python3 "$root/bench/fanout.py" "$TARGETS" "127.0.0.1:$redis_port"; }
pids+=("$FANOUT_PID")
read -r first <&"${FANOUT[0]}"
vm_port=$(free_port)
victoria-metrics -httpListenAddr="127.0.0.1:$vm_port" -storageDataPath="$work/vm" \
    -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$vm_port/health"

listen_port=$(free_port)
{
    echo "listen = \"127.0.0.1:$listen_port\""
    echo "state_dir = \"$work/state\""
    echo "interval = \"10s\""
    echo "adaptive = false"
    for ((i = 0; i < TARGETS; i++)); do
        printf '[[targets]]\nurl = "redis://127.0.0.1:%d"\n%s\n' $((first + i)) "${TARGET_EXTRA:-}"
    done
    echo "[remote_write]"
    echo "url = \"http://127.0.0.1:$vm_port/api/v1/write\""
    echo "${REMOTE_WRITE_EXTRA:-}"
} >"$work/redpush.toml"
RUST_LOG=warn valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$work/callgrind.out.%p" \
    "$redpush" --config "$work/redpush.toml" >"$work/redpush.log" 2>&1 &
redpush_pid=$!
pids+=($redpush_pid)
for _ in $(seq 600); do curl -fs -o /dev/null "http://127.0.0.1:$listen_port/healthz" && break; sleep 0.1; done

sent() {
    curl -fs "http://127.0.0.1:$listen_port/metrics" |
        awk '/^redpush_samples_sent_total/ {print $NF; exit}' # the first endpoint's
}
sleep "$WARMUP"
# Samples of one reading of one target, from the page (all targets alike).
per_reading=$(curl -fs "http://127.0.0.1:$listen_port/metrics" |
    awk -v i="127.0.0.1:$first" 'index($0, "instance=\"" i "\"") && !/^#/ {n++} END {print n}')
sent0=$(sent)
callgrind_control --zero "$redpush_pid" >/dev/null
sleep "$DURATION"
callgrind_control --dump "$redpush_pid" >/dev/null
sent1=$(sent)
if [ -n "${PROFILE:-}" ]; then cat "$work"/callgrind.out.*.* >"$PROFILE"; fi
instructions=$(cat "$work"/callgrind.out.*.* 2>/dev/null | awk '/^summary:/ {s += $2} END {print s + 0}')
python3 - "$instructions" "$sent0" "$sent1" "$per_reading" "$TARGETS" "$DURATION" <<'EOF'
import sys
instructions, sent0, sent1, per_reading, targets, duration = sys.argv[1:]
samples = float(sent1) - float(sent0)
readings = samples / int(per_reading)
print(f"{targets} targets, {duration} s: {int(instructions):,} instructions, "
      f"{readings:.0f} readings of {per_reading} samples")
print(f"instructions per reading: {int(instructions) / readings:,.0f}")
EOF

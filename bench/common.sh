# Shared by the bench/ scripts: sourced, not run. Expects `root` (the
# repository) to be set and a list of "command:debian-package" pairs in
# `tools`; installs what is missing, builds redpush (unless REDPUSH names a
# binary or need_redpush=0), and sets up a work directory whose processes (`pids`) are stopped
# on exit.

need=()
for tool in "${tools[@]}"; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if ((${#need[@]})); then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# REDPUSH=path runs another build (to compare two commits) instead; a script
# that measures only Redis sets need_redpush=0.
if [ "${need_redpush:-1}" = 0 ]; then
    redpush=""
elif [ -n "${REDPUSH:-}" ]; then
    redpush=$REDPUSH
else
    (cd "$root" && cargo build --release --locked -q)
    redpush="$root/target/release/redpush"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # url
    for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "no answer from $1" >&2; return 1
}
start_redis() { # [redis-server options...] -> a redis-server 7.0 on a free port, in redis_port
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$work" --logfile "$work/redis.log" "$@" &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p "$redis_port" PING >/dev/null 2>&1 && break; sleep 0.1; done
}
start_redis_with_history() { # start_redis for many targets, with 3,000 keys in 3
    # databases and the command history of a redis-benchmark run (about 660
    # samples per reading)
    start_redis --maxclients 10000
    redis-benchmark -p "$redis_port" -n 20000 -q >/dev/null 2>&1
    for db in 0 1 2; do redis-cli -p "$redis_port" -n "$db" DEBUG POPULATE 1000 >/dev/null; done
}
start_load() { # steady SET/GET on redis_port until exit
    # Short redis-benchmark runs back to back with a pause, so the load does
    # not take a whole core of this machine away from the measured side.
    (
        while true; do
            redis-benchmark -p "$redis_port" -t set,get -n 20000 -c 2 -r 10000 -q >/dev/null 2>&1
            sleep 0.5
        done
    ) &
    pids+=($!)
}

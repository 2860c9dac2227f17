# Sourced by e2e/shop.sh and loadgen/shop.sh: the one way a test script stops
# the shop it started.
# shellcheck shell=bash

# stop_launcher PID DATA_DIR LABEL: SIGINT to the launcher, SIGKILL after
# 20 s; then SIGKILL to any service it started (its pid file in
# DATA_DIR/run, its environment naming DATA_DIR) that outlived it. Returns
# 1 if anything had to be killed. LABEL prefixes the messages.
stop_launcher() {
    local launcher=$1 data=$2 label=$3 status=0 pidfile pid
    if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
        kill -INT "$launcher" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$launcher" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$launcher" 2>/dev/null; then
            echo "${label}the launcher did not stop within 20 s; killing it" >&2
            kill -KILL "$launcher" 2>/dev/null || true
            status=1
        fi
    fi
    # Nothing the launcher started may outlive it.
    for pidfile in "$data"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null && grep -qz "$data" "/proc/$pid/environ" 2>/dev/null; then
            echo "${label}$(basename "$pidfile" .pid) (pid $pid) outlived the launcher" >&2
            kill -KILL "$pid" 2>/dev/null || true
            status=1
        fi
    done
    return "$status"
}

# Starts and stops the shop with the launcher for the load scripts
# (loadgen/smoke.sh, bench/shop.sh); sourced, not run.
#
#   shop_start BIN_DIR WORK_DIR DB [NAME=VALUE...]
#       DB is `sqlite` or a PostgreSQL URL (a fresh database per service is
#       created beside it and dropped by shop_stop). The settings are put in
#       the launcher's environment, which its children inherit. Sets
#       SHOP_URL (the balancer), SHOP_BASE (the port base), SHOP_DATA and
#       SHOP_LOG.
#   shop_wait_ready
#       Waits (90 s at most) until every service answers its own /readyz and
#       the balancer has a healthy replica in every pool; records in
#       SHOP_START_MS[name] how long each took from exec to its first 200
#       (loadgen/startup_times.py), and in SHOP_STACK_MS the launcher's
#       exec to the balancer reporting every pool healthy.
#   shop_pid NAME          the process id of a service (or `balancer`)
#   shop_loadgen BIN_DIR ARGS…  the generator against this shop, checks on
#   shop_stop              SIGINT to the launcher, SIGKILL after 20 s;
#                          drops the databases; returns non-zero if
#                          anything had to be killed
# shellcheck shell=bash

# shellcheck source=e2e/stop_launcher.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/stop_launcher.sh"

SHOP_SERVICES=(users products cart mailer stats payments-mock balancer)
declare -A SHOP_OFFSET=([users]=1 [products]=2 [cart]=3 [mailer]=4 [stats]=5 [payments-mock]=6 [balancer]=80)
declare -A SHOP_PREFIX=([users]=USERS [products]=PRODUCTS [cart]=CART [mailer]=MAILER [stats]=STATS [payments-mock]=PAYMENTS)
declare -A SHOP_START_MS=()
SHOP_STACK_MS=""
SHOP_LAUNCHER=""
SHOP_DATABASES=()
SHOP_DB_URL=""

# A port base whose shop ports are all free (the one picker every script uses).
shop_pick_base() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/../e2e/free_port_base.py"
}

shop_start() {
    local bin=$1 work=$2 db=$3
    shift 3
    SHOP_BASE=$(shop_pick_base)
    SHOP_URL="http://127.0.0.1:$((SHOP_BASE + 80))"
    # The balancer's admin listener: /metrics and /readyz with the pools.
    SHOP_ADMIN_URL="http://127.0.0.1:$((SHOP_BASE + 81))"
    SHOP_DATA="$work/data"
    SHOP_LOG="$work/launcher.log"
    SHOP_START_MS=()
    local env=()
    if [ "$db" != sqlite ]; then
        SHOP_DB_URL=$db
        local service name
        for service in "${!SHOP_PREFIX[@]}"; do
            name="load_$(echo "${SHOP_PREFIX[$service]}" | tr '[:upper:]' '[:lower:]')_$$_${RANDOM}"
            psql "$db" -qc "CREATE DATABASE $name"
            SHOP_DATABASES+=("$name")
            env+=("${SHOP_PREFIX[$service]}_DATABASE_URL=${db%/*}/$name")
        done
    fi
    # The poller first, so it is already polling when the services start.
    local service targets=()
    for service in "${SHOP_SERVICES[@]}"; do
        targets+=("$service=$((SHOP_BASE + SHOP_OFFSET[$service]))")
    done
    SHOP_STARTUP="$work/startup.txt"
    python3 "$(dirname "${BASH_SOURCE[0]}")/startup_times.py" "$SHOP_DATA" "${targets[@]}" \
        --timeout 90 >"$SHOP_STARTUP" &
    SHOP_POLLER=$!
    # A clean environment for the shop: CARGO would make the launcher build.
    env -u CARGO RUST_LOG="${RUST_LOG:-warn}" "${env[@]}" "$@" \
        "$bin/launcher" --data-dir "$SHOP_DATA" --port-base "$SHOP_BASE" --bin-dir "$bin" \
        >"$SHOP_LOG" 2>&1 &
    SHOP_LAUNCHER=$!
}

shop_pid() {
    cat "$SHOP_DATA/run/$1.pid" 2>/dev/null
}

# Milliseconds since boot, and a process's start in milliseconds since boot
# (field 22 of /proc/PID/stat, in clock ticks).
shop_now_ms() {
    awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}
shop_started_ms() {
    local ticks
    ticks=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }') || return 1
    [ -n "$ticks" ] && echo $((ticks * 1000 / $(getconf CLK_TCK)))
}

shop_wait_ready() {
    local name ms
    while kill -0 "$SHOP_POLLER" 2>/dev/null; do
        kill -0 "$SHOP_LAUNCHER" 2>/dev/null || kill "$SHOP_POLLER" 2>/dev/null || true
        sleep 0.05
    done
    if ! wait "$SHOP_POLLER"; then
        echo "the shop was not ready within 90 s, or the launcher exited; its log:" >&2
        tail -n 40 "$SHOP_LOG" >&2
        return 1
    fi
    while read -r name ms; do
        SHOP_START_MS[$name]=$ms
    done <"$SHOP_STARTUP"
    for _ in $(seq 1 600); do
        if curl -fsS "$SHOP_ADMIN_URL/readyz" 2>/dev/null | grep -q '"all_pools_healthy":true'; then
            SHOP_STACK_MS=$(($(shop_now_ms) - $(shop_started_ms "$SHOP_LAUNCHER")))
            return 0
        fi
        sleep 0.05
    done
    echo "the balancer found no healthy replica in some pool within 30 s; its log:" >&2
    tail -n 40 "$SHOP_LOG" >&2
    return 1
}

shop_stop() {
    local status=0 db
    stop_launcher "$SHOP_LAUNCHER" "$SHOP_DATA" "" || status=1
    SHOP_LAUNCHER=""
    for db in "${SHOP_DATABASES[@]}"; do
        psql "$SHOP_DB_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    done
    SHOP_DATABASES=()
    return "$status"
}

# Runs BIN_DIR/loadgen against this shop with its consistency checks
# pointed at the shop's outbox and stats service (the internal key goes by
# environment, not on the command line); further arguments are passed on.
shop_loadgen() {
    local bin=$1
    shift
    LOADGEN_INTERNAL_KEY="$(cat "$SHOP_DATA/secrets/internal_key")" \
        "$bin/loadgen" --base "$SHOP_URL" \
        --mail-dir "$SHOP_DATA/outbox" \
        --stats-url "http://127.0.0.1:$((SHOP_BASE + SHOP_OFFSET[stats]))" \
        "$@"
}

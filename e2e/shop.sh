# Sourced by the scripts that test a running shop (e2e/fuzz.sh,
# storefront/tests/run.sh): starts the shop with the launcher on a temporary
# data directory and a free port base, waits until every pool is healthy, and
# on any exit stops it and everything it started, dropping the PostgreSQL
# databases listed in DATABASES and keeping the data and log on failure (or
# always when SHOP_KEEP is set).
#
#   shop_binaries              sets BIN: SHOP_BIN_DIR when set (no build), else a
#                              debug build of the workspace's binaries
#   shop_prepare NAME          sets WORK, DATA, LOG, BASE, SHOP (the balancer's URL) and
#                              ADMIN (its admin listener: /metrics, /readyz with the pools)
#   shop_databases             with TEST_DATABASE_URL set: a fresh PostgreSQL database
#                              per service, their settings in DB_ENV (else DB_ENV is empty)
#   shop_start BIN [VAR=value ...]   the launcher from BIN, the admin from ADMIN_EMAIL and
#                              ADMIN_PASSWORD, DB_ENV and these variables; sets LAUNCHER
#   shop_wait_ready            up to 90 s

# shellcheck source=e2e/stop_launcher.sh
source "$(dirname "${BASH_SOURCE[0]}")/stop_launcher.sh"

DATABASES=()
DB_ENV=()
LAUNCHER=""

shop_binaries() {
    if [ -n "${SHOP_BIN_DIR:-}" ]; then
        BIN=$(cd "$SHOP_BIN_DIR" && pwd)
    else
        echo "building the workspace binaries"
        cargo build --workspace --bins --quiet
        BIN="$(pwd)/target/debug"
    fi
    [ -x "$BIN/launcher" ] || { echo "no launcher in $BIN: build the workspace" >&2; exit 1; }
}

shop_prepare() {
    SHOP_NAME=$1
    WORK=$(mktemp -d -t "shop-$SHOP_NAME-XXXXXX")
    DATA="$WORK/data"
    LOG="$WORK/launcher.log"
    BASE=$(python3 "$(dirname "${BASH_SOURCE[0]}")/free_port_base.py")
    SHOP="http://127.0.0.1:$((BASE + 80))"
    ADMIN="http://127.0.0.1:$((BASE + 81))"
    trap stop_shop EXIT
    trap 'exit 130' INT TERM
}

shop_databases() {
    [ -n "${TEST_DATABASE_URL:-}" ] || return 0
    local pg_base="${TEST_DATABASE_URL%/*}" prefix db
    for prefix in USERS PRODUCTS CART MAILER STATS PAYMENTS; do
        db="${SHOP_NAME}_$(echo "$prefix" | tr '[:upper:]' '[:lower:]')_$$"
        psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db"
        DATABASES+=("$db")
        DB_ENV+=("${prefix}_DATABASE_URL=$pg_base/$db" "${prefix}_DATABASE_MAX_CONNECTIONS=4")
    done
}

stop_shop() {
    local status=$?
    stop_launcher "$LAUNCHER" "$DATA" "$SHOP_NAME: " || status=1
    for db in "${DATABASES[@]}"; do
        psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    done
    if [ "$status" -ne 0 ]; then
        echo "$SHOP_NAME: last lines of the shop's log ($LOG):" >&2
        tail -n 40 "$LOG" >&2 || true
    fi
    if [ -n "${SHOP_KEEP:-}" ] || [ "$status" -ne 0 ]; then
        echo "$SHOP_NAME: data, logs and reports kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}

shop_start() {
    local bin=$1
    shift
    # A clean environment for the shop: CARGO would make the launcher build.
    # The tests register and log in many users from one address, so the
    # per-address limits are raised; the per-account ones stay as configured.
    env -u CARGO \
        RUST_LOG="${RUST_LOG:-info}" \
        SHOP_ADMIN_EMAIL="$ADMIN_EMAIL" SHOP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
        USERS_LOGIN_ATTEMPTS_PER_IP=100000 \
        USERS_REGISTRATIONS_PER_IP=100000 \
        "${DB_ENV[@]}" "$@" \
        "$bin/launcher" --data-dir "$DATA" --port-base "$BASE" --bin-dir "$bin" \
        >"$LOG" 2>&1 &
    LAUNCHER=$!
}

# Ready when every service answers its own /readyz and, after that, the
# balancer has a healthy replica in every pool (it may have taken one out
# while that service was still starting).
shop_wait_ready() {
    local offset ready="" up
    for _ in $(seq 1 900); do
        kill -0 "$LAUNCHER" 2>/dev/null || { echo "$SHOP_NAME: the launcher exited" >&2; exit 1; }
        up=1
        for offset in 1 2 3 4 5 6; do
            curl -fsS -o /dev/null "http://127.0.0.1:$((BASE + offset))/readyz" 2>/dev/null || { up=""; break; }
        done
        if [ -n "$up" ] && curl -fsS "$ADMIN/readyz" 2>/dev/null | grep -q '"all_pools_healthy":true'; then
            ready=1
            break
        fi
        sleep 0.1
    done
    [ -n "$ready" ] || { echo "$SHOP_NAME: the shop was not ready within 90 s" >&2; exit 1; }
}

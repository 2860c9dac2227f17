#!/usr/bin/env bash
# Fuzzes the running shop through the balancer with schemathesis, driven by
# the repository's openapi.json: every check, a fixed seed, a bounded number
# of examples per operation (a few minutes in all). Starts the shop with the
# launcher on a temporary data directory and a free port base, logs in and
# passes the bearer token as a header; stops the shop on any exit. Exits
# non-zero on any failure: a 5xx, a response that does not match the
# document, a request that should have been refused or accepted, or a hang
# (a request over 10 s).
#
# Two passes over every operation: as the admin (the widest access, so the
# admin-only catalog operations are exercised too) and as a customer who
# registered and logged in like the frontend (object-level authorization:
# other users' things must be 403).
#
#   e2e/fuzz.sh                       # seed 20261127, 25 examples per operation
#   FUZZ_SEED=1 FUZZ_EXAMPLES=100 e2e/fuzz.sh
#   FUZZ_KEEP=1 e2e/fuzz.sh           # keep the data dir, logs and reports
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test e2e/fuzz.sh
#                                     # on PostgreSQL: a fresh database per
#                                     # service, dropped afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SEED="${FUZZ_SEED:-20261127}"
EXAMPLES="${FUZZ_EXAMPLES:-25}"
ADMIN_EMAIL="fuzz-admin@shop.example"
ADMIN_PASSWORD="fuzz-admin-password"

say() { printf '\n=== fuzz: %s ===\n' "$*"; }

say "schemathesis"
if ! command -v st >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
    hash -r
fi
st --version

say "building the workspace binaries"
cargo build --workspace --bins --quiet
BIN="$ROOT/target/debug"

WORK=$(mktemp -d -t shop-fuzz-XXXXXX)
DATA="$WORK/data"
LOG="$WORK/launcher.log"

# A port base whose eight ports (BASE+1..6, the balancer at BASE+80 and its
# admin listener at BASE+81) are free, below the kernel's ephemeral range so
# outgoing connections cannot take them.
BASE=$(python3 - <<'EOF'
import random, socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    base = random.randrange(200, 320) * 100
    if all(free(base + o) for o in (1, 2, 3, 4, 5, 6, 80, 81)):
        print(base)
        break
else:
    raise SystemExit("no free port base between 20000 and 32000")
EOF
)
SHOP="http://127.0.0.1:$((BASE + 80))"
# The balancer's /metrics and /readyz with the pools (the launcher's wiring).
ADMIN="http://127.0.0.1:$((BASE + 81))"

# On PostgreSQL: one fresh database per service.
DB_ENV=()
DATABASES=()
if [ -n "${TEST_DATABASE_URL:-}" ]; then
    PG_BASE="${TEST_DATABASE_URL%/*}"
    for prefix in USERS PRODUCTS CART MAILER STATS PAYMENTS; do
        db="fuzz_$(echo "$prefix" | tr '[:upper:]' '[:lower:]')_$$"
        psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db"
        DATABASES+=("$db")
        DB_ENV+=("${prefix}_DATABASE_URL=$PG_BASE/$db" "${prefix}_DATABASE_MAX_CONNECTIONS=4")
    done
fi

LAUNCHER=""
stop_shop() {
    local status=$?
    if [ -n "$LAUNCHER" ] && kill -0 "$LAUNCHER" 2>/dev/null; then
        kill -INT "$LAUNCHER" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$LAUNCHER" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$LAUNCHER" 2>/dev/null; then
            echo "fuzz: the launcher did not stop within 20 s; killing it" >&2
            kill -KILL "$LAUNCHER" 2>/dev/null || true
            status=1
        fi
    fi
    # Nothing the launcher started may outlive it.
    for pidfile in "$DATA"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null && grep -qz "$DATA" "/proc/$pid/environ" 2>/dev/null; then
            echo "fuzz: $(basename "$pidfile" .pid) (pid $pid) outlived the launcher" >&2
            kill -KILL "$pid" 2>/dev/null || true
            status=1
        fi
    done
    for db in "${DATABASES[@]}"; do
        psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    done
    if [ "$status" -ne 0 ]; then
        echo "fuzz: last lines of the shop's log ($LOG):" >&2
        tail -n 40 "$LOG" >&2 || true
    fi
    if [ -n "${FUZZ_KEEP:-}" ] || [ "$status" -ne 0 ]; then
        echo "fuzz: data, logs and reports kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap stop_shop EXIT
trap 'exit 130' INT TERM

say "starting the shop at $SHOP (data in $DATA)"
# A clean environment for the shop: CARGO would make the launcher build.
env -u CARGO \
    RUST_LOG="${RUST_LOG:-info}" \
    SHOP_ADMIN_EMAIL="$ADMIN_EMAIL" SHOP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    USERS_LOGIN_ATTEMPTS_PER_IP=100000 USERS_REGISTRATIONS_PER_IP=100000 \
    "${DB_ENV[@]}" \
    "$BIN/launcher" --data-dir "$DATA" --port-base "$BASE" --bin-dir "$BIN" \
    >"$LOG" 2>&1 &
LAUNCHER=$!

# Ready when every service answers its own /readyz and, after that, the
# balancer has a healthy replica in every pool (it may have taken one out
# while that service was still starting).
services_ready() {
    local offset
    for offset in 1 2 3 4 5 6; do
        curl -fsS -o /dev/null "http://127.0.0.1:$((BASE + offset))/readyz" 2>/dev/null || return 1
    done
}
ready=""
for _ in $(seq 1 900); do
    kill -0 "$LAUNCHER" 2>/dev/null || { echo "fuzz: the launcher exited" >&2; exit 1; }
    if services_ready && curl -fsS "$ADMIN/readyz" 2>/dev/null | grep -q '"all_pools_healthy":true'; then
        ready=1
        break
    fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "fuzz: the shop was not ready within 90 s" >&2; exit 1; }

say "registering and logging in"
login() {
    curl -fsS -X POST "$SHOP/user/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
register() {
    curl -fsS -o /dev/null -X POST "$SHOP/user/" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\",\"name\":\"Fuzz\"}"
}
ADMIN_TOKEN=$(login "$ADMIN_EMAIL" "$ADMIN_PASSWORD")
register "fuzz-customer-$$@example.com" fuzz-password
CUSTOMER_TOKEN=$(login "fuzz-customer-$$@example.com" fuzz-password)
# Deleting accounts is fuzzed with a customer of its own (e2e/schemathesis.toml):
# with the token of either pass, a link from login's user_id would delete that
# pass's own account and leave it with nothing but 401s.
register "fuzz-victim-$$@example.com" fuzz-password
export SHOP_FUZZ_USER_TOKEN SHOP_FUZZ_SERVER_KEY
SHOP_FUZZ_USER_TOKEN=$(login "fuzz-victim-$$@example.com" fuzz-password)
SHOP_FUZZ_SERVER_KEY=$(cat "$DATA/secrets/server_key")

fuzz() {
    local who=$1 token=$2
    say "schemathesis as the $who: seed $SEED, $EXAMPLES examples per operation"
    # One worker: with two, hypothesis (on Python 3.11.7) hit CPython's
    # "AST constructor recursion depth mismatch" race and aborted operations.
    # Run in the scratch directory: schemathesis keeps a crash cache in the
    # working directory and replays it first, which would make a run depend
    # on the ones before it.
    (cd "$WORK" && st --config-file "$ROOT/e2e/schemathesis.toml" run "$ROOT/openapi.json" \
        --url "$SHOP" \
        --checks all \
        --seed "$SEED" \
        --max-examples "$EXAMPLES" \
        --header "Authorization: Bearer $token" \
        --workers 1 \
        --request-timeout 20 \
        --max-response-time 10 \
        --generation-database none \
        --report junit,ndjson --report-dir "$WORK/report-$who" \
        --no-color)
}
failed=0
fuzz admin "$ADMIN_TOKEN" || failed=1
fuzz customer "$CUSTOMER_TOKEN" || failed=1
exit "$failed"

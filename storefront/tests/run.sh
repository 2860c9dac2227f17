#!/usr/bin/env bash
# The storefront's tests: the API client against openapi.json (node --test),
# then the shopper's journey in a real browser (Debian's Chromium driven by
# playwright-core) against the shop started by the launcher on a temporary
# data directory and a free port base; the shop is stopped on any exit.
# Screenshots and the page-weight report go to storefront/tests/artifacts/.
#
#   storefront/tests/run.sh                      # builds debug binaries, runs everything
#   SHOP_BIN_DIR=target/release storefront/tests/run.sh   # use these binaries, no build
#   STOREFRONT_KEEP=1 storefront/tests/run.sh    # keep the data dir and the shop's log
#   STOREFRONT_URL=http://localhost:5173 ...     # load the page from a dev server instead
#                                                #   (it then reaches the shop with ?api=)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TESTS="$ROOT/storefront/tests"
ADMIN_EMAIL="storefront-admin@shop.example"
ADMIN_PASSWORD="storefront-admin-password"

say() { printf '\n=== storefront: %s ===\n' "$*"; }

say "node and the test dependencies"
command -v node >/dev/null || { echo "storefront: node (20 or later) is needed" >&2; exit 1; }
node --version
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null || true
if [ ! -d "$TESTS/node_modules/playwright-core" ]; then
    (cd "$TESTS" && npm ci --no-audit --no-fund)
fi

say "the API client against openapi.json"
(cd "$TESTS" && node --test contract.test.js)

if [ -n "${SHOP_BIN_DIR:-}" ]; then
    BIN=$(cd "$SHOP_BIN_DIR" && pwd)
else
    say "building the workspace binaries"
    cargo build --workspace --bins --quiet
    BIN="$ROOT/target/debug"
fi
[ -x "$BIN/launcher" ] || { echo "storefront: no launcher in $BIN" >&2; exit 1; }

WORK=$(mktemp -d -t shop-storefront-XXXXXX)
DATA="$WORK/data"
LOG="$WORK/launcher.log"

# A port base whose seven ports (BASE+1..6, BASE+80) are free, below the
# kernel's ephemeral range so outgoing connections cannot take them.
BASE=$(python3 - <<'PY'
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
    if all(free(base + o) for o in (1, 2, 3, 4, 5, 6, 80)):
        print(base)
        break
else:
    raise SystemExit("no free port base between 20000 and 32000")
PY
)
SHOP="http://127.0.0.1:$((BASE + 80))"

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
            echo "storefront: the launcher did not stop within 20 s; killing it" >&2
            kill -KILL "$LAUNCHER" 2>/dev/null || true
            status=1
        fi
    fi
    # Nothing the launcher started may outlive it.
    for pidfile in "$DATA"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null && grep -qz "$DATA" "/proc/$pid/environ" 2>/dev/null; then
            echo "storefront: $(basename "$pidfile" .pid) (pid $pid) outlived the launcher" >&2
            kill -KILL "$pid" 2>/dev/null || true
            status=1
        fi
    done
    if [ "$status" -ne 0 ]; then
        echo "storefront: last lines of the shop's log ($LOG):" >&2
        tail -n 40 "$LOG" >&2 || true
    fi
    if [ -n "${STOREFRONT_KEEP:-}" ] || [ "$status" -ne 0 ]; then
        echo "storefront: data and logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap stop_shop EXIT
trap 'exit 130' INT TERM

say "starting the shop at $SHOP (data in $DATA)"
# A clean environment for the shop: CARGO would make the launcher build.
# The tests register and log in many shoppers from one address, so the
# per-address limits are raised; the per-account ones stay as configured.
env -u CARGO \
    RUST_LOG="${RUST_LOG:-info}" \
    SHOP_ADMIN_EMAIL="$ADMIN_EMAIL" SHOP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    USERS_LOGIN_ATTEMPTS_PER_IP=100000 \
    USERS_REGISTRATIONS_PER_IP=100000 \
    "$BIN/launcher" --data-dir "$DATA" --port-base "$BASE" --bin-dir "$BIN" \
    >"$LOG" 2>&1 &
LAUNCHER=$!

services_ready() {
    local offset
    for offset in 1 2 3 4 5 6; do
        curl -fsS -o /dev/null "http://127.0.0.1:$((BASE + offset))/readyz" 2>/dev/null || return 1
    done
}
ready=""
for _ in $(seq 1 900); do
    kill -0 "$LAUNCHER" 2>/dev/null || { echo "storefront: the launcher exited" >&2; exit 1; }
    if services_ready && curl -fsS "$SHOP/readyz" 2>/dev/null | grep -q '"all_pools_healthy":true'; then
        ready=1
        break
    fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "storefront: the shop was not ready within 90 s" >&2; exit 1; }

say "the shopper's journey in Chromium"
mkdir -p "$TESTS/artifacts"
(cd "$TESTS" && SHOP_URL="$SHOP" STOREFRONT_URL="${STOREFRONT_URL:-$SHOP}" \
    SHOP_ADMIN_EMAIL="$ADMIN_EMAIL" SHOP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    node --test --test-concurrency=1 e2e.test.js)

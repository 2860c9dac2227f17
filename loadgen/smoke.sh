#!/usr/bin/env bash
# CI smoke test of the whole shop under load: starts the launcher stack from
# already built binaries on a temporary data directory and a free port base,
# runs the load generator for 10 s at 100 arrivals/s with its consistency
# checks pointed at the mail outbox and the stats service, and exits
# non-zero when any request failed, an order, email or event was lost or
# doubled, or a process outlived the launcher.
#
#   loadgen/smoke.sh                          # binaries in target/release
#   LOADGEN_BIN_DIR=target/debug loadgen/smoke.sh
#   SMOKE_RATE=50 SMOKE_DURATION=5s loadgen/smoke.sh
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test loadgen/smoke.sh
#                                             # on PostgreSQL: a fresh
#                                             # database per service
#   SMOKE_KEEP=1 loadgen/smoke.sh             # keep data, log and report
#
# Only the login and registration limits per client address are raised
# (every shopper comes from 127.0.0.1); the mailer's per-recipient limit
# stays as it is and the generator keeps each account within it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${LOADGEN_BIN_DIR:-target/release}")
RATE="${SMOKE_RATE:-100}"
DURATION="${SMOKE_DURATION:-10s}"
# shellcheck source=loadgen/shop.sh
source loadgen/shop.sh

for bin in launcher loadgen users products cart mailer stats payments-mock balancer; do
    [ -x "$BIN/$bin" ] || { echo "smoke: $BIN/$bin is missing: build with cargo build --release --workspace (or set LOADGEN_BIN_DIR)" >&2; exit 2; }
done

WORK=$(mktemp -d -t shop-smoke-XXXXXX)
finish() {
    local status=$?
    shop_stop || status=1
    if [ "$status" -ne 0 ]; then
        echo "smoke: last lines of the shop's log ($SHOP_LOG):" >&2
        tail -n 40 "$SHOP_LOG" >&2 || true
    fi
    if [ -n "${SMOKE_KEEP:-}" ] || [ "$status" -ne 0 ]; then
        echo "smoke: data, log and report kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

LIMITS=(USERS_LOGIN_ATTEMPTS_PER_IP=100000 USERS_REGISTRATIONS_PER_IP=100000)
echo "smoke: starting the shop (${TEST_DATABASE_URL:+PostgreSQL, }data in $WORK); raised: ${LIMITS[*]}"
shop_start "$BIN" "$WORK" "${TEST_DATABASE_URL:-sqlite}" "${LIMITS[@]}"
shop_wait_ready
echo "smoke: every service ready (exec to first /readyz 200, ms): $(for s in "${SHOP_SERVICES[@]}"; do printf "%s %s " "$s" "${SHOP_START_MS[$s]}"; done)- the whole stack ${SHOP_STACK_MS} ms" >&2
echo "smoke: the shop is up at $SHOP_URL; $RATE arrivals/s for $DURATION"
shop_loadgen "$BIN" --rate "$RATE" --duration "$DURATION" \
    --settle-timeout 60s --report "$WORK/report.json"

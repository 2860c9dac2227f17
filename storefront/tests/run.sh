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
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test storefront/tests/run.sh
#                                                # on PostgreSQL: a fresh database per
#                                                # service, dropped afterwards
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

say "the API client against openapi.json, and the pure helpers"
(cd "$TESTS" && node --test contract.test.js units.test.js)

# shellcheck source=e2e/shop.sh
. "$ROOT/e2e/shop.sh"
shop_binaries
shop_prepare storefront
SHOP_KEEP="${STOREFRONT_KEEP:-}"
shop_databases

say "starting the shop at $SHOP (data in $DATA)"
shop_start "$BIN"
shop_wait_ready

say "the shopper's journey in Chromium"
mkdir -p "$TESTS/artifacts"
(cd "$TESTS" && SHOP_URL="$SHOP" STOREFRONT_URL="${STOREFRONT_URL:-$SHOP}" \
    SHOP_ADMIN_EMAIL="$ADMIN_EMAIL" SHOP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    node --test --test-concurrency=1 e2e.test.js)

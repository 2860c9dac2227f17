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
#   SHOP_BIN_DIR=target/release e2e/fuzz.sh   # these binaries, no build
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

# shellcheck source=e2e/shop.sh
. "$ROOT/e2e/shop.sh"
shop_binaries
shop_prepare fuzz
SHOP_KEEP="${FUZZ_KEEP:-}"
shop_databases

say "starting the shop at $SHOP (data in $DATA)"
shop_start "$BIN"
shop_wait_ready

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

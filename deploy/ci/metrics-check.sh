#!/usr/bin/env bash
# CI check of the shop's metrics, alerting rules and dashboard, run by
# .ci/run after the release build:
#
#   1. installs Debian's `prometheus` (prometheus and promtool) if missing;
#   2. `promtool check rules` on deploy/prometheus/rules/ and `promtool test rules`
#      on deploy/prometheus/tests/;
#   3. starts the shop (e2e/shop.sh) and drives a shopper's journey through
#      the balancer: register, log in, browse, cart, checkout, a declined and
#      a good payment, a repeated one, until the order is paid;
#   4. `promtool check metrics` on every service's /metrics and the
#      balancer admin listener's;
#   5. runs a real Prometheus scraping the shop every second with the rules
#      loaded, and checks (deploy/ci/metrics_used.py) that every dashboard
#      panel's and rule's query evaluates, every rule is healthy, and every
#      metric they name has at least one series.
#
# Fails loudly on the first problem; skips nothing.
#
#   SHOP_BIN_DIR=target/release deploy/ci/metrics-check.sh
#   deploy/ci/metrics-check.sh               # builds debug binaries first
#   METRICS_KEEP=1 …                         # keep the shop's and Prometheus' data and logs
#   TEST_DATABASE_URL=postgres://… …         # the shop on PostgreSQL
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
RULES=deploy/prometheus/rules
DASHBOARD=deploy/grafana/dashboards/shop.json
ADMIN_EMAIL="metrics-admin@shop.example"
ADMIN_PASSWORD="metrics-admin-password"
say() { printf 'metrics-check: %s\n' "$*"; }
die() { printf 'metrics-check: FAILED: %s\n' "$*" >&2; exit 1; }

say "Prometheus and promtool"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    apt-get update -qq
    # The package's own service is not wanted (and there is no init here).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
prometheus --version 2>&1 | head -n1
promtool --version 2>&1 | head -n1

say "promtool check rules"
promtool check rules "$RULES/shop.yml"
say "promtool test rules"
promtool test rules deploy/prometheus/tests/shop_test.yml

say "the dashboard is JSON with queries"
python3 - "$DASHBOARD" <<'EOF'
import json, sys
dash = json.load(open(sys.argv[1]))
panels = [p for p in dash["panels"] if p["type"] != "row"]
bad = [p["title"] for p in panels if not any(t.get("expr") for t in p.get("targets", []))]
assert not bad, f"panels without a query: {bad}"
print(f"  {len(panels)} panels")
EOF

# shellcheck source=e2e/shop.sh
. "$ROOT/e2e/shop.sh"
shop_binaries
shop_prepare metrics
SHOP_KEEP="${METRICS_KEEP:-}"
PROM_PID=""
stop_prometheus() {
    if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
        kill -TERM "$PROM_PID" 2>/dev/null || true
        wait "$PROM_PID" 2>/dev/null || true
    fi
}
# Prometheus first, then the shop's own clean-up, which exits with the
# script's status.
trap 'status=$?; stop_prometheus; (exit $status); stop_shop' EXIT
shop_databases
say "starting the shop at $SHOP (data in $DATA)"
shop_start "$BIN"
shop_wait_ready

say "a shopper's journey through the balancer"
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)'"$1"')'; }
call() { # METHOD PATH [BODY] [TOKEN] [EXTRA CURL ARGS…]: prints the body, fails on a transport error
    local method=$1 path=$2 body=${3:-} token=${4:-}
    shift $(( $# < 4 ? $# : 4 ))
    curl -sS -X "$method" "$SHOP$path" -H 'content-type: application/json' \
        ${token:+-H "authorization: Bearer $token"} ${body:+-d "$body"} "$@"
}
status_of() { # like call, but prints only the status
    local method=$1 path=$2 body=${3:-} token=${4:-}
    call "$method" "$path" "$body" "$token" -o /dev/null -w '%{http_code}'
}
EMAIL="metrics-$$@example.com"
[ "$(status_of POST /user/ "{\"email\":\"$EMAIL\",\"password\":\"metrics password\",\"name\":\"Metrics\"}")" = 201 ] \
    || die "registering $EMAIL"
LOGIN=$(call POST /user/login "{\"email\":\"$EMAIL\",\"password\":\"metrics password\"}")
TOKEN=$(echo "$LOGIN" | json '["token"]')
ME=$(echo "$LOGIN" | json '["user_id"]')
[ "$(status_of POST /user/login '{"email":"nobody@example.com","password":"wrong password"}')" = 401 ] \
    || die "a wrong login is not 401"
for query in "?limit=5" "?q=mug" "?category=kitchen&sort=price_asc" "?limit=2&offset=2"; do
    [ "$(status_of GET "/products/$query")" = 200 ] || die "GET /products/$query"
done
[ "$(status_of GET /products/categories)" = 200 ] || die "GET /products/categories"
[ "$(status_of GET /product/no-such-product)" = 404 ] || die "an unknown product is not 404"
PRODUCT=$(call GET "/products/?limit=1" | json '["items"][0]["id"]')
[ "$(status_of GET "/product/$PRODUCT")" = 200 ] || die "GET /product/$PRODUCT"
[ "$(status_of POST "/user/$ME/cart/" "{\"product_id\":\"$PRODUCT\",\"quantity\":2}" "$TOKEN")" = 201 ] \
    || die "adding to the cart"
[ "$(status_of GET "/user/$ME/cart/" "" "$TOKEN")" = 200 ] || die "reading the cart"
ORDER=$(call POST "/user/$ME/cart/checkout" "" "$TOKEN" -H "Idempotency-Key: metrics-$$" --fail-with-body)
ORDER_ID=$(echo "$ORDER" | json '["id"]')
INVOICE=$(echo "$ORDER" | json '["invoice_id"]')
EXP_YEAR=$(( $(date -u +%Y) + 3 ))
card() { echo "{\"card_number\":\"$1\",\"exp_month\":12,\"exp_year\":$EXP_YEAR,\"cvc\":\"123\"}"; }
[ "$(status_of POST "/invoices/$INVOICE/pay" "$(card 4000000000000002)")" = 402 ] || die "a declined card is not 402"
[ "$(status_of POST "/invoices/$INVOICE/pay" "$(card 4242424242424242)")" = 200 ] || die "paying $INVOICE"
[ "$(status_of POST "/invoices/$INVOICE/pay" "$(card 4242424242424242)")" = 409 ] || die "paying twice is not 409"
paid=""
for _ in $(seq 1 100); do
    if [ "$(call GET "/user/$ME/orders/$ORDER_ID" "" "$TOKEN" | json '["status"]')" = paid ]; then
        paid=1
        break
    fi
    sleep 0.1
done
[ -n "$paid" ] || die "order $ORDER_ID was not paid within 10 s"
say "  order $ORDER_ID paid"

TARGETS=(
    "users 127.0.0.1:$((BASE + 1))"
    "products 127.0.0.1:$((BASE + 2))"
    "cart 127.0.0.1:$((BASE + 3))"
    "mailer 127.0.0.1:$((BASE + 4))"
    "stats 127.0.0.1:$((BASE + 5))"
    "payments-mock 127.0.0.1:$((BASE + 6))"
    "balancer 127.0.0.1:$((BASE + 81))"
)
for target in "${TARGETS[@]}"; do
    read -r job addr <<<"$target"
    say "promtool check metrics: $job (http://$addr/metrics)"
    curl -fsS "http://$addr/metrics" >"$WORK/$job.metrics" || die "GET http://$addr/metrics"
    grep -c '^# TYPE' "$WORK/$job.metrics" | sed 's/^/  families: /'
    promtool check metrics <"$WORK/$job.metrics" || die "promtool check metrics found problems on $job"
    echo "  promtool check metrics: no problems"
done

say "a real Prometheus scraping the shop"
PROM_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM="http://127.0.0.1:$PROM_PORT"
{
    printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n'
    printf 'rule_files:\n  - %s\n' "$ROOT/$RULES/shop.yml"
    printf 'scrape_configs:\n'
    for target in "${TARGETS[@]}"; do
        read -r job addr <<<"$target"
        printf '  - job_name: %s\n    static_configs:\n      - targets: ["%s"]\n' "$job" "$addr"
    done
} >"$WORK/prometheus.yml"
promtool check config "$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
ready=""
for _ in $(seq 1 300); do
    kill -0 "$PROM_PID" 2>/dev/null || { cat "$WORK/prometheus.log" >&2; die "prometheus exited"; }
    # Ready, and every target scraped at least three times (up == 1 at each).
    if curl -fsS "$PROM/api/v1/query" --data-urlencode 'query=count_over_time(up[1m]) >= 3 and up == 1' 2>/dev/null |
        python3 -c "import json, sys; sys.exit(len(json.load(sys.stdin)['data']['result']) != ${#TARGETS[@]})" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
[ -n "$ready" ] || { curl -sS "$PROM/api/v1/targets" >&2 || true; die "Prometheus did not scrape every target three times within 60 s"; }
say "  every target up for three scrapes; the rules evaluated"
sleep 2
say "every query of $DASHBOARD and $RULES/shop.yml against the scraped shop"
python3 deploy/ci/metrics_used.py "$PROM" "$DASHBOARD" "$RULES/shop.yml" || die "dashboard or rules name metrics the shop does not have, or a query fails"
say "passed"

#!/usr/bin/env bash
# Two builds of the whole shop under the same load, interleaved: for each of
# ROUNDS rounds (A then B in odd rounds, B then A in even ones, so a drift
# of the machine falls on both), the launcher stack of each build on a fresh
# SQLite data directory (or TEST_DATABASE_URL), the default mix at RATE
# arrivals/s for DURATION; then per endpoint the median over the rounds of
# p50 and p99, and the ratio B/A.
#
#   bench/shop-ab.sh A_BIN_DIR B_BIN_DIR
#   RATE=1000 DURATION=30s ROUNDS=3 bench/shop-ab.sh /tmp/before target/release
#
# Writes the table on standard output; each run's loadgen JSON report is
# kept in AB_RUNS (a temporary directory unless set). The shop's abuse
# limits are raised as bench/shop.sh raises them.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "$1")
B=$(realpath "$2")
RATE="${RATE:-1000}"
DURATION="${DURATION:-30s}"
ROUNDS="${ROUNDS:-3}"
DB="${TEST_DATABASE_URL:-sqlite}"
RUNS="${AB_RUNS:-$(mktemp -d -t shop-ab-XXXXXX)}"
mkdir -p "$RUNS"
# shellcheck source=loadgen/shop.sh
source loadgen/shop.sh

LIMITS=(USERS_LOGIN_ATTEMPTS_PER_IP=1000000 USERS_LOGIN_ATTEMPTS_PER_EMAIL=1000
    USERS_REGISTRATIONS_PER_IP=1000000 MAILER_RECIPIENT_LIMIT=1000000)
echo "shop-ab: raised for the runs: ${LIMITS[*]}" >&2
trap 'shop_stop >/dev/null 2>&1 || true' EXIT

# run LABEL BIN ROUND: one run; its report is $RUNS/LABEL-ROUND.json and
# the generator's output $RUNS/LABEL-ROUND.log.
run() {
    local work
    work=$(mktemp -d -t shop-ab-run-XXXXXX)
    shop_start "$2" "$work" "$DB" "${LIMITS[@]}"
    shop_wait_ready
    shop_loadgen "$2" --rate "$RATE" --duration "$DURATION" --mail-budget 1000000 \
        --report "$RUNS/$1-$3.json" --plot "$RUNS/$1-$3.svg" >"$RUNS/$1-$3.log" 2>&1 ||
        echo "shop-ab: $1 round $3: loadgen failed (see $RUNS/$1-$3.log)" >&2
    shop_stop
    rm -rf "$work"
}

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order=(A B); else order=(B A); fi
    for label in "${order[@]}"; do
        echo "shop-ab: round $round, build $label" >&2
        if [ "$label" = A ]; then run A "$A" "$round"; else run B "$B" "$round"; fi
    done
done

echo "# Two builds of the shop, $RATE arrivals/s for $DURATION, $ROUNDS interleaved rounds ($(nproc) cores, ${DB%%:*})"
echo
echo "A = \`$A\`, B = \`$B\`. Medians over the rounds; errors summed."
echo
python3 - "$RUNS" "$ROUNDS" <<'PY'
import json, statistics, sys
runs, rounds = sys.argv[1], int(sys.argv[2])
def load(label):
    return [json.load(open(f"{runs}/{label}-{r}.json")) for r in range(1, rounds + 1)]
a, b = load("A"), load("B")
def series(reports, endpoint, key):
    out = []
    for rep in reports:
        lat = rep["all"] if endpoint == "all" else rep["endpoints"][endpoint]["latency"]
        out.append(lat[key])
    return out
def errors(reports, endpoint):
    return sum(rep["errors"] if endpoint == "all" else rep["endpoints"][endpoint]["errors"] for rep in reports)
print("| endpoint | A p50 ms | B p50 ms | A p99 ms | B p99 ms | B/A p99 | errors A / B | p99 rounds A / B |")
print("|---|---:|---:|---:|---:|---:|---|---|")
for endpoint in list(a[0]["endpoints"]) + ["all"]:
    ap50, bp50 = (statistics.median(series(x, endpoint, "p50_ms")) for x in (a, b))
    ap99s, bp99s = series(a, endpoint, "p99_ms"), series(b, endpoint, "p99_ms")
    ap99, bp99 = statistics.median(ap99s), statistics.median(bp99s)
    fmt = lambda xs: " ".join(f"{x:.1f}" for x in xs)
    print(f"| {endpoint} | {ap50:.2f} | {bp50:.2f} | {ap99:.2f} | {bp99:.2f} | {bp99 / ap99:.2f} | {errors(a, endpoint)} / {errors(b, endpoint)} | {fmt(ap99s)} / {fmt(bp99s)} |")
PY

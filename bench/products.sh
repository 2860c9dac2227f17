#!/usr/bin/env bash
# Benchmark of the products service's reads next to a bare hyper
# hello-world, on loopback: GET /product/{id} and GET /products/?limit=20
# against `target/release/hello`, in interleaved rounds so that drift in
# the machine's speed hits every target alike. Prints the median req/s,
# p50, p99 and the ratio to hello-world. Not a test: nothing is asserted.
#
# Usage: bench/products.sh            (from anywhere in the repository)
# Knobs: ROUNDS=5 DURATION=5s CONNECTIONS=32 THREADS=2
#        HELLO_PORT=… PRODUCTS_PORT=… (default: free ports picked at random)
#        PRODUCTS_RUST_LOG=info   (the service's default: one access-log
#                                  line per request, written to a file)
#        DATABASE_URL=postgres://… (default: SQLite in a temporary dir)
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PRODUCTS_RUST_LOG=${PRODUCTS_RUST_LOG:-info}

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

ensure_wrk
cargo build --release -p products -p bench

HELLO_PORT=${HELLO_PORT:-$(pick_port)}
PRODUCTS_PORT=${PRODUCTS_PORT:-$(pick_port)}
require_free "$HELLO_PORT" "$PRODUCTS_PORT"
if [ "$HELLO_PORT" = "$PRODUCTS_PORT" ]; then
    PRODUCTS_PORT=$(pick_port)
fi

# The service's environment: a throwaway data directory, explicit secrets.
export PRODUCTS_DATA_DIR="$work/data"
export PRODUCTS_LISTEN="127.0.0.1:$PRODUCTS_PORT"
export PRODUCTS_TOKEN_SECRET="bench-token-secret-bench-token-secret-00"
export PRODUCTS_INTERNAL_KEY="bench-internal-key-bench-internal-key-00"
if [ -n "${DATABASE_URL:-}" ]; then
    export PRODUCTS_DATABASE_URL="$DATABASE_URL"
fi

target/release/hello "127.0.0.1:$HELLO_PORT" 2>"$work/hello.log" &
pids+=($!)
RUST_LOG=warn target/release/products seed
RUST_LOG="$PRODUCTS_RUST_LOG" target/release/products 2>"$work/products.log" &
pids+=($!)

wait_for "http://127.0.0.1:$HELLO_PORT/"
wait_for "http://127.0.0.1:$PRODUCTS_PORT/readyz"

id=$(curl -fsS "http://127.0.0.1:$PRODUCTS_PORT/products/?limit=1&offset=5" | sed -E 's/.*"id":"([^"]+)".*/\1/')
curl -fsS -o /dev/null "http://127.0.0.1:$PRODUCTS_PORT/product/$id"

declare -A urls=(
    [hello]="http://127.0.0.1:$HELLO_PORT/"
    [product]="http://127.0.0.1:$PRODUCTS_PORT/product/$id"
    [list]="http://127.0.0.1:$PRODUCTS_PORT/products/?limit=20"
)
order=(hello product list)
labels=([0]="hello-world" [1]="GET /product/{id}" [2]="GET /products/?limit=20")

run_wrk() {
    local name=$1 round=$2 out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${urls[$name]}")
    local rps p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    if [ -n "$errors" ]; then
        echo "warning: $name round $round had $errors non-2xx answers" >&2
    fi
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")" >>"$work/$name.txt"
    printf '  round %d %-8s %10s req/s  p50 %8s ms  p99 %8s ms\n' "$round" "$name" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" >&2
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved rounds, $(nproc) CPUs, products log level $PRODUCTS_RUST_LOG" >&2
# A short warm-up of each: page cache, connection pools, prepared statements.
for name in "${order[@]}"; do
    wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "${urls[$name]}" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
    for name in "${order[@]}"; do
        run_wrk "$name" "$round"
    done
done

hello_rps=$(cut -d' ' -f1 "$work/hello.txt" | median)
echo
printf '| %-24s | %12s | %9s | %9s | %9s |\n' "target (median of $ROUNDS)" "req/s" "p50 ms" "p99 ms" "vs hello"
printf '|%s|%s|%s|%s|%s|\n' "--------------------------" "--------------" "-----------" "-----------" "-----------"
for i in "${!order[@]}"; do
    name=${order[$i]}
    rps=$(cut -d' ' -f1 "$work/$name.txt" | median)
    p50=$(cut -d' ' -f2 "$work/$name.txt" | median)
    p99=$(cut -d' ' -f3 "$work/$name.txt" | median)
    ratio=$(awk -v a="$rps" -v b="$hello_rps" 'BEGIN { printf "%.2fx", a / b }')
    printf '| %-24s | %12.0f | %9.3f | %9.3f | %9s |\n' "${labels[$i]}" "$rps" "$p50" "$p99" "$ratio"
done

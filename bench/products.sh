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

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk..." >&2
    apt-get update && apt-get install -y wrk
fi

cargo build --release -p products -p bench

work=$(mktemp -d)
pids=()
cleanup() {
    # Only what this script started, by pid.
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
pick_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 20000))
        if port_free "$port"; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}
HELLO_PORT=${HELLO_PORT:-$(pick_port)}
PRODUCTS_PORT=${PRODUCTS_PORT:-$(pick_port)}
for port in "$HELLO_PORT" "$PRODUCTS_PORT"; do
    if ! port_free "$port"; then
        echo "port $port is in use; set HELLO_PORT / PRODUCTS_PORT" >&2
        exit 1
    fi
done
if [ "$HELLO_PORT" = "$PRODUCTS_PORT" ]; then
    PRODUCTS_PORT=$(pick_port)
fi

wait_for() {
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$1"; then
            return 0
        fi
        sleep 0.1
    done
    echo "$1 did not come up" >&2
    exit 1
}

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

# wrk prints latencies as 812.00us, 1.25ms or 1.02s; convert to ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n
    }'
}

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

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
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

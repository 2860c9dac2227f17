#!/usr/bin/env bash
# Benchmark of the stats service's write path next to a bare hyper
# hello-world, on loopback: POST /log with a small JSON event (through a wrk
# Lua script) against GET on `target/release/hello`, in interleaved rounds
# so that drift in the machine's speed hits both alike. Prints the median
# req/s, 2xx/s, p50, p99 and the ratio to hello-world, then checks that every
# accepted event was stored. Not a test: nothing is asserted.
#
# When wrk offers more events than the database takes, stats sheds the rest
# with 503 (its queue is bounded), so req/s counts answers of any status and
# 2xx/s the events accepted; the ratio to hello-world uses 2xx/s.
#
# Usage: bench/stats.sh               (from anywhere in the repository)
# Knobs: ROUNDS=5 DURATION=5s CONNECTIONS=32 THREADS=2
#        HELLO_PORT=19000 STATS_PORT=19005
#        STATS_RUST_LOG=info   (the service's default: one access-log line
#                               per request, written to a file)
#        DATABASE_URL=postgres://… (default: SQLite in a temporary dir)
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
HELLO_PORT=${HELLO_PORT:-19000}
STATS_PORT=${STATS_PORT:-19005}
STATS_RUST_LOG=${STATS_RUST_LOG:-info}

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

ensure_wrk
cargo build --release -p stats -p bench

require_free "$HELLO_PORT" "$STATS_PORT"

# The service's environment: a throwaway data directory, explicit secrets.
export STATS_DATA_DIR="$work/data"
export STATS_LISTEN="127.0.0.1:$STATS_PORT"
export STATS_TOKEN_SECRET="bench-token-secret-bench-token-secret-00"
export STATS_INTERNAL_KEY="bench-internal-key-bench-internal-key-00"
if [ -n "${DATABASE_URL:-}" ]; then
    export STATS_DATABASE_URL="$DATABASE_URL"
fi

target/release/hello "127.0.0.1:$HELLO_PORT" 2>"$work/hello.log" &
pids+=($!)
RUST_LOG="$STATS_RUST_LOG" target/release/stats 2>"$work/stats.log" &
pids+=($!)

wait_for "http://127.0.0.1:$HELLO_PORT/"
wait_for "http://127.0.0.1:$STATS_PORT/readyz"

# A small event, as the services post them.
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user_id":"0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee","action":"cart_item_added","data":{"product_id":"p-42","quantity":2}}'
LUA

declare -A args=(
    [hello]="http://127.0.0.1:$HELLO_PORT/"
    [log]="-s $work/post.lua http://127.0.0.1:$STATS_PORT/log"
)
order=(hello log)
labels=([0]="hello-world" [1]="POST /log")

# Requests answered 2xx by stats, summed over every run (warm-up too).
accepted=0
record_accepted() {
    local out=$1 total bad
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    accepted=$((accepted + total - ${bad:-0}))
}

# 2xx answers per second of a wrk run ("N requests in 5.00s" minus the
# non-2xx count, over the elapsed time wrk reports).
ok_per_second() {
    awk '
        /requests in/ {
            total = $1; t = $4; sub(/,$/, "", t)
            secs = t + 0
            if (t ~ /ms$/) secs = secs / 1000
            else if (t ~ /m$/) secs = secs * 60
        }
        /Non-2xx or 3xx responses:/ { bad = $5 }
        END { printf "%.2f", (total - bad) / secs }
    ' <<<"$1"
}

run_wrk() {
    local name=$1 round=$2 out
    # shellcheck disable=SC2086 # args holds several words on purpose
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency ${args[$name]})
    local rps ok_rps p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    ok_rps=$(ok_per_second "$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    if [ -n "$errors" ]; then
        echo "warning: $name round $round had $errors non-2xx answers" >&2
    fi
    if [ "$name" = log ]; then
        record_accepted "$out"
    fi
    echo "$rps $(to_ms "$p50") $(to_ms "$p99") $ok_rps" >>"$work/$name.txt"
    printf '  round %d %-6s %10s req/s %10s 2xx/s  p50 %8s ms  p99 %8s ms\n' "$round" "$name" "$rps" "$ok_rps" "$(to_ms "$p50")" "$(to_ms "$p99")" >&2
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved rounds, $(nproc) CPUs, stats log level $STATS_RUST_LOG, database ${DATABASE_URL:-SQLite}" >&2
# A short warm-up of each: page cache, connection pools, prepared statements.
for name in "${order[@]}"; do
    # shellcheck disable=SC2086
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d1s ${args[$name]})
    if [ "$name" = log ]; then
        record_accepted "$out"
    fi
done
for round in $(seq 1 "$ROUNDS"); do
    for name in "${order[@]}"; do
        run_wrk "$name" "$round"
    done
done

hello_ok=$(cut -d' ' -f4 "$work/hello.txt" | median)
echo
printf '| %-22s | %10s | %10s | %9s | %9s | %9s |\n' "target (median of $ROUNDS)" "req/s" "2xx/s" "p50 ms" "p99 ms" "vs hello"
printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------" "------------" "------------" "-----------" "-----------" "-----------"
for i in "${!order[@]}"; do
    name=${order[$i]}
    rps=$(cut -d' ' -f1 "$work/$name.txt" | median)
    p50=$(cut -d' ' -f2 "$work/$name.txt" | median)
    p99=$(cut -d' ' -f3 "$work/$name.txt" | median)
    ok=$(cut -d' ' -f4 "$work/$name.txt" | median)
    ratio=$(awk -v a="$ok" -v b="$hello_ok" 'BEGIN { printf "%.2fx", a / b }')
    printf '| %-22s | %10.0f | %10.0f | %9.3f | %9.3f | %9s |\n' "${labels[$i]}" "$rps" "$ok" "$p50" "$p99" "$ratio"
done

# Accepted events are written within a second; check none went missing.
sleep 2
stored=$(curl -fsS -H "Authorization: Bearer $STATS_INTERNAL_KEY" \
    "http://127.0.0.1:$STATS_PORT/log/summary?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z" |
    sed -E 's/.*"events":([0-9]+).*/\1/')
echo
# wrk does not count requests still in flight when a run ends, though stats
# may accept them: stored can exceed the count by up to CONNECTIONS per run.
echo "POST /log answered 2xx $accepted times (as wrk counts); events stored: $stored"

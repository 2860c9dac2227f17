#!/usr/bin/env bash
# The whole shop under load, on SQLite and again on PostgreSQL: starts the
# launcher stack (release binaries) on a fresh data directory and free port
# base and records
#   - each service's start-up time (exec to its first /readyz 200), in the
#     stack and alone,
#   - each process's RSS idle (after start-up; also its anonymous part, as
#     the rest is the binary's own pages, read from the file) and peak
#     (VmHWM at the end), and the balancer's with HOLD_CONNECTIONS open,
#   - the default mix at BENCH_RATE arrivals/s for BENCH_DURATION,
#   - the knee: the rate stepped up until p99 > KNEE_P99_MS or any error,
#   - the CPU time of each process during the knee step (/proc/PID/stat).
# Writes bench/shop-report.md (BENCH_OUT) and keeps each run's JSON report
# and SVG plot beside it in bench/shop-runs/.
#
# The shop's abuse limits are raised for the run — every shopper comes from
# 127.0.0.1 — and the script prints what it changed (LIMITS below).
#
#   bench/shop.sh                                    # the full run, ~15 min
#   BENCH_DURATION=5s KNEE_STEP_DURATION=3s bench/shop.sh   # a short one
#   BENCH_DATABASES=sqlite bench/shop.sh
#
# Knobs (environment): BENCH_RATE (1000), BENCH_DURATION (60s),
# KNEE_START (250), KNEE_FACTOR (1.5), KNEE_MAX (20000),
# KNEE_STEP_DURATION (20s), KNEE_P99_MS (50), BENCH_DATABASES
# ("sqlite postgres"), BENCH_PG_URL (TEST_DATABASE_URL or
# postgres://postgres@127.0.0.1:5432/test), BENCH_BIN_DIR (target/release),
# BENCH_OUT (bench/shop-report.md), HOLD_CONNECTIONS (1000: the balancer's
# RSS is also read while that many kept-alive connections are open),
# STARTUP_ROUNDS (5: each service's start-up alone, bench/startup_alone.py).
#
# Figures are only worth comparing from a quiet machine: the generator
# shares the cores with the shop, and anything else running skews both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BENCH_BIN_DIR:-target/release}")
RATE="${BENCH_RATE:-1000}"
DURATION="${BENCH_DURATION:-60s}"
KNEE_START="${KNEE_START:-250}"
KNEE_FACTOR="${KNEE_FACTOR:-1.5}"
KNEE_MAX="${KNEE_MAX:-20000}"
KNEE_STEP_DURATION="${KNEE_STEP_DURATION:-20s}"
KNEE_P99_MS="${KNEE_P99_MS:-50}"
HOLD="${HOLD_CONNECTIONS:-1000}"
STARTUP_ROUNDS="${STARTUP_ROUNDS:-5}"
DATABASES="${BENCH_DATABASES:-sqlite postgres}"
PG_URL="${BENCH_PG_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}"
OUT="${BENCH_OUT:-bench/shop-report.md}"
RUNS="$(dirname "$OUT")/shop-runs"
# shellcheck source=loadgen/shop.sh
source loadgen/shop.sh

if [ ! -x "$BIN/launcher" ] || [ ! -x "$BIN/loadgen" ]; then
    echo "bench: no release binaries in $BIN: cargo build --release --workspace" >&2
    exit 2
fi

# Raised for the load test; everything else stays at its default.
LIMITS=(
    USERS_LOGIN_ATTEMPTS_PER_IP=1000000    # default 20 a minute per address
    USERS_LOGIN_ATTEMPTS_PER_EMAIL=1000    # default 5 a minute per account
    USERS_REGISTRATIONS_PER_IP=1000000     # registrations a minute per address
    MAILER_RECIPIENT_LIMIT=1000000         # default 10 an hour per recipient
)
# …so each account may get that many emails (fewer accounts to prepare).
MAIL_BUDGET=1000000

WORK=$(mktemp -d -t shop-bench-XXXXXX)
finish() {
    local status=$?
    shop_stop || status=1
    if [ "$status" -ne 0 ]; then
        echo "bench: last lines of the shop's log ($SHOP_LOG):" >&2
        tail -n 40 "$SHOP_LOG" >&2 || true
        echo "bench: data and logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM
mkdir -p "$RUNS"

say() { printf '\n=== bench: %s ===\n' "$*" >&2; }

# A field of a loadgen JSON report.
field() { jq -r "$2" "$1"; }

# RSS and its high-water mark of a process, in MiB.
rss_mib() { awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# The balancer's RSS (MiB) while bench/hold_connections.py holds $1
# kept-alive connections to it, each having had one answer; "-" if they
# could not all be opened.
balancer_rss_holding() {
    local n=$1 line="" rss="-"
    coproc HOLDER { python3 bench/hold_connections.py "$n" "$SHOP_URL/readyz" 2>&1; }
    read -r line <&"${HOLDER[0]}" || true
    [ "$line" = "held $n" ] && rss=$(rss_mib "${pids[balancer]}" VmRSS)
    [ "$line" = "held $n" ] || echo "bench: holding $n connections failed: $line" >&2
    eval "exec ${HOLDER[1]}>&-"
    wait "$HOLDER_PID" || true
    echo "$rss"
}

# utime + stime of a process, in clock ticks (nothing if it is gone).
cpu_ticks() { { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || true; } | awk '{ print $12 + $13 }'; }

# The PostgreSQL server's CPU ticks: all its processes (backends that
# end during a step take theirs along; the pools keep theirs open).
pg_ticks() {
    local pid total=0 t
    for pid in $(pgrep -x postgres || true); do
        t=$(cpu_ticks "$pid")
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# The machine's busy and total CPU ticks (all cores), from /proc/stat.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }

# One knee step at $1 arrivals/s, report to $2: CPU ticks of each process
# (and the generator's own) while the load ran — from the generator's "open
# loop at" line to its "checking consistency" line, so preparing accounts
# and the checks are not counted — into knee_cpu, and that time in ms into
# knee_wall.
declare -A knee_cpu=()
knee_wall=0
knee_busy=-
knee_step() {
    local rate=$1 json=$2 err="$WORK/loadgen.err" stage=0 lg gen="" t0=0 s now
    local -A before=()
    : >"$err"
    shop_loadgen "$BIN" --rate "$rate" --duration "$KNEE_STEP_DURATION" --mail-budget "$MAIL_BUDGET" \
        --settle-timeout 30s --report "$json" --plot "${json%.json}.svg" >/dev/null 2>"$err" &
    lg=$!
    while kill -0 "$lg" 2>/dev/null; do
        [ -n "$gen" ] || gen=$(pgrep -P "$lg" -x loadgen || true)
        if [ "$stage" = 0 ] && grep -q '^loadgen: open loop at' "$err"; then
            for s in "${SHOP_SERVICES[@]}"; do before[$s]=$(cpu_ticks "${pids[$s]}"); done
            [ -z "$gen" ] || before[loadgen]=$(cpu_ticks "$gen")
            before[postgres]=$(pg_ticks)
            read -r before[busy] before[total] < <(machine_ticks)
            t0=$(shop_now_ms)
            stage=1
        elif [ "$stage" = 1 ] && grep -q '^loadgen: checking consistency' "$err"; then
            for s in "${SHOP_SERVICES[@]}"; do knee_cpu[$s]=$(($(cpu_ticks "${pids[$s]}") - before[$s])); done
            now=$(cpu_ticks "$gen")
            if [ -n "$now" ] && [ -n "${before[loadgen]:-}" ]; then
                knee_cpu[loadgen]=$((now - before[loadgen]))
            fi
            knee_cpu[postgres]=$(($(pg_ticks) - before[postgres]))
            local busy total
            read -r busy total < <(machine_ticks)
            knee_busy=$(awk -v b="$((busy - before[busy]))" -v t="$((total - before[total]))" 'BEGIN { if (t > 0) printf "%.0f", b / t * 100; else print "-" }')
            knee_wall=$(($(shop_now_ms) - t0))
            stage=2
        fi
        sleep 0.05
    done
    wait "$lg" || true
}

REPORT="$WORK/report.md"
{
    echo "# The shop under load"
    echo
    echo "Written by \`bench/shop.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), binaries from \`${BIN#"$PWD"/}\`."
    echo "Default mix at $RATE arrivals/s for $DURATION; knee from $KNEE_START arrivals/s, ×$KNEE_FACTOR per step of $KNEE_STEP_DURATION, until p99 > $KNEE_P99_MS ms or an error."
    echo
    echo "**Only figures from a quiet machine mean anything**: the generator shares the cores with the seven processes of the shop."
    echo
    echo "Limits raised for the run: \`${LIMITS[*]}\`."
} >"$REPORT"

for db in $DATABASES; do
    case "$db" in
        sqlite) url=sqlite ;;
        postgres) url=$PG_URL ;;
        *) echo "bench: unknown database $db (sqlite or postgres)" >&2; exit 2 ;;
    esac
    say "$db: starting the shop; raised: ${LIMITS[*]}"
    rm -rf "$WORK/$db"
    mkdir -p "$WORK/$db"
    shop_start "$BIN" "$WORK/$db" "$url" "${LIMITS[@]}"
    shop_wait_ready
    stack_ms=$SHOP_STACK_MS
    sleep 2
    declare -A idle=() idle_anon=() pids=()
    for s in "${SHOP_SERVICES[@]}"; do
        pids[$s]=$(shop_pid "$s")
        idle[$s]=$(rss_mib "${pids[$s]}" VmRSS)
        idle_anon[$s]=$(rss_mib "${pids[$s]}" RssAnon)
    done
    say "$db: the balancer's RSS with $HOLD connections open"
    held_rss=$(balancer_rss_holding "$HOLD")

    say "$db: default mix at $RATE arrivals/s for $DURATION"
    main_json="$RUNS/$db-default.json"
    status=0
    shop_loadgen "$BIN" --rate "$RATE" --duration "$DURATION" --mail-budget "$MAIL_BUDGET" \
        --report "$main_json" --plot "${main_json%.json}.svg" || status=$?

    say "$db: looking for the knee"
    rate=$KNEE_START
    knee=""
    knee_json=""
    steps=()
    while awk -v r="$rate" -v m="$KNEE_MAX" 'BEGIN { exit !(r <= m) }'; do
        json="$RUNS/$db-knee-$rate.json"
        knee_step "$rate" "$json"
        p99=$(field "$json" .all.p99_ms)
        errors=$(field "$json" .errors)
        achieved=$(field "$json" .achieved_rate)
        steps+=("| $rate | $(printf %.0f "$achieved") | $(printf %.2f "$(field "$json" .all.p50_ms)") | $(printf %.2f "$p99") | $errors |")
        echo "bench: $rate arrivals/s: p99 $p99 ms, $errors errors" >&2
        knee_json=$json
        if [ "$errors" != 0 ] || awk -v p="$p99" -v m="$KNEE_P99_MS" 'BEGIN { exit !(p > m) }'; then
            break
        fi
        knee=$rate
        rate=$(awk -v r="$rate" -v f="$KNEE_FACTOR" 'BEGIN { printf "%d", r * f }')
    done

    {
        echo
        echo "## $db"
        echo
        echo "Default mix at $RATE arrivals/s for $DURATION (loadgen exit status $status; plot \`$(basename "${main_json%.json}.svg")\`):"
        echo
        echo "| endpoint | requests | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |"
        echo "|---|---|---|---|---|---|---|---|"
        jq -r 'def r: . * 100 | round / 100;
            (.endpoints | to_entries[] | [.key, .value.requests, .value.errors] + (.value.latency | [.p50_ms, .p90_ms, .p99_ms, .p99_9_ms, .max_ms] | map(r))),
            (["all", .requests, .errors] + (.all | [.p50_ms, .p90_ms, .p99_ms, .p99_9_ms, .max_ms] | map(r)))
            | "| " + (map(tostring) | join(" | ")) + " |"' "$main_json"
        echo
        jq -r '"Achieved \(.achieved_rate | floor) requests/s; \(.shop.orders_per_s * 10 | floor / 10) orders/s, \(.shop.payments_per_s * 10 | floor / 10) payments/s. Consistency: \([.consistency[] | "\(.name) \(.verdict)"] | join(", "))."' "$main_json"
        echo
        echo "Knee (p99 ≤ $KNEE_P99_MS ms and no error): **${knee:-below $KNEE_START} arrivals/s**."
        echo
        echo "| arrivals/s | achieved req/s | p50 ms | p99 ms | errors |"
        echo "|---|---|---|---|---|"
        printf '%s\n' "${steps[@]}"
        echo
        echo "The whole stack's start-up (the launcher's exec to the balancer reporting every pool healthy): $stack_ms ms."
        echo
        echo "The balancer's RSS with $HOLD kept-alive connections open (each had one \`/readyz\` answer): $held_rss MiB (idle ${idle[balancer]} MiB)."
        echo
        echo "Per process: start-up (exec to first /readyz 200, polled every 2 ms; exec times have the kernel's 10 ms resolution), RSS idle and peak, and CPU during the last knee step ($(basename "$knee_json"), $((knee_wall / 1000)) s):"
        echo
        echo "| process | start-up in the stack ms | RSS idle MiB | of which anonymous | RSS peak MiB | CPU s | share of one core |"
        echo "|---|---|---|---|---|---|---|"
        tck=$(getconf CLK_TCK)
        rows=("${SHOP_SERVICES[@]}" loadgen)
        [ "$db" = postgres ] && rows+=(postgres)
        for s in "${rows[@]}"; do
            cpu=$(awk -v t="${knee_cpu[$s]:-0}" -v h="$tck" 'BEGIN { printf "%.2f", t / h }')
            share=$(awk -v t="${knee_cpu[$s]:-0}" -v h="$tck" -v w="$knee_wall" 'BEGIN { if (w > 0) printf "%.0f %%", t / h / (w / 1000) * 100; else print "-" }')
            if [ "$s" = loadgen ]; then
                echo "| loadgen (the generator) | - | - | - | - | $cpu | $share |"
            elif [ "$s" = postgres ]; then
                echo "| PostgreSQL (the server, all its processes) | - | - | - | - | $cpu | $share |"
            else
                echo "| $s | ${SHOP_START_MS[$s]:--} | ${idle[$s]} | ${idle_anon[$s]} | $(rss_mib "${pids[$s]}" VmHWM) | $cpu | $share |"
            fi
        done
        echo
        echo "The machine's CPU ($(nproc) cores) was $knee_busy % busy during that step."
    } >>"$REPORT"
    shop_stop
done

say "each service's start-up alone ($STARTUP_ROUNDS rounds)"
{
    echo
    echo "## Start-up of each service alone (SQLite)"
    echo
    echo "The stack's start-up figures above are seven processes starting at once on $(nproc) cores. Here each service starts alone ($STARTUP_ROUNDS rounds; \`bench/startup_alone.py\`): from spawning its binary to its first \`/readyz\` 200, on a fresh data directory (creating and migrating its database) and again on the same one (a restart)."
    echo
    python3 bench/startup_alone.py "$BIN" --rounds "$STARTUP_ROUNDS"
} >>"$REPORT"

cp "$REPORT" "$OUT"
say "report: $OUT (runs in $RUNS)"
cat "$OUT"

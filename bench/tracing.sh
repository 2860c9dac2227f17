#!/usr/bin/env bash
# What tracing costs: tracing off against on (OTEL_EXPORTER_OTLP_ENDPOINT
# set, the SDK's default parent-based always-on sampler, so 100 % of the
# requests, exporting to a loopback receiver), on the balancer path (the
# balancer in front of the bare hello server) and on a product read
# (GET /product/{id} straight to products, SQLite).
#
# 1. Instructions per request, counted with callgrind (repeatable where
#    wall-clock CPU on shared cores is not): the process runs under
#    `valgrind --tool=callgrind`, WARM requests are sent, the counters are
#    zeroed (`callgrind_control -z`), N more are sent one at a time on one
#    kept-alive connection (curl), and the dump's total is divided by N.
#    BASELINES lists other builds as `label=dir` (a directory holding that
#    build's `balancer` and `products`, e.g. an older commit's
#    target/release), oldest first; each is counted with tracing off, and
#    a second table gives what each step from one build to the next costs.
#    With DUMPS=dir the callgrind dumps are kept there
#    (`<label>.<path>.<off|on>.out`) for `callgrind_annotate`.
# 2. CPU per request at RATE req/s (curl --rate: serial requests on one
#    kept-alive connection at a fixed rate), off and on
#    interleaved for ROUNDS rounds: the process's user+system time
#    (/proc/PID/stat) over the requests answered; medians. ROUNDS=0 skips
#    this part (it needs a quiet machine; callgrind does not).
#
# Usage: bench/tracing.sh
#   BASELINES="209c4c2=/path/to/release" N=2000 RATE=1000 SECONDS_PER_ROUND=10 ROUNDS=3 bench/tracing.sh
#   BIN_DIR=target/debug LABEL=mine …   (use these binaries, build nothing)
# Prints a Markdown report on standard output (bench/tracing.md is one).

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/lib.sh
. bench/lib.sh
N=${N:-2000}
WARM=${WARM:-300}
RATE=${RATE:-1000}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-10}
ROUNDS=${ROUNDS:-3}
BIN=${BIN_DIR:-$ROOT/target/release}
LABEL=${LABEL:-this build}
read -r -a baselines <<<"${BASELINES:-}"
for b in "${baselines[@]}"; do
    case $b in
    ?*=?*) ;;
    *)
        echo "BASELINES: \`$b\` is not label=dir" >&2
        exit 2
        ;;
    esac
done

log() { echo "[bench] $*" >&2; }

need_apt=()
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v jq >/dev/null || need_apt+=(jq)
command -v curl >/dev/null || need_apt+=(curl)
apt_install "${need_apt[@]}"
if [ -z "${BIN_DIR:-}" ]; then
    log "building release binaries"
    cargo build --release -q -p balancer -p products -p bench
fi

HELLO_PORT=$(pick_port)
SINK_PORT=$(pick_port)
# The upstream, and a second hello as the OTLP receiver: it answers 200 to
# every export, which is all the exporter asks of it.
"$BIN/hello" "127.0.0.1:$HELLO_PORT" 2>"$work/hello.log" &
pids+=($!)
"$BIN/hello" "127.0.0.1:$SINK_PORT" 2>"$work/sink.log" &
pids+=($!)
wait_for "http://127.0.0.1:$HELLO_PORT/"
wait_for "http://127.0.0.1:$SINK_PORT/"
write_hello_routes "$work/routes.toml" "127.0.0.1:$HELLO_PORT"
OTLP="http://127.0.0.1:$SINK_PORT"

# Waits up to 120 s (valgrind starts slowly) for a URL to answer 2xx.
wait_long() {
    for _ in $(seq 1 1200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$1 did not come up" >&2
    exit 1
}

# start KIND BINARY TRACING [WRAPPER…]: starts a balancer or products
# (tracing "on" or "off"); sets `started` (pid) and `url` (what to load).
start() {
    local kind=$1 binary=$2 tracing=$3
    shift 3
    local port
    port=$(pick_port)
    local env=(RUST_LOG=warn)
    [ "$tracing" = on ] && env+=(OTEL_EXPORTER_OTLP_ENDPOINT="$OTLP" OTEL_BSP_SCHEDULE_DELAY=1000)
    if [ "$kind" = balancer ]; then
        env "${env[@]}" BALANCER_WORKERS=1 BALANCER_HEALTH_INTERVAL=3600s \
            "$@" "$binary" --routes "$work/routes.toml" --listen "127.0.0.1:$port" \
            --admin-listen "127.0.0.1:$(pick_port)" --health-path / 2>>"$work/$kind.log" &
        started=$!
        pids+=("$started")
        wait_long "http://127.0.0.1:$port/healthz"
        url="http://127.0.0.1:$port/"
    else
        local penv=(PRODUCTS_DATA_DIR="$work/products-$RANDOM" PRODUCTS_LISTEN="127.0.0.1:$port"
            PRODUCTS_TOKEN_SECRET=bench-token-secret-bench-token-secret-00
            PRODUCTS_INTERNAL_KEY=bench-internal-key-bench-internal-key-00)
        # The demo catalog, as bench/products.sh has it.
        env RUST_LOG=warn "${penv[@]}" "$binary" seed >>"$work/$kind.log" 2>&1
        env "${env[@]}" "${penv[@]}" "$@" "$binary" 2>>"$work/$kind.log" &
        started=$!
        pids+=("$started")
        wait_long "http://127.0.0.1:$port/readyz"
        local id
        id=$(curl -fsS "http://127.0.0.1:$port/products/?limit=1&offset=5" | jq -r '.items[0].id')
        url="http://127.0.0.1:$port/product/$id"
    fi
}

stop() {
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# send URL COUNT [RATE]: COUNT requests to URL, one after another on one
# connection (at most RATE a second); prints how many answered 200.
send() {
    local cfg="$work/curl.cfg"
    : >"$cfg"
    for _ in $(seq 1 "$2"); do
        printf 'url = "%s"\noutput = "/dev/null"\n' "$1" >>"$cfg"
    done
    local rate=()
    [ -n "${3:-}" ] && rate=(--rate "$3/s")
    curl -s "${rate[@]}" -w '%{http_code}\n' -K "$cfg" | grep -c '^200$' || true
}

# instructions KIND BINARY TRACING LABEL: instructions per request under
# callgrind.
instructions() {
    local kind=$1 label=$4
    start "$1" "$2" "$3" valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p.out"
    local pid=$started
    send "$url" "$WARM" >/dev/null
    # valgrind runs the program as the same pid.
    callgrind_control -z "$pid" >/dev/null
    local ok
    ok=$(send "$url" "$N")
    if [ "$ok" != "$N" ]; then
        echo "$kind: only $ok of $N requests answered 200" >&2
        exit 1
    fi
    callgrind_control -d "$pid" >/dev/null
    local total
    total=$(cat "$work"/cg."$pid".out.* 2>/dev/null | awk '/^totals:/ { t += $2 } /^summary:/ { s += $2 } END { print (t ? t : s) + 0 }')
    stop "$pid"
    if [ -n "${DUMPS:-}" ]; then
        mkdir -p "$DUMPS"
        cat "$work"/cg."$pid".out.* >"$DUMPS/${label// /-}.$kind.$3.out"
    fi
    rm -f "$work"/cg."$pid".out*
    awk -v t="$total" -v n="$N" 'BEGIN { printf "%.0f", t / n }'
}

# cpu_us KIND BINARY TRACING: CPU microseconds per request at RATE.
cpu_us() {
    start "$1" "$2" "$3"
    local pid=$started
    send "$url" "$RATE" "$RATE" >/dev/null
    local before after answered
    before=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    answered=$(send "$url" "$((RATE * SECONDS_PER_ROUND))" "$RATE")
    after=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    stop "$pid"
    local hz
    hz=$(getconf CLK_TCK)
    awk -v d="$((after - before))" -v hz="$hz" -v n="$answered" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f %%", (a / b - 1) * 100 }'; }

echo "# Tracing cost ($(date -u +%F), $(nproc) cores, N=$N requests counted)"
echo
echo "Measured by \`bench/tracing.sh\`. \"on\" = OTLP/HTTP export of every request's spans (100 % sampled) to a loopback receiver."
echo
echo "## Instructions per request (callgrind)"
echo
header="| path |" rule="| --- |"
for b in "${baselines[@]}"; do
    header+=" ${b%%=*} (off) |" rule+=" ---: |"
done
echo "$header $LABEL (off) | $LABEL (on) |"
echo "$rule ---: | ---: |"
declare -A count
for kind in balancer products; do
    row="| $kind |"
    for b in "${baselines[@]}"; do
        log "callgrind: $kind, ${b%%=*}"
        count[$kind.${b%%=*}]=$(instructions "$kind" "${b#*=}/$kind" off "${b%%=*}")
        row+=" ${count[$kind.${b%%=*}]} |"
    done
    log "callgrind: $kind, $LABEL"
    count[$kind.off]=$(instructions "$kind" "$BIN/$kind" off "$LABEL")
    count[$kind.on]=$(instructions "$kind" "$BIN/$kind" on "$LABEL")
    echo "$row ${count[$kind.off]} | ${count[$kind.on]} |"
done

# What each step costs: every build against the one before it, then on
# against off.
echo
steps=() prev=
for b in "${baselines[@]}"; do
    [ -n "$prev" ] && steps+=("$prev>${b%%=*}")
    prev=${b%%=*}
done
[ -n "$prev" ] && steps+=("$prev>off")
steps+=("off>on")
header="| path |" rule="| --- |"
for step in "${steps[@]}"; do
    from=${step%>*} to=${step#*>}
    case $from in off) from="$LABEL (off)" ;; esac
    case $to in off) to="$LABEL (off)" ;; on) to="$LABEL (on)" ;; esac
    header+=" $from → $to |" rule+=" ---: |"
done
echo "$header"
echo "$rule"
for kind in balancer products; do
    row="| $kind |"
    for step in "${steps[@]}"; do
        row+=" $(ratio "${count[$kind.${step#*>}]}" "${count[$kind.${step%>*}]}") |"
    done
    echo "$row"
done

[ "$ROUNDS" -gt 0 ] || exit 0
echo
echo "## CPU per request at $RATE req/s for ${SECONDS_PER_ROUND}s (µs, median of $ROUNDS interleaved rounds)"
echo
echo "| path | off | on | on vs off | rounds (off/on) |"
echo "| --- | ---: | ---: | ---: | --- |"
for kind in balancer products; do
    offs=() ons=()
    for round in $(seq 1 "$ROUNDS"); do
        log "cpu: $kind round $round"
        if [ $((round % 2)) = 1 ]; then
            offs+=("$(cpu_us "$kind" "$BIN/$kind" off)")
            ons+=("$(cpu_us "$kind" "$BIN/$kind" on)")
        else
            ons+=("$(cpu_us "$kind" "$BIN/$kind" on)")
            offs+=("$(cpu_us "$kind" "$BIN/$kind" off)")
        fi
    done
    off=$(printf '%s\n' "${offs[@]}" | median)
    on=$(printf '%s\n' "${ons[@]}" | median)
    echo "| $kind | $off | $on | $(ratio "$on" "$off") | ${offs[*]} / ${ons[*]} |"
done

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
#    kept-alive connection at a fixed rate), for ROUNDS rounds: each round
#    runs an "off" and an "on" process side by side, loaded at the same
#    time, and reads every thread's CPU time from /proc/PID/task/*/schedstat
#    (ns); the on/off ratio is taken within each round and its median (with
#    a 95 % interval) reported. ROUNDS=0 skips this part.
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
# The upstream, and the OTLP receiver (reads each export and answers 200 on
# a kept-alive connection, which is all the exporter asks of it).
"$BIN/hello" "127.0.0.1:$HELLO_PORT" 2>"$work/hello.log" &
pids+=($!)
python3 bench/otlp_sink.py "$SINK_PORT" 2>"$work/sink.log" &
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
    local cfg="$work/curl.$BASHPID.cfg"
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

# cpu_ns PID: CPU time used so far by every thread of PID, in ns (the
# scheduler's own accounting in /proc/PID/task/*/schedstat, not 10 ms ticks).
cpu_ns() {
    local total=0 t
    for t in /proc/"$1"/task/*/schedstat; do
        total=$((total + $(cut -d' ' -f1 "$t")))
    done
    echo "$total"
}

# cpu_pair KIND: one round. An "off" and an "on" process run side by side
# and are loaded at the same time, RATE req/s each from a curl of its own,
# so that both see the same machine (on shared cores the CPU a request
# costs moves by ±20 % from minute to minute, more than the effect
# measured). Prints "off on": CPU µs per request of each.
cpu_pair() {
    local kind=$1
    start "$kind" "$BIN/$kind" off
    local p_off=$started u_off=$url
    start "$kind" "$BIN/$kind" on
    local p_on=$started u_on=$url
    send "$u_off" "$RATE" "$RATE" >/dev/null &
    local warm=$!
    send "$u_on" "$RATE" "$RATE" >/dev/null
    wait "$warm"
    local b_off b_on a_off a_on n_off n_on
    b_off=$(cpu_ns "$p_off") b_on=$(cpu_ns "$p_on")
    send "$u_off" "$((RATE * SECONDS_PER_ROUND))" "$RATE" >"$work/answered.off" &
    local load=$!
    n_on=$(send "$u_on" "$((RATE * SECONDS_PER_ROUND))" "$RATE")
    wait "$load"
    a_off=$(cpu_ns "$p_off") a_on=$(cpu_ns "$p_on")
    n_off=$(cat "$work/answered.off")
    stop "$p_off"
    stop "$p_on"
    awk -v off=$((a_off - b_off)) -v on=$((a_on - b_on)) -v noff="$n_off" -v non="$n_on" \
        'BEGIN { printf "%.2f %.2f\n", off / 1000 / noff, on / 1000 / non }'
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
echo "## CPU per request at $RATE req/s, off and on side by side ($ROUNDS rounds of ${SECONDS_PER_ROUND}s)"
echo
echo "Each round starts an \"off\" and an \"on\" process together and loads both"
echo "at once; CPU is every thread's scheduler time (schedstat). The ratio is"
echo "taken within each round, then the median across rounds."
echo
echo "| path | off (median µs) | on (median µs) | on vs off (median of the rounds' ratios, interval) | rounds (off/on µs) |"
echo "| --- | ---: | ---: | ---: | --- |"
for kind in balancer products; do
    offs=() ons=() ratios=()
    for round in $(seq 1 "$ROUNDS"); do
        log "cpu: $kind round $round"
        read -r off on < <(cpu_pair "$kind")
        offs+=("$off") ons+=("$on")
        ratios+=("$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.4f", a / b }')")
    done
    off=$(printf '%s\n' "${offs[@]}" | median)
    on=$(printf '%s\n' "${ons[@]}" | median)
    read -r r lo hi cover < <(printf '%s\n' "${ratios[@]}" | median_ci)
    rounds=""
    for i in "${!offs[@]}"; do rounds+=" ${offs[$i]}/${ons[$i]}"; done
    echo "| $kind | $off | $on | $(ratio "$r" 1) ($(ratio "$lo" 1) … $(ratio "$hi" 1), ${cover} %) |$rounds |"
done

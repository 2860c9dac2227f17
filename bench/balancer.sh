#!/usr/bin/env bash
# Benchmark of the balancer against nginx, both in front of the same bare
# hyper server (target/release/hello), and against that server directly.
#
# Installs what it needs (wrk and nginx-light from Debian, oha from
# crates.io), builds release binaries, then runs ROUNDS (default 5)
# interleaved rounds of: direct, via balancer, via nginx — saturation
# throughput (wrk -t2 -c64 -d5s) and p99 latency at fixed rates (oha -q
# with latency correction, default 5000 and 10000 req/s) — and prints the
# medians with ratios. The proxies take turns in the order they run
# within a round. Everything it starts is stopped on exit.
#
# Usage: bench/balancer.sh            (from anywhere in the repo)
#   ROUNDS=7 RATES="5000 10000 15000" DURATION=5s bench/balancer.sh
#   BALANCER_BIN=/path/to/balancer bench/balancer.sh   (another build)
#   BASELINE_BIN=/path/to/older/balancer bench/balancer.sh
#       (adds a "baseline" column: an older balancer, interleaved, for
#        before/after comparisons)
#
# Equivalence: both proxies keep idle keep-alive connections to the
# upstream, speak HTTP/1.1 to it, pass the client's Host (with its port),
# add X-Forwarded-For/-Proto/-Host and a request id, return the request id
# to the client, log nothing per request (nginx `access_log off`, balancer
# RUST_LOG=warn), and run two workers (nginx worker_processes 2; balancer
# workers=2), each with its own SO_REUSEPORT listener.

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROUNDS=${ROUNDS:-5}
RATES=${RATES:-"5000 10000"}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
HELLO_ADDR=127.0.0.1:19000
# Each balancer also listens on the next port (its admin endpoints,
# `admin_listen`), so the proxies' ports are two apart.
BALANCER_ADDR=127.0.0.1:19080
NGINX_ADDR=127.0.0.1:19090
BASELINE_ADDR=127.0.0.1:19082

log() { echo "[bench] $*" >&2; }

# --- tools -----------------------------------------------------------------
ensure_wrk
need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v curl >/dev/null || need_apt+=(curl)
command -v jq >/dev/null || need_apt+=(jq)
apt_install "${need_apt[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ensure_oha

log "building release binaries"
cargo build --release -q -p balancer -p bench

# --- processes (lib.sh stops every pid in `pids` and removes `$work`) ---
TMP=$work
require_free "${HELLO_ADDR##*:}" "${BALANCER_ADDR##*:}" "$((${BALANCER_ADDR##*:} + 1))" "${NGINX_ADDR##*:}"
[ -n "${BASELINE_BIN:-}" ] && require_free "${BASELINE_ADDR##*:}" "$((${BASELINE_ADDR##*:} + 1))"

"$ROOT/target/release/hello" "$HELLO_ADDR" 2>"$TMP/hello.log" &
pids+=($!)
wait_for "http://$HELLO_ADDR/"

write_hello_routes "$TMP/routes.toml" "$HELLO_ADDR"
RUST_LOG=warn BALANCER_WORKERS=${BALANCER_WORKERS:-2} \
  "${BALANCER_BIN:-$ROOT/target/release/balancer}" --routes "$TMP/routes.toml" --listen "$BALANCER_ADDR" \
  --health-path / 2>"$TMP/balancer.log" &
pids+=($!)
wait_for "http://$BALANCER_ADDR/healthz"

if [ -n "${BASELINE_BIN:-}" ]; then
  RUST_LOG=warn BALANCER_WORKERS=${BALANCER_WORKERS:-2} \
    "$BASELINE_BIN" --routes "$TMP/routes.toml" --listen "$BASELINE_ADDR" \
    --health-path / 2>"$TMP/baseline.log" &
  pids+=($!)
  wait_for "http://$BASELINE_ADDR/healthz"
fi

write_nginx_conf "$TMP/nginx" "$NGINX_ADDR" "$HELLO_ADDR"
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
pids+=($!)
wait_for "http://$NGINX_ADDR/"

declare -A URL=(
  [direct]="http://$HELLO_ADDR/"
  [balancer]="http://$BALANCER_ADDR/"
  [nginx]="http://$NGINX_ADDR/"
  [baseline]="http://$BASELINE_ADDR/"
)
TARGETS=(direct balancer nginx)
[ -n "${BASELINE_BIN:-}" ] && TARGETS+=(baseline)
RESULTS="$TMP/results.txt"
: >"$RESULTS"

saturation() {
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$1" | awk '/Requests\/sec:/ {print $2}'
}

p99_at() {
  # p99 in milliseconds at a fixed rate, corrected for coordinated omission.
  oha -z "$DURATION" -c "$CONNS" -q "$2" --latency-correction --no-tui \
    --output-format json "$1" | jq '.latencyPercentiles.p99 * 1000'
}

log "warming up"
for t in "${TARGETS[@]}"; do wrk -t2 -c"$CONNS" -d2s "${URL[$t]}" >/dev/null; done

# Direct runs first in every round; the proxies after it take turns going
# first (rotated one place a round), so neither always follows the direct
# run's load or always runs last, and order cannot lean the paired ratios.
PROXIES=("${TARGETS[@]:1}")
for round in $(seq 1 "$ROUNDS"); do
  k=$(((round - 1) % ${#PROXIES[@]}))
  for t in direct "${PROXIES[@]:k}" "${PROXIES[@]:0:k}"; do
    rps=$(saturation "${URL[$t]}")
    echo "$t rps $rps" >>"$RESULTS"
    line="round $round $t: ${rps} req/s"
    for rate in $RATES; do
      p99=$(p99_at "${URL[$t]}" "$rate")
      echo "$t p99@$rate $p99" >>"$RESULTS"
      line="$line, p99@$rate ${p99}ms"
    done
    log "$line"
  done
done

median_of() {
  grep "^$1 $2 " "$RESULTS" | awk '{print $3}' | median
}

echo
echo "Medians of $ROUNDS interleaved rounds ($(nproc) cores; wrk -t2 -c$CONNS -d$DURATION; oha -c$CONNS -z$DURATION -q RATE --latency-correction)"
if [ -n "${BASELINE_BIN:-}" ]; then
  printf "%-16s %12s %12s %12s %12s %16s %16s %14s\n" metric direct balancer nginx baseline balancer/nginx baseline/nginx nginx/direct
else
  printf "%-16s %12s %12s %12s %16s %14s\n" metric direct balancer nginx balancer/nginx nginx/direct
fi
ratio() { echo "$1 $2" | awk '{print $1/$2}'; }
for metric in rps $(for r in $RATES; do echo "p99@$r"; done); do
  d=$(median_of direct "$metric"); b=$(median_of balancer "$metric"); n=$(median_of nginx "$metric")
  if [ "$metric" = rps ]; then label="req/s"; else label="$metric (ms)"; fi
  if [ -n "${BASELINE_BIN:-}" ]; then
    o=$(median_of baseline "$metric")
    printf "%-16s %12.2f %12.2f %12.2f %12.2f %15.2fx %15.2fx %13.2fx\n" "$label" "$d" "$b" "$n" "$o" \
      "$(ratio "$b" "$n")" "$(ratio "$o" "$n")" "$(ratio "$n" "$d")"
  else
    printf "%-16s %12.2f %12.2f %12.2f %15.2fx %13.2fx\n" "$label" "$d" "$b" "$n" \
      "$(ratio "$b" "$n")" "$(ratio "$n" "$d")"
  fi
done
echo "(req/s: higher is better; p99: lower is better, so balancer/nginx < 1 means the balancer is faster)"

# The machine's speed drifts between rounds by more than the differences
# measured; a ratio taken within one round (the targets ran seconds apart)
# cancels most of that drift, so its median is the steadier figure.
paired() {
  paste <(grep "^$1 $3 " "$RESULTS" | awk '{print $3}') <(grep "^$2 $3 " "$RESULTS" | awk '{print $3}') |
    awk '{print $1 / $2}'
}
echo
echo "balancer/nginx within each round (median, the confidence interval of that median, the per-round values)"
for metric in rps $(for r in $RATES; do echo "p99@$r"; done); do
  ratios=$(paired balancer nginx "$metric")
  rounds=$(awk '{printf "%.2f ", $1}' <<<"$ratios")
  read -r mid lo hi cover <<<"$(median_ci <<<"$ratios")"
  printf "%-16s %6.2fx   %.2f-%.2f (%s %%)   [ %s]\n" "$metric" "$mid" "$lo" "$hi" "$cover" "$rounds"
done
echo "(an interval that holds 1.00 is a difference these rounds cannot tell from noise; see median_ci in lib.sh)"

#!/usr/bin/env bash
# CPU per proxied request and latency: the balancer against nginx (or
# against another balancer build), both loaded at the same time.
#
# The latency table of bench/balancer.sh moves by 10-20 % from round to
# round on a shared 2-core machine, far more than the differences between
# two builds of the balancer. Here both proxies run side by side in front
# of the same bare hyper server, each gets the same fixed rate from its own
# oha at the same time, and each one's CPU time (perf stat task-clock, user
# and kernel) is divided by the requests it answered: drift of the machine
# hits both alike, and the per-round ratio is steady to about 1-2 %. The
# first slot is favoured by about 1 % (the same build in both slots gives
# 0.98-1.00), so compare builds in both orders.
#
# The same rounds give each proxy's p50 and p99 (oha, corrected for
# coordinated omission): both see the same machine at the same moment, so
# the per-round latency ratio is far steadier than bench/balancer.sh's,
# where the two run seconds apart. The machine carries twice RATE in all
# (the default, 5000 each, loads it as one proxy at 10k req/s does). The
# two loads start in turn, one first on odd rounds, the other on even ones.
#
# Last, each proxy alone at RATE, its system calls a request.
#
# Usage: bench/balancer-cpu.sh               (balancer against nginx)
#   ROUNDS=7 RATE=5000 bench/balancer-cpu.sh
#   BALANCER_BIN=/path/to/new BASELINE_BIN=/path/to/old bench/balancer-cpu.sh
#       (two balancer builds instead of balancer and nginx)

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROUNDS=${ROUNDS:-5}
RATE=${RATE:-5000}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
HELLO_ADDR=127.0.0.1:19000
# A balancer also listens on the next port (its admin endpoints,
# `admin_listen`): 19081 and 19083 are taken too.
A_ADDR=127.0.0.1:19080
B_ADDR=127.0.0.1:19082

log() { echo "[bench] $*" >&2; }

# --- tools -----------------------------------------------------------------
need_apt=()
command -v perf >/dev/null || need_apt+=(linux-perf)
command -v jq >/dev/null || need_apt+=(jq)
command -v curl >/dev/null || need_apt+=(curl)
[ -z "${BASELINE_BIN:-}" ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && need_apt+=(nginx-light)
apt_install "${need_apt[@]}"
ensure_oha
log "building release binaries"
cargo build --release -q -p balancer -p bench

# --- processes (lib.sh stops every pid in `pids` and removes `$work`) ---
require_free "${HELLO_ADDR##*:}" "${A_ADDR##*:}" "$((${A_ADDR##*:} + 1))" "${B_ADDR##*:}" "$((${B_ADDR##*:} + 1))"
"$ROOT/target/release/hello" "$HELLO_ADDR" 2>"$work/hello.log" &
pids+=($!)
wait_for "http://$HELLO_ADDR/"
write_hello_routes "$work/routes.toml" "$HELLO_ADDR"

start_balancer() { # binary, address; sets `started` to its pid
  RUST_LOG=warn BALANCER_WORKERS=2 "$1" --routes "$work/routes.toml" --listen "$2" \
    --health-path / 2>>"$work/balancer.log" &
  started=$!
  pids+=("$started")
  wait_for "http://$2/healthz"
}
start_balancer "${BALANCER_BIN:-$ROOT/target/release/balancer}" "$A_ADDR"
A_PIDS=$started
A_NAME=balancer
if [ -n "${BASELINE_BIN:-}" ]; then
  start_balancer "$BASELINE_BIN" "$B_ADDR"
  B_PIDS=$started
  B_NAME=baseline
else
  write_nginx_conf "$work/nginx" "$B_ADDR" "$HELLO_ADDR"
  "$(command -v nginx || echo /usr/sbin/nginx)" -p "$work/nginx" -c "$work/nginx/nginx.conf" \
    2>"$work/nginx/stderr.log" &
  nginx_master=$!
  pids+=("$nginx_master")
  wait_for "http://$B_ADDR/"
  # The workers do the proxying; the master only watches them.
  B_PIDS=$(pgrep -P "$nginx_master" | paste -sd,)
  B_NAME=nginx
fi

load() { # url, output file
  oha -z "$DURATION" -c "$CONNS" -q "$RATE" --latency-correction --no-tui \
    --output-format json "$1" >"$2"
}

log "warming up"
load "http://$A_ADDR/" /dev/null & load "http://$B_ADDR/" /dev/null; wait $!

RESULTS=$work/results.txt
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  perf stat -x, -e task-clock -p "$A_PIDS" -o "$work/a.perf" & perf_a=$!
  perf stat -x, -e task-clock -p "$B_PIDS" -o "$work/b.perf" & perf_b=$!
  sleep 0.3
  if [ $((round % 2)) = 1 ]; then
    load "http://$A_ADDR/" "$work/a.json" & first=$!
    load "http://$B_ADDR/" "$work/b.json"
  else
    load "http://$B_ADDR/" "$work/b.json" & first=$!
    load "http://$A_ADDR/" "$work/a.json"
  fi
  wait "$first"
  kill -INT "$perf_a" "$perf_b"
  wait "$perf_a" "$perf_b" || true
  a_ms=$(grep task-clock "$work/a.perf" | cut -d, -f1)
  b_ms=$(grep task-clock "$work/b.perf" | cut -d, -f1)
  a_n=$(jq '.statusCodeDistribution["200"] // 0' "$work/a.json")
  b_n=$(jq '.statusCodeDistribution["200"] // 0' "$work/b.json")
  line=$(awk -v am="$a_ms" -v an="$a_n" -v bm="$b_ms" -v bn="$b_n" \
    'BEGIN { a = am * 1000 / an; b = bm * 1000 / bn; printf "%.2f %.2f %.3f", a, b, a / b }')
  percentiles='"\(.latencyPercentiles.p50 * 1000) \(.latencyPercentiles.p99 * 1000)"'
  read -r a50 a99 <<<"$(jq -r "$percentiles" "$work/a.json")"
  read -r b50 b99 <<<"$(jq -r "$percentiles" "$work/b.json")"
  echo "$line $a50 $a99 $b50 $b99" >>"$RESULTS"
  read -r a b r <<<"$line"
  log "round $round: $A_NAME ${a} us/request, $B_NAME ${b} us/request, ratio $r;" \
    "p50/p99 $A_NAME $(printf "%.3f/%.3f" "$a50" "$a99") ms, $B_NAME $(printf "%.3f/%.3f" "$b50" "$b99") ms"
done

echo
echo "CPU per request, $ROUNDS rounds, both proxies at $RATE req/s at once (oha -c$CONNS -z$DURATION each; $(nproc) cores)"
printf "%-10s %14s\n" "" "us/request"
printf "%-10s %14.2f\n" "$A_NAME" "$(awk '{print $1}' "$RESULTS" | median)"
printf "%-10s %14.2f\n" "$B_NAME" "$(awk '{print $2}' "$RESULTS" | median)"
read -r mid lo hi cover <<<"$(awk '{print $3}' "$RESULTS" | median_ci)"
printf "%-10s %13.3fx   %.3f-%.3f (%s %%)   [ %s]\n" "$A_NAME/$B_NAME" "$mid" "$lo" "$hi" "$cover" \
  "$(awk '{printf "%s ", $3}' "$RESULTS")"
echo "(lower is better; the first slot, $A_NAME, is favoured by about 1 %)"

# Columns of $RESULTS: 1-3 CPU, 4-5 first proxy's p50 and p99, 6-7 second's.
column_ratio() { awk -v x="$1" -v y="$2" '{ printf "%.3f\n", $x / $y }' "$RESULTS"; }
echo
echo "Latency in the same rounds (oha --latency-correction), medians in ms"
printf "%-16s %10s %10s %10s   %-22s %s\n" "" "$A_NAME" "$B_NAME" "ratio" "interval" "ratio per round"
for p in "p50 4 6" "p99 5 7"; do
  read -r name x y <<<"$p"
  ratios=$(column_ratio "$x" "$y")
  read -r mid lo hi cover <<<"$(median_ci <<<"$ratios")"
  printf "%-16s %10.3f %10.3f %9.3fx   %-22s [ %s]\n" "$name" \
    "$(awk -v c="$x" '{print $c}' "$RESULTS" | median)" \
    "$(awk -v c="$y" '{print $c}' "$RESULTS" | median)" \
    "$mid" "$(printf "%.3f-%.3f (%s %%)" "$lo" "$hi" "$cover")" \
    "$(tr '\n' ' ' <<<"$ratios")"
done
echo "(ratio: the median of the per-round $A_NAME/$B_NAME ratios, lower is better; interval: the"
echo " confidence interval of that median, see median_ci in lib.sh: one that holds 1 is noise)"

# System calls a request, each proxy loaded alone at RATE: what the kernel
# is asked to do, which the CPU figures above cannot split out (perf's
# syscall tracepoints; a count is shown when it is at least 0.01 a request).
echo
echo "System calls a request, each proxy alone at $RATE req/s (perf stat -e 'syscalls:sys_enter_*')"
for side in "$A_NAME $A_ADDR $A_PIDS" "$B_NAME $B_ADDR $B_PIDS"; do
  read -r name addr procs <<<"$side"
  perf stat -x, -e 'syscalls:sys_enter_*' -p "$procs" -o "$work/$name.sys" & counting=$!
  sleep 0.3
  load "http://$addr/" "$work/$name.json"
  kill -INT "$counting"
  wait "$counting" || true
  n=$(jq '.statusCodeDistribution["200"] // 0' "$work/$name.json")
  echo "$name ($n requests): $(awk -F, -v n="$n" '$1 ~ /^[0-9]+$/ && $1 >= n / 100 {
      sub("syscalls:sys_enter_", "", $3); printf "%s %.2f  ", $3, $1 / n }' "$work/$name.sys")"
done

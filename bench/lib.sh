# Shared helpers for the benchmark scripts in bench/ (sourced, not run):
# installing wrk, starting processes that are stopped on exit, free ports,
# waiting for readiness, and reading wrk's output.
# shellcheck shell=bash

# Installs wrk from Debian's packages when it is missing.
ensure_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        echo "installing wrk..." >&2
        apt-get update && apt-get install -y wrk
    fi
}

# Installs the Debian packages named (callers pass only what is missing).
apt_install() {
    [ $# -gt 0 ] || return 0
    echo "[bench] installing $*" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Installs oha (fixed-rate load with latency correction) from crates.io
# when it is missing, and puts cargo's bin directory on PATH.
ensure_oha() {
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! command -v oha >/dev/null; then
        echo "[bench] installing oha" >&2
        cargo install oha --locked
    fi
}

# A scratch directory, and a trap that stops every pid in `pids` (only what
# the script started) and removes the directory.
work=$(mktemp -d)
pids=()
cleanup() {
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

# A random free port in 20000–39999.
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

# Fails unless every port given is free.
require_free() {
    for port in "$@"; do
        if ! port_free "$port"; then
            echo "port $port is in use; pick other ports (see the script's knobs)" >&2
            exit 1
        fi
    done
}

# Waits up to 10 s for a URL to answer 2xx.
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

# The median of the numbers on standard input, one per line.
median() {
    median_ci | cut -d' ' -f1
}

# The median of the numbers on standard input (one per line) with a
# confidence interval for it that assumes nothing about their
# distribution: the k-th smallest and k-th largest value, with k the
# largest rank for which the chance that the true median lies outside is
# at most 5 % (binomial with p = 1/2). Prints "median low high coverage%";
# with fewer than 6 values no such k exists and the range is printed with
# its (lower) coverage. A ratio whose interval holds 1 is a difference the
# rounds cannot tell from noise.
median_ci() {
    sort -g | awk '{ v[NR] = $1 } END {
        n = NR; k = 1; term = 0.5 ^ n; tail = term
        median = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        # tail = P(B <= k - 1); grow k while P(B <= k) stays within 2.5 %.
        while (k < n / 2) {
            term = term * (n - k + 1) / k
            if (tail + term > 0.025) break
            tail += term; k++
        }
        printf "%s %s %s %.0f\n", median, v[k], v[n - k + 1], (1 - 2 * tail) * 100
    }'
}

# A route table sending everything to the bare hello server at $2 (host:port).
write_hello_routes() {
    cat >"$1" <<EOF
[[route]]
prefix = "/"
pool = "hello"

[pools.hello]
upstreams = ["http://$2"]
EOF
}

# nginx configured as the balancer is in the benchmarks, in directory $1:
# listening on $2, proxying to $3 over kept-alive HTTP/1.1 connections,
# passing the client's Host, adding X-Forwarded-For/-Proto/-Host and a
# request id (returned to the client too), no access log, two workers with
# SO_REUSEPORT listeners.
write_nginx_conf() {
    local dir=$1 listen=$2 upstream=$3
    mkdir -p "$dir"
    local user_line=""
    [ "$(id -u)" = 0 ] && user_line="user root;"
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream hello {
    server $upstream;
    keepalive 128;
  }
  server {
    listen $listen reuseport;
    location / {
      proxy_pass http://hello;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Request-Id \$request_id;
      add_header X-Request-Id \$request_id always;
    }
  }
}
EOF
}

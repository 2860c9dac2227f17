#!/usr/bin/env bash
# CI's compose stage: the operator's path (README: "Operating it with
# docker-compose") on a real Docker engine, step for step, with the
# project's own Dockerfile and docker-compose.yml unchanged and no `.env`.
#
#   1. the engine: installs docker.io, docker-compose and debootstrap if
#      missing, starts dockerd if it is not running (fails with the reason
#      if it cannot: no skipping);
#   2. the images the files name, as local stand-ins (../shared/container-
#      standins/build.sh; this machine has no registry);
#   3. docker-compose build; docker-compose up -d; every service healthy,
#      secrets generated, catalog seeded; hardening checked with inspect;
#   4. the shopper's journey through the published balancer port and the
#      mail through Mailpit's API (deploy/ci/compose_journey.py);
#   5. --profile observability: promtool check config, every target up;
#   6. --scale products=3: requests spread over the replicas, then one is
#      stopped under a bounded load and no request fails;
#   7. PostgreSQL stopped and started under light traffic: every answer
#      is 200 or 503, services report not ready, recover by themselves, no
#      500 after, nothing lost;
#   8. down, up -d: accounts, orders and catalog are still there;
#   9. each image's size, and what the Dockerfile adds (docker history).
# Then `down -v`. Ports: SHOP_PORT, MAIL_UI_PORT and PROMETHEUS_PORT are
# picked free (environment, not .env, so the files stay as a clone has them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-shopci}
STATE=$(mktemp -d)
JOURNEY="python3 $ROOT/deploy/ci/compose_journey.py"
started=$(date +%s)
step() { printf '\n--- compose: %s (%ss) ---\n' "$*" "$(($(date +%s) - started))"; }
die() { echo "compose-test: FAIL: $*" >&2; exit 1; }

cleanup() {
    rc=$?
    if [ $rc -ne 0 ] && command -v docker-compose >/dev/null; then
        echo "--- compose: failed; state and last logs ---"
        docker-compose --profile observability ps || true
        docker-compose --profile observability logs --tail 40 || true
    fi
    if [ "${COMPOSE_KEEP:-0}" != 1 ] && command -v docker-compose >/dev/null; then
        docker-compose --profile observability down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE"
    exit $rc
}
trap cleanup EXIT

step "engine"
need=()
command -v docker >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || die "dockerd is not installed"
    mkdir -p /var/log
    nohup setsid dockerd >/var/log/dockerd-ci.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd-ci.log >&2; die "the Docker engine did not start (log above)"; }
fi
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}'
docker-compose version --short
[ -e .env ] && die ".env exists: the stage runs what a fresh clone runs"

step "stand-ins for the images docker-compose.yml and the Dockerfile pin"
pin() { grep -oE "image: $1:[^ ]+" docker-compose.yml | head -n1 | sed 's/.*://'; }
# The build machines keep the script in a `shared/` directory beside (or
# above) the clone; STANDINS names it anywhere else.
standins=${STANDINS:-}
if [ -z "$standins" ]; then
    dir=$ROOT
    while [ "$dir" != / ]; do
        dir=$(dirname "$dir")
        if [ -x "$dir/shared/container-standins/build.sh" ]; then
            standins=$dir/shared/container-standins/build.sh
            break
        fi
    done
fi
[ -n "$standins" ] || die "no shared/container-standins/build.sh above $ROOT (set STANDINS)"
"$standins" \
    --rust-version "$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)" \
    --mailpit-tag "$(pin axllent/mailpit)" \
    --prometheus-tag "$(pin prom/prometheus)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export SHOP_PORT=${SHOP_PORT:-$(free_port)} MAIL_UI_PORT=${MAIL_UI_PORT:-$(free_port)} PROMETHEUS_PORT=${PROMETHEUS_PORT:-$(free_port)}
SHOP=http://127.0.0.1:$SHOP_PORT MAIL=http://127.0.0.1:$MAIL_UI_PORT PROM=http://127.0.0.1:$PROMETHEUS_PORT
SERVICES=(users products cart mailer stats payments-mock balancer)

step "docker-compose build"
t0=$(date +%s)
docker-compose build
echo "build took $(($(date +%s) - t0))s"

# Every container of the project healthy, and the one-shot jobs done.
wait_healthy() {
    local deadline=$(($(date +%s) + ${1:-180})) bad
    while :; do
        bad=""
        for id in $(docker-compose ps -q); do
            read -r name status health code < <(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' "$id")
            case "$name" in
                *prometheus*) [ "$status" = running ] || bad+=" $name:$status" ;;
                *init-secrets*|*seed*) [ "$status" = exited ] && [ "$code" = 0 ] || bad+=" $name:$status:$code" ;;
                *) [ "$health" = healthy ] || bad+=" $name:$status:$health" ;;
            esac
        done
        [ -z "$bad" ] && { echo "all healthy: $(docker-compose ps -q | wc -l) containers"; return 0; }
        [ "$(date +%s)" -gt "$deadline" ] && die "not healthy in time:$bad"
        sleep 2
    done
}

step "docker-compose up -d (no .env, nothing filled in)"
docker-compose up -d
wait_healthy 240
docker-compose ps
docker-compose logs init-secrets | tail -n1
docker-compose logs seed | tail -n1

step "hardening, as docker inspect sees it"
for svc in "${SERVICES[@]}"; do
    id=$(docker-compose ps -q "$svc" | head -n1)
    line=$(docker inspect -f 'mem={{.HostConfig.Memory}} capdrop={{.HostConfig.CapDrop}} secopt={{.HostConfig.SecurityOpt}} ro={{.HostConfig.ReadonlyRootfs}} stop={{.Config.StopTimeout}} log={{.HostConfig.LogConfig.Type}}:{{index .HostConfig.LogConfig.Config "max-size"}} user={{.Config.User}}' "$id")
    echo "$svc: $line"
    case "$line" in mem=0*) die "$svc has no memory limit" ;; esac
    for want in "capdrop=[ALL]" "no-new-privileges:true" "ro=true" "stop=20" "log=json-file:10m" "user=nonroot:nonroot"; do
        [[ "$line" == *"$want"* ]] || die "$svc: expected $want"
    done
done
# Published ports listen on loopback only (SHOP_BIND unset).
docker-compose port balancer 8080 | grep -q '^127.0.0.1:' || die "the shop is not bound to 127.0.0.1"
docker-compose port mailpit 8025 | grep -q '^127.0.0.1:' || die "Mailpit's UI is not bound to 127.0.0.1"
# Secrets: files in the volume, none in any container's environment.
# (Listed from the postgres container: the shop's images have no `ls`.)
secrets_ls=$(docker-compose exec -T postgres ls -ln /run/secrets/shop)
echo "$secrets_ls"
echo "$secrets_ls" | grep -q -- '-rw------- .* 65532 .* token_secret' || die "token_secret is not 0600, owned by nonroot"
if docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' $(docker-compose ps -q) | grep -E '^(SHOP_[A-Z_]*(SECRET|KEY)|[A-Z]*_DATABASE_PASSWORD|POSTGRES_PASSWORD)='; then
    die "a secret is in a container's environment"
fi

step "the shopper's journey through the published balancer port"
$JOURNEY journey "$SHOP" "$MAIL" "$STATE/journey.json"

step "observability profile: Prometheus"
docker run --rm --entrypoint /bin/promtool \
    -v "$ROOT/deploy/prometheus:/etc/prometheus:ro" "$(grep -oE 'prom/prometheus:[^ ]+' docker-compose.yml | head -n1)" \
    check config /etc/prometheus/prometheus.yml
docker-compose --profile observability up -d prometheus
$JOURNEY targets "$PROM" 7

step "--scale products=3: the balancer spreads requests"
docker-compose up -d --scale products=3 --no-recreate
wait_healthy 120
replicas=($(docker-compose ps -q products))
[ ${#replicas[@]} -eq 3 ] || die "expected 3 products replicas, have ${#replicas[@]}"
# The balancer re-resolves `products` every 30 s (resolve_interval): load
# in short rounds until each replica's access log shows catalog requests.
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for round in $(seq 15); do
    $JOURNEY load "$SHOP" 4 4
    spread="" idle=0
    for id in "${replicas[@]}"; do
        n=$(docker logs --since "$since" "$id" 2>&1 | grep '"access"' | grep -c '/products/' || true)
        spread+=" ${id:0:12}=$n"
        [ "$n" -gt 0 ] || idle=$((idle + 1))
    done
    echo "round $round: catalog requests per replica:$spread"
    [ $idle -eq 0 ] && break
done
[ $idle -eq 0 ] || die "$idle replicas got no requests: the balancer does not spread them"
$JOURNEY targets "$PROM" 9

step "stop one products replica under a bounded load: no request fails"
$JOURNEY load "$SHOP" 20 4 & load_pid=$!
sleep 5
docker stop -t 20 "${replicas[0]}" >/dev/null
echo "stopped replica ${replicas[0]:0:12}"
wait $load_pid || die "requests failed while a replica stopped"
# Back to one replica: compose removes products_2 and _3 and starts again
# the one stopped above (often products_1). Until it is up no replica can be
# connected to, and the answer is rightly 502 upstream_unreachable; the next
# step is about PostgreSQL, so it starts once products is healthy again.
docker-compose up -d --scale products=1 --no-recreate products
wait_healthy 120

step "PostgreSQL goes away under light traffic, and comes back"
$JOURNEY traffic "$SHOP" 40 "$STATE/journey.json" > "$STATE/traffic.log" & traffic_pid=$!
sleep 3
docker-compose stop postgres
not_ready=""
for _ in $(seq 30); do
    not_ready=""
    for svc in users products cart mailer stats payments-mock; do
        docker-compose exec -T "$svc" /usr/local/bin/service healthcheck >/dev/null 2>&1 || not_ready+=" $svc"
    done
    [ "$(echo $not_ready | wc -w)" -eq 6 ] && break
    sleep 1
done
echo "not ready while PostgreSQL is down:$not_ready"
[ "$(echo $not_ready | wc -w)" -eq 6 ] || die "not every service reported not ready"
docker-compose start postgres
wait_healthy 120
traffic_rc=0
wait $traffic_pid || traffic_rc=$?
cat "$STATE/traffic.log"
[ $traffic_rc -eq 0 ] || die "during the outage an answer was neither 200 nor 503"
$JOURNEY after-outage "$SHOP" "$STATE/journey.json"
for svc in "${SERVICES[@]}"; do
    restarts=$(docker inspect -f '{{.RestartCount}}' $(docker-compose ps -q "$svc"))
    echo "$svc restarts: $restarts" | tr '\n' ' '
done; echo

step "down, then up -d: the named volumes keep everything"
docker-compose --profile observability down
docker-compose up -d
wait_healthy 240
$JOURNEY persisted "$SHOP" "$STATE/journey.json"

step "image sizes (goal: under 20 MB added per service)"
base=gcr.io/distroless/cc-debian12:nonroot
base_size=$(docker image inspect -f '{{.Size}}' "$base")
printf '%-22s %10s %12s\n' image total added
for svc in "${SERVICES[@]}"; do
    size=$(docker image inspect -f '{{.Size}}' "shop/$svc")
    added=$((size - base_size))
    awk -v n="shop/$svc" -v s="$size" -v a="$added" 'BEGIN { printf "%-22s %8.1fMB %10.1fMB\n", n, s / 1e6, a / 1e6 }'
    [ "$added" -lt 20000000 ] || die "shop/$svc adds $added bytes (goal < 20 MB)"
done
echo "layers the Dockerfile adds to shop/balancer (docker history):"
docker history --format '{{.Size}}\t{{.CreatedBy}}' shop/balancer | head -n 8 | cut -c1-120

step "compose stage passed in $(($(date +%s) - started))s"

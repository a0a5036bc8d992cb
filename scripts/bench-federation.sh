#!/usr/bin/env bash
# Federation (issue 14): the cost of one level of federation on a real
# engine, and a federation of simulated engines at scale.
#
# Usage: scripts/bench-federation.sh [--runs N] [--sizes "10 30 100"] [--engines 100] [--real-only | --sim-only]
#
# Real (needs root): one dockerd in a network namespace (shoal-demo up
# --no-shoal --engines 1), a shoal "siteA" over it and a shoal "top" over
# siteA; a container with a 10 MB log placed from the top; then each command
# N times (default 15) against the engine, through siteA and through top,
# interleaved; medians of the whole docker command's wall-clock time.
#
# Simulated: for each size M in --sizes, M member shoals over --engines
# simulated engines each (30 containers per engine) and a top shoal over
# them (go test -run TestFederationScale ./test/scale/, see there).
# Size 10 (1,000 engines, 30,000 containers) takes about 1.5 minutes on 2
# cores; 30 and 100 did not load on the shared 2-core machine of
# 2026-11-30 (see docs/benchmarks.md) and wait up to 10 minutes per step.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=15 sizes="10" engines=100 real=1 sim=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --engines) engines=$2; shift 2 ;;
    --real-only) sim=0; shift ;;
    --sim-only) real=0; shift ;;
    *) echo "usage: $0 [--runs N] [--sizes \"10 30 100\"] [--engines 100] [--real-only | --sim-only]" >&2; exit 2 ;;
  esac
done
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

real_bench() {
  local dir=/tmp/shoal-fedbench state=/tmp/shoal-fedbench/state.json p1=23761 p2=23762
  mkdir -p "$dir"
  go build -o bin/shoal ./cmd/shoal
  go run ./test/testbed/cmd/shoal-demo up --no-shoal --engines 1 --state "$state" >"$dir/up.log"
  local pids=()
  cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    go run ./test/testbed/cmd/shoal-demo down --state "$state" >/dev/null 2>&1 || true
  }
  trap cleanup EXIT
  local direct
  direct=$(grep -o 'DOCKER_HOST=tcp://[^)]*' "$dir/up.log" | head -1 | cut -d= -f2)
  ./bin/shoal manage --name siteA --log-level warn --data-dir "" -H tcp://127.0.0.1:$p1 "nodes://${direct#tcp://}" >"$dir/siteA.log" 2>&1 &
  pids+=($!)
  ./bin/shoal manage --name top --log-level warn --data-dir "" -H tcp://127.0.0.1:$p2 "nodes://127.0.0.1:$p1" >"$dir/top.log" 2>&1 &
  pids+=($!)
  export DOCKER_CONFIG; DOCKER_CONFIG=$(mktemp -d)
  local l1=tcp://127.0.0.1:$p1 l2=tcp://127.0.0.1:$p2
  # The top is ready once it shows siteA's engine as a leaf.
  until DOCKER_HOST=$l2 docker node ls 2>/dev/null | grep -q siteA; do sleep 0.5; done
  DOCKER_HOST=$l2 docker run -d --name benchlog busybox sh -c \
    'i=0; while [ $i -lt 115000 ]; do echo "line $i 0123456789012345678901234567890123456789012345678901234567890123456789012345678"; i=$((i+1)); done; sleep 100000' >/dev/null
  until [ "$(DOCKER_HOST=$direct docker logs benchlog 2>/dev/null | wc -c)" -ge 10000000 ]; do sleep 0.5; done
  local bytes name
  bytes=$(DOCKER_HOST=$l2 docker logs benchlog | wc -c)
  name=$(DOCKER_HOST=$l2 docker ps --filter name=benchlog --format '{{.Names}}')

  median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
  time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e-s)/1000 )) | awk '{printf "%.1f\n", $1/1000}'; }
  echo "## one level of federation on a real engine ($runs runs each, interleaved; medians in ms)"
  printf '%-28s %9s %9s %9s %9s %9s %9s  %s\n' command engine siteA top siteA/eng top/eng top/siteA "load average"
  for c in "docker inspect benchlog" "docker logs benchlog" "docker exec benchlog true"; do
    read -r -a argv <<<"$c"
    local fd fs ft
    fd=$(mktemp) fs=$(mktemp) ft=$(mktemp)
    for _ in $(seq "$runs"); do
      DOCKER_HOST=$direct time_ms "${argv[@]}" >>"$fd"
      DOCKER_HOST=$l1 time_ms "${argv[@]}" >>"$fs"
      DOCKER_HOST=$l2 time_ms "${argv[@]}" >>"$ft"
    done
    local d s t
    d=$(median <"$fd") s=$(median <"$fs") t=$(median <"$ft")
    printf '%-28s %9s %9s %9s %9.2f %9.2f %9.2f  %s\n' "$c" "$d" "$s" "$t" \
      "$(echo "$s $d" | awk '{print $1/$2}')" "$(echo "$t $d" | awk '{print $1/$2}')" "$(echo "$t $s" | awk '{print $1/$2}')" \
      "$(cut -d' ' -f1-3 /proc/loadavg)"
    rm -f "$fd" "$fs" "$ft"
  done
  echo "(log: $bytes bytes; the container is $name in ps at the top; engine: $(DOCKER_HOST=$direct docker version -f '{{.Server.Version}}'))"
  echo "RSS: siteA $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/${pids[0]}/status), top $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/${pids[1]}/status)"
  cleanup
  trap - EXIT
}

sim_bench() {
  for m in $sizes; do
    echo "## $m members × $engines simulated engines"
    SHOAL_FED_MEMBERS=$m SHOAL_FED_ENGINES=$engines SHOAL_SCALE_REPORT=/tmp/shoal-fedbench-$m.txt \
      go test -count=1 -timeout 30m -run '^TestFederationScale$' ./test/scale/ >/tmp/shoal-fedbench-$m.log 2>&1 ||
      { tail -40 /tmp/shoal-fedbench-$m.log; exit 1; }
    cat /tmp/shoal-fedbench-$m.txt
  done
}

[ "$real" = 1 ] && real_bench
[ "$sim" = 1 ] && sim_bench
echo "# done $(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"

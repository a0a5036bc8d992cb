#!/usr/bin/env bash
# Proxy overhead: the same docker CLI commands against one engine directly
# and through shoal, side by side in one run; prints medians in ms.
# Usage: scripts/bench-proxy.sh [runs]   (needs root; starts and stops a demo cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
state=/tmp/shoal-bench/state.json
port=23750
go build -o bin/shoal ./cmd/shoal
go run ./test/testbed/cmd/shoal-demo up --shoal ./bin/shoal --state "$state" --listen tcp://127.0.0.1:$port >/tmp/shoal-bench-up.log
trap 'go run ./test/testbed/cmd/shoal-demo down --state "$state" >/dev/null 2>&1 || true' EXIT
export DOCKER_CONFIG=$(mktemp -d)
shoal=tcp://127.0.0.1:$port
# 10 MB of log lines on one container, placed by shoal.
DOCKER_HOST=$shoal docker run -d --name benchlog -e constraint:node==node1 busybox sh -c \
  'i=0; while [ $i -lt 115000 ]; do echo "line $i 0123456789012345678901234567890123456789012345678901234567890123456789012345678"; i=$((i+1)); done; sleep 100000' >/dev/null
direct=$(awk '/node1/ && /DOCKER_HOST=/ {gsub(/[()]/,""); for(i=1;i<=NF;i++) if ($i ~ /^DOCKER_HOST=/) {sub("DOCKER_HOST=","",$i); print $i}}' /tmp/shoal-bench-up.log | head -1)
until [ "$(DOCKER_HOST=$shoal docker logs benchlog 2>/dev/null | wc -c)" -ge 10000000 ]; do sleep 0.5; done
bytes=$(DOCKER_HOST=$shoal docker logs benchlog | wc -c)

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e-s)/1000 )) | awk '{printf "%.1f\n", $1/1000}'; }
measure() { # host, command...
  local host=$1; shift
  for _ in $(seq "$runs"); do DOCKER_HOST=$host time_ms "$@"; done | median
}
printf '%-28s %10s %10s %7s\n' "command ($runs runs, median)" "direct ms" "shoal ms" "ratio"
for c in "docker inspect benchlog" "docker logs benchlog" "docker exec benchlog true"; do
  read -r -a argv <<<"$c"
  # interleave: direct then shoal, so both see the same machine state
  d=$(measure "$direct" "${argv[@]}")
  s=$(measure "$shoal" "${argv[@]}")
  printf '%-28s %10s %10s %7.2f\n' "$c" "$d" "$s" "$(echo "$s $d" | awk '{print $1/$2}')"
done
echo "(log size: $bytes bytes; engine: $(DOCKER_HOST=$direct docker version -f '{{.Server.Version}}'); $(nproc) cores)"

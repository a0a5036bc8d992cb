#!/usr/bin/env bash
# Scale (issue 16, points 2 and 7): one shoal over simulated engines
# (internal/enginesim) whose fleet runs in child processes of the test
# binary, 24 running and 6 exited containers per engine.
#
# Usage: scripts/bench-scale.sh [--sizes "1000 10000"] [--per-fleet N] [--idle 30s]
#
# For each size it runs go test -run '^TestScale1000$' (sizes below 10,000)
# or '^TestScale10000$' (see test/scale/scale_test.go) and prints the report:
# time until every node is healthy and every container cached, run -d,
# info, ps (running) and ps -a p50/p99, shoal's RSS, its CPU while idle
# (from /proc/<pid>/stat over --idle), its open descriptors and goroutines.
# Each size takes under 10 minutes on 2 cores (1,000: about 2 minutes;
# 10,000: about 7). On a shared machine run it under a lock, e.g.
# flock /work/bench.lock scripts/bench-scale.sh; the load average is in
# the report, since the figures depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="1000 10000" per=2000 idle=30s
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --per-fleet) per=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    *) echo "usage: $0 [--sizes \"1000 10000\"] [--per-fleet N] [--idle 30s]" >&2; exit 2 ;;
  esac
done
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -c -o "$out/scale.test" ./test/scale/
for n in $sizes; do
  test=TestScale1000
  [ "$n" -ge 10000 ] && test=TestScale10000
  echo "## $n engines, $((n * 30)) containers ($test, $per engines per fleet process)"
  (cd test/scale && SHOAL_SCALE=1 SHOAL_SCALE_ENGINES=$n SHOAL_SCALE_PER_FLEET=$per SHOAL_SCALE_IDLE=$idle \
    SHOAL_SCALE_REPORT="$out/report-$n.txt" \
    timeout 600 "$out/scale.test" -test.count=1 -test.timeout 10m -test.run "^$test\$" >"$out/log-$n.txt" 2>&1) || {
    tail -40 "$out/log-$n.txt"; exit 1; }
  cat "$out/report-$n.txt"
done

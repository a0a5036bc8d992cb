#!/usr/bin/env bash
# bench-services.sh: issue 12's service figures on 3 real engines, for one
# target: swarm mode (the engines' own swarm: `docker swarm init` on node1,
# node2 and node3 join as workers) or shoal (`shoal manage --data-dir` over
# the three engines).
#
#   scripts/bench-services.sh swarm            # needs root, docker CLI, jq, curl
#   scripts/bench-services.sh shoal [--shoal ./bin/shoal]
#
# Figures, each the wall time from the command to the state being reached,
# polled every 100 ms through the target's API:
#   create   `service create --replicas 30` → 30 tasks running
#   scale    `service scale 30→90` → 90 running
#   update   `service update` of the 90 tasks, --update-parallelism 10,
#            --update-delay 0s, --stop-grace-period 1s (busybox `sleep` as
#            PID 1 ignores SIGTERM, so each stop takes the whole grace
#            period: the bound is 9 rounds × 1 s) → UpdateStatus "completed"
#            and 90 running
#   nodeloss SIGKILL of node3's dockerd and containerd (its containers keep
#            running, as after a crash) → 90 tasks running on node1 and node2
# The engines are dockerd in network namespaces (test/testbed through
# shoal-demo), the image is the testbed's busybox (no registry), so image
# pulls are not part of any figure. Everything is torn down on exit.
set -euo pipefail

target=${1:-}
shift || true
shoal_bin=./bin/shoal
while [ $# -gt 0 ]; do
	case $1 in
	--shoal) shoal_bin=$2; shift 2 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
case $target in
swarm | shoal) ;;
*) echo "usage: $0 swarm|shoal [--shoal ./bin/shoal]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (network namespaces, dockerd)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/bench-services.XXXXXX)
state=$work/state.json
export DOCKER_CONFIG=$work/dockercfg DOCKER_CLI_HINTS=false
mkdir -p "$DOCKER_CONFIG"
shoal_pid=

teardown() {
	set +e
	if [ -n "$shoal_pid" ]; then kill "$shoal_pid" 2>/dev/null; wait "$shoal_pid" 2>/dev/null; fi
	[ -x "$work/shoal-demo" ] && "$work/shoal-demo" down --state "$state" >/dev/null 2>&1
	rm -rf "$work"
}
trap teardown EXIT

log() { echo "$(date -u +%H:%M:%S) $*" >&2; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l | xargs printf '%.1f'; }

(cd "$repo" && GOTOOLCHAIN=local go build -o "$work/shoal-demo" ./test/testbed/cmd/shoal-demo)
"$work/shoal-demo" up --no-shoal --state "$state" >"$work/up.out" 2>"$work/up.err" || { cat "$work/up.err" >&2; exit 1; }
mapfile -t hosts < <(sed -n 's/.*(DOCKER_HOST=\(tcp:[^)]*\)).*/\1/p' "$work/up.out")
mapfile -t ips < <(sed -n 's/^# node[0-9]*  \([0-9.]*\) .*/\1/p' "$work/up.out")
[ ${#hosts[@]} = 3 ] || { echo "expected 3 engines, got: ${hosts[*]}" >&2; exit 1; }
log "engines: ${hosts[*]}"

if [ "$target" = swarm ]; then
	docker -H "${hosts[0]}" swarm init --advertise-addr "${ips[0]}" >/dev/null
	token=$(docker -H "${hosts[0]}" swarm join-token -q worker)
	for h in "${hosts[1]}" "${hosts[2]}"; do docker -H "$h" swarm join --token "$token" "${ips[0]}:2377" >/dev/null; done
	api=${hosts[0]}
else
	bin=$(cd "$(dirname "$shoal_bin")" && pwd)/$(basename "$shoal_bin")
	[ -x "$bin" ] || { echo "shoal binary $bin not found (go build -o bin/shoal ./cmd/shoal)" >&2; exit 1; }
	port=$((23000 + RANDOM % 2000))
	api=tcp://127.0.0.1:$port
	nodes=$(printf '%s,' "${hosts[@]#tcp://}")
	"$bin" manage --data-dir "$work/data" -H "$api" "nodes://${nodes%,}" >"$work/shoal.log" 2>&1 &
	shoal_pid=$!
	for _ in $(seq 100); do curl -sf "http://${api#tcp://}/_ping" >/dev/null && break; sleep 0.1; done
fi
url=http://${api#tcp://}
D() { docker -H "$api" "$@"; }
# nodes: wait until the target lists 3 ready nodes.
for _ in $(seq 300); do
	[ "$(curl -s "$url/nodes" | jq '[.[] | select(.Status.State=="ready")] | length' 2>/dev/null)" = 3 ] && break
	sleep 0.1
done
lost_id=$(curl -s "$url/nodes" | jq -r '.[] | select(.Description.Hostname=="node3") | .ID')
log "target $target at $api, node3 is $lost_id"

# running N [not-node]: the number of the service's tasks running (desired
# and observed), optionally not counting those on a node.
filter=$(printf '{"service":{"bench":true},"desired-state":{"running":true}}' | jq -sRr @uri)
running() {
	curl -s "$url/tasks?filters=$filter" | jq --arg n "${1:-}" '[.[] | select(.Status.State=="running" and .NodeID != $n)] | length'
}
# wait_for WHAT CMD: poll CMD (a shell test) every 100 ms, up to 10 minutes.
wait_for() {
	local what=$1; shift
	for _ in $(seq 6000); do
		if eval "$@"; then return 0; fi
		sleep 0.1
	done
	echo "timeout waiting for $what" >&2
	exit 1
}

declare -A fig
load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at the start: $load0"
t0=$(now)
D service create -d --quiet --no-resolve-image --name bench --replicas 30 --stop-grace-period 1s \
	--update-parallelism 10 --update-delay 0s busybox sleep 3600 >/dev/null
wait_for "30 running" '[ "$(running)" -ge 30 ]'
fig[create]=$(since "$t0")
log "create 30: ${fig[create]} s"

t0=$(now)
D service scale -d bench=90 >/dev/null
wait_for "90 running" '[ "$(running)" -ge 90 ]'
fig[scale]=$(since "$t0")
log "scale 30→90: ${fig[scale]} s"

t0=$(now)
D service update -d --quiet --no-resolve-image --env-add BENCH=2 bench >/dev/null
updated() {
	[ "$(curl -s "$url/services/bench" | jq -r '.UpdateStatus.State // ""')" = completed ] && [ "$(running)" -ge 90 ]
}
wait_for "update completed" updated
fig[update]=$(since "$t0")
log "rolling update of 90 at parallelism 10: ${fig[update]} s"

# Kill node3's dockerd and containerd (testbed.Kill does the same).
dpid=$(jq -r '.bed.engines[2].pid' "$state")
xroot=$(jq -r '.bed.engines[2].exec_root' "$state")
cpid=$(cat "$xroot/containerd/containerd.pid" 2>/dev/null || true)
on_lost=$(curl -s "$url/tasks?filters=$filter" | jq --arg n "$lost_id" '[.[] | select(.NodeID == $n)] | length')
t0=$(now)
kill -KILL "$dpid" ${cpid:+"$cpid"}
wait_for "90 running on node1 and node2" '[ "$(running "$lost_id")" -ge 90 ]'
fig[nodeloss]=$(since "$t0")
log "node loss ($on_lost tasks on node3) → replaced: ${fig[nodeloss]} s"

log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
cat <<EOF
<!-- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), load average at start $load0, at end $(cut -d' ' -f1-3 /proc/loadavg); dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,); command: scripts/bench-services.sh $target -->
| target | 30 replicas running after create | scale 30→90 | rolling update of 90, parallelism 10, grace 1 s | node loss → replaced ($on_lost tasks) |
|---|---|---|---|---|
| $target | ${fig[create]} s | ${fig[scale]} s | ${fig[update]} s | ${fig[nodeloss]} s |
EOF

#!/usr/bin/env bash
# bench-mesh-failover.sh: issue 13's routing-mesh failover time on 3 real
# engines in a built-in cluster (shoal init on node1, shoal join on node2
# and node3, each in its engine's namespace, default health checks): a
# service of 2 tasks (one on node2, one on node3) publishes 8080; a probe
# in the host opens a new connection to node1:8080 every 50 ms (1 s
# timeout); node3 "dies" (its link is cut: no packet in or out, as a
# machine powered off). The failover time is from the cut to the start of
# the last request that failed; after it every new connection reached the
# task on node2. Each round brings node3 back and waits for the service
# to be spread again.
#
#   scripts/bench-mesh-failover.sh [--shoal ./bin/shoal] [--rounds 3]   # needs root
set -euo pipefail

shoal_bin=./bin/shoal
rounds=3
while [ $# -gt 0 ]; do
	case $1 in
	--shoal) shoal_bin=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (network namespaces, dockerd)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$(dirname "$shoal_bin")" && pwd)/$(basename "$shoal_bin")
[ -x "$bin" ] || { echo "shoal binary $bin not found (go build -o bin/shoal ./cmd/shoal)" >&2; exit 1; }
work=$(mktemp -d /tmp/bench-mesh.XXXXXX)
state=$work/state.json
export DOCKER_CONFIG=$work/dockercfg DOCKER_CLI_HINTS=false
mkdir -p "$DOCKER_CONFIG"
pids=()
veths=()

keep_logs=${KEEP_LOGS:-} # a directory to copy the nodes' logs and the probes' lines to on exit
teardown() {
	set +e
	[ -n "$keep_logs" ] && mkdir -p "$keep_logs" && cp "$work"/node*.log "$work"/probe* "$keep_logs"/ 2>/dev/null
	for v in "${veths[@]}"; do ip link set "$v" up 2>/dev/null; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -x "$work/shoal-demo" ] && "$work/shoal-demo" down --state "$state" >/dev/null 2>&1
	rm -rf "$work"
}
trap teardown EXIT
log() { echo "$(date -u +%H:%M:%S) $*" >&2; }

(cd "$repo" && GOTOOLCHAIN=local go build -o "$work/shoal-demo" ./test/testbed/cmd/shoal-demo &&
	GOTOOLCHAIN=local go build -o "$work/meshprobe" ./test/overlay/meshprobe)
"$work/shoal-demo" up --no-shoal --engines 3 --state "$state" >"$work/up.out" 2>"$work/up.err" || { cat "$work/up.err" >&2; exit 1; }
ns=($(jq -r '.bed.engines[].netns' "$state"))
ips=($(jq -r '.bed.engines[].ip' "$state"))
socks=($(jq -r '.bed.engines[].socket' "$state"))
hosts=($(jq -r '.bed.engines[].hostname' "$state"))
veths=($(jq -r '.bed.engines[].host_veth' "$state"))
node() { # node I ARGS...: shoal in engine I's namespace
	local i=$1; shift
	ip netns exec "${ns[$i]}" "$bin" "$@" --data-dir "$work/node$i" --engine "unix://${socks[$i]}" --advertise-addr "${ips[$i]}" \
		-H tcp://0.0.0.0:2385 --insecure-no-tlsverify ${SHOAL_LOG_LEVEL:+--log-level $SHOAL_LOG_LEVEL} >"$work/node$i.log" 2>&1 &
	pids+=($!)
}
api=tcp://${ips[0]}:2385
D() { docker -H "$api" "$@"; }
ready() { D node ls --format '{{.Status}}' 2>/dev/null | grep -c Ready || true; }
node 0 init
for _ in $(seq 600); do token=$(D swarm join-token -q worker 2>/dev/null) && break; sleep 0.1; done
node 1 join --token "$token" "${ips[0]}:2377"
node 2 join --token "$token" "${ips[0]}:2377"
for _ in $(seq 600); do [ "$(ready)" = 3 ] && break; sleep 0.1; done
log "cluster up: $(D node ls --format '{{.Hostname}} {{.Status}}' | tr '\n' ' ')"

D service create -d --quiet --name web --replicas 2 --replicas-max-per-node 1 --constraint node.role==worker \
	-p 8080:80 busybox sh -c 'hostname > /tmp/index.html && exec httpd -f -p 80 -h /tmp' >/dev/null
spread() { # both tasks running, on node2 and node3, and both answering through node1
	for _ in $(seq 1200); do
		local on
		on=$(D service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' 2>/dev/null | grep -c ' Running' || true)
		if [ "$on" = 2 ]; then
			local seen
			seen=$("$work/meshprobe" -url "http://${ips[0]}:8080/" -every 20ms -for 1s | grep -c ' ok ' || true)
			[ "$seen" -ge 45 ] && return 0
		fi
		sleep 0.25
	done
	echo "the service did not spread over node2 and node3" >&2
	return 1
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
results=()
for r in $(seq "$rounds"); do
	spread
	"$work/meshprobe" -url "http://${ips[0]}:8080/" -every 50ms -timeout 1s -for 30s >"$work/probe$r" &
	probe=$!
	sleep 5
	cut=$(date +%s%3N)
	log "round $r: cutting node3 at $cut"
	ip link set "${veths[2]}" down
	wait "$probe"
	ip link set "${veths[2]}" up
	before=$(awk -v c="$cut" '$1 < c && $2 == "fail"' "$work/probe$r" | wc -l)
	failed=$(awk -v c="$cut" '$1 >= c && $2 == "fail"' "$work/probe$r" | wc -l)
	total=$(awk -v c="$cut" '$1 >= c' "$work/probe$r" | wc -l)
	last=$(awk -v c="$cut" '$1 >= c && $2 == "fail" { l = $1 } END { print (l ? l - c : 0) }' "$work/probe$r")
	results+=("$last")
	offsets=$(awk -v c="$cut" '$2 == "fail" { printf "%.1f ", ($1 - c) / 1000 }' "$work/probe$r")
	log "round $r: failover $last ms; $failed of $total new connections after the cut failed ($before before it); failures at s from the cut: $offsets"
	for _ in $(seq 600); do [ "$(ready)" = 3 ] && break; sleep 0.1; done
done
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "load average at the start: $load0, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mesh failover (cut to last failed new connection), ms: ${results[*]}; median $(printf '%s\n' "${results[@]}" | median)"

#!/usr/bin/env bash
# bench-overlay.sh: issue 13's overlay network figures on 2 real engines in
# a built-in cluster (shoal init on node1, shoal join on node2, each in its
# engine's network namespace): TCP throughput and ping round trips between
# a container on node1 and one on node2, over an overlay network, over an
# encrypted one (--opt encrypted: the agents' userspace tunnel) and over
# the nodes' own addresses (the same busybox containers, --network host).
#
#   scripts/bench-overlay.sh [--shoal ./bin/shoal] [--rounds 3]   # needs root
#
# Both figures come from test/overlay/ovbench (static, bind-mounted into
# busybox containers): throughput is 5 s of bulk TCP sends to a receiver
# that discards (best of --rounds); latency is the p50 of 5,000 64-byte
# request/response round trips on one connection (median of --rounds).
# Everything is torn down on exit.
set -euo pipefail

shoal_bin=./bin/shoal
rounds=3
keep_logs=${KEEP_LOGS:-} # a directory to copy the nodes' logs to on exit
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
work=$(mktemp -d /tmp/bench-overlay.XXXXXX)
state=$work/state.json
export DOCKER_CONFIG=$work/dockercfg DOCKER_CLI_HINTS=false
mkdir -p "$DOCKER_CONFIG"
pids=()

teardown() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -n "${keep_logs:-}" ] && mkdir -p "$keep_logs" && cp "$work"/node*.log "$keep_logs"/ 2>/dev/null
	[ -x "$work/shoal-demo" ] && "$work/shoal-demo" down --state "$state" >/dev/null 2>&1
	rm -rf "$work"
}
trap teardown EXIT
log() { echo "$(date -u +%H:%M:%S) $*" >&2; }

(cd "$repo" && GOTOOLCHAIN=local go build -o "$work/shoal-demo" ./test/testbed/cmd/shoal-demo &&
	CGO_ENABLED=0 GOTOOLCHAIN=local go build -o "$work/ovbench" ./test/overlay/ovbench)
"$work/shoal-demo" up --no-shoal --engines 2 --state "$state" >"$work/up.out" 2>"$work/up.err" || { cat "$work/up.err" >&2; exit 1; }
ns=($(jq -r '.bed.engines[].netns' "$state"))
ips=($(jq -r '.bed.engines[].ip' "$state"))
socks=($(jq -r '.bed.engines[].socket' "$state"))
node() { # node I ARGS...: shoal in engine I's namespace
	local i=$1; shift
	ip netns exec "${ns[$i]}" "$bin" "$@" --data-dir "$work/node$i" --engine "unix://${socks[$i]}" --advertise-addr "${ips[$i]}" \
		-H tcp://0.0.0.0:2385 --insecure-no-tlsverify >"$work/node$i.log" 2>&1 &
	pids+=($!)
}
api=tcp://${ips[0]}:2385
D() { docker -H "$api" "$@"; }
node 0 init
for _ in $(seq 600); do token=$(D swarm join-token -q worker 2>/dev/null) && break; sleep 0.1; done
node 1 join --token "$token" "${ips[0]}:2377"
for _ in $(seq 600); do [ "$(D node ls --format '{{.Status}}' 2>/dev/null | grep -c Ready)" = 2 ] && break; sleep 0.1; done
log "cluster up: $(D node ls --format '{{.Hostname}} {{.Status}}' | tr '\n' ' ')"

D network create -d overlay --attachable benchnet >/dev/null
D network create -d overlay --attachable --opt encrypted benchsec >/dev/null
far=$(D node ls --filter role=worker --format '{{.Hostname}}')
bench="-v $work/ovbench:/ovbench:ro"
# the servers on the worker, over the overlays and on the node's own address
D run -d $bench -e "constraint:node==$far" --network benchnet busybox /ovbench serve -addr :5001 >/dev/null
D run -d $bench -e "constraint:node==$far" --network host busybox /ovbench serve -addr :5002 >/dev/null
D run -d $bench -e "constraint:node==$far" --network benchsec busybox /ovbench serve -addr :5003 >/dev/null
netip() { D inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(D ps -q --filter network="$1" | head -1)"; }
overlay_ip=$(netip benchnet)
secure_ip=$(netip benchsec)
log "servers on $far: overlay $overlay_ip, encrypted $secure_ip, host ${ips[1]}"
cli() { D run --rm $bench -e "constraint:node!=$far" --network "$1" busybox /ovbench "${@:2}" 2>&1; }
best() { sort -n | tail -1; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
load0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A tp rt
for r in $(seq "$rounds"); do
	for net in benchnet benchsec host; do
		addr=$overlay_ip:5001
		[ $net = host ] && addr=${ips[1]}:5002
		[ $net = benchsec ] && addr=$secure_ip:5003
		tp[$net]+="$(cli $net tput -addr "$addr" -for 5s | awk '/^tput/ { print $2 }') "
		rt[$net]+="$(cli $net rr -addr "$addr" -n 5000 | awk '/^rr/ { print $3 }') "
	done
	log "round $r: throughput MB/s overlay ${tp[benchnet]}/ encrypted ${tp[benchsec]}/ host ${tp[host]}; rr p50 us overlay ${rt[benchnet]}/ encrypted ${rt[benchsec]}/ host ${rt[host]}"
done
t_ov=$(echo ${tp[benchnet]} | tr ' ' '\n' | best)
t_host=$(echo ${tp[host]} | tr ' ' '\n' | best)
l_ov=$(echo ${rt[benchnet]} | tr ' ' '\n' | median)
l_host=$(echo ${rt[host]} | tr ' ' '\n' | median)
t_sec=$(echo ${tp[benchsec]} | tr ' ' '\n' | best)
l_sec=$(echo ${rt[benchsec]} | tr ' ' '\n' | median)
echo "load average at the start: $load0, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'throughput (best of %s)  overlay %s MB/s  host %s MB/s  ratio %s\n' "$rounds" "$t_ov" "$t_host" "$(echo "$t_ov $t_host" | awk '{ printf "%.2f", $1 / $2 }')"
printf 'request rtt p50 (median of %s)  overlay %s us  host %s us  difference %+d us\n' "$rounds" "$l_ov" "$l_host" "$((l_ov - l_host))"
printf 'encrypted overlay (--opt encrypted)  throughput %s MB/s  ratio %s  rtt p50 %s us  difference %+d us\n' "$t_sec" "$(echo "$t_sec $t_host" | awk '{ printf "%.2f", $1 / $2 }')" "$l_sec" "$((l_sec - l_host))"

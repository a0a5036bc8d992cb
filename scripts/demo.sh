#!/bin/sh
# Start (or stop) the local shoal demo: 3 dockerd engines in network
# namespaces (node1..node3, zone=a/b/c) behind `shoal manage`.
#   scripts/demo.sh up      build bin/shoal, start everything, print DOCKER_HOST
#   scripts/demo.sh down    stop everything
#   scripts/demo.sh status
# Extra arguments go to shoal-demo (e.g. --no-shoal, --state FILE). Needs root.
set -eu
cd "$(dirname "$0")/.."
cmd=${1:-up}
[ $# -gt 0 ] && shift
mkdir -p bin
go build -o bin/shoal-demo ./test/testbed/cmd/shoal-demo
case "$cmd" in
up)
	no_shoal=false
	for a in "$@"; do [ "$a" = "--no-shoal" ] && no_shoal=true; done
	if [ "$no_shoal" = false ] && [ -d cmd/shoal ]; then
		go build -o bin/shoal ./cmd/shoal
	fi
	exec bin/shoal-demo up "$@"
	;;
down | status)
	exec bin/shoal-demo "$cmd" "$@"
	;;
*)
	echo "usage: $0 up|down|status [shoal-demo flags]" >&2
	exit 2
	;;
esac

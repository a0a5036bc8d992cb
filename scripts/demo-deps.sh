#!/usr/bin/env bash
# Installs what `make demo` needs on a bare Debian machine that has Go:
# Debian's docker.io (dockerd, containerd, runc and a docker CLI),
# busybox-static (the demo's image), iproute2 and iptables (the engines'
# network namespaces), and node/npm to build the web console. Packages
# already there are left alone; services are installed without being
# started (no dockerd in the host's namespace: the demo starts its own).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for p in docker.io busybox-static iproute2 iptables; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
command -v npm >/dev/null || need+=(nodejs npm)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "make demo: needs root to install ${need[*]} (and to run engines)" >&2
  exit 1
fi
echo "make demo: installing ${need[*]}"
apt-get update -qq
own_policy=false
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=true
fi
trap '$own_policy && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq "${need[@]}" >/dev/null

#!/usr/bin/env bash
# What the production topology needs on a machine without a Docker engine: Debian's
# podman (runc, netavark and aardvark-dns for bridge networks with service-name DNS,
# catatonit for `init: true`, iptables for netavark), mmdebstrap (the Debian root
# filesystem every local image builds on) and docker-compose (speaks to podman's Docker
# API). Only what is missing is installed. Also raises vm.max_map_count to the 262144
# Elastic asks of every host that runs its containers.
set -euo pipefail

if docker info >/dev/null 2>&1 && [ "${MYAISERV_ENGINE:-}" != podman ]; then
  exit 0  # a Docker engine: nothing to add
fi
need=()
for pkg in podman runc netavark aardvark-dns catatonit iptables mmdebstrap docker-compose; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "compose-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if [ "$(cat /proc/sys/vm/max_map_count)" -lt 262144 ]; then
  "${SUDO[@]}" sysctl -q -w vm.max_map_count=262144
fi

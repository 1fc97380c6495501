#!/usr/bin/env bash
# Installs the Debian packages the cluster, the tests and the images need, once.
# nftables: tests/support/netcut.py cuts the operator off the API server (tests/integration/test_network_cut.py).
set -euo pipefail
need=(openssl iproute2 nftables)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$here/install-monitoring.sh" ] && "$here/install-monitoring.sh"
exit 0

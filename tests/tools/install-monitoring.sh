#!/usr/bin/env bash
# Installs the real Prometheus and Alertmanager (Debian packages) that the
# monitoring and alerting tests run against: prometheus, promtool,
# alertmanager and amtool.
#
# Idempotent: does nothing when all four binaries are already on PATH.
# The machine has no systemd; the packages' maintainer scripts try to start
# their services, so a temporary policy-rc.d forbids that, and any daemon
# that still came up during the install is stopped again. The script exits 0
# as soon as the binaries are usable, even if a service failed to start.
set -euo pipefail

need=(promtool prometheus alertmanager amtool)

# Debian ships Alertmanager as /usr/bin/prometheus-alertmanager; provide the
# upstream name `alertmanager` as a symlink next to it on PATH.
link_alertmanager() {
  if ! command -v alertmanager >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1; then
    $SUDO ln -sf "$(command -v prometheus-alertmanager)" /usr/local/bin/alertmanager
  fi
}

have_all() {
  local b
  for b in "${need[@]}"; do
    command -v "$b" >/dev/null 2>&1 || return 1
  done
  return 0
}

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

link_alertmanager
if have_all; then
  echo "install-monitoring: promtool, prometheus, alertmanager and amtool already present"
  exit 0
fi

# Remember which daemons were running before we started, so that we only
# stop what the install itself started.
pidfile_pids() {
  local f
  for f in /run/prometheus/prometheus.pid /run/prometheus/prometheus-alertmanager.pid \
           /run/prometheus/alertmanager.pid /run/prometheus.pid; do
    [ -s "$f" ] && cat "$f" 2>/dev/null
  done
  return 0
}
before="$(pidfile_pids | sort -u | tr '\n' ' ')"

# Forbid service starts while the packages are configured (no systemd here;
# invoke-rc.d honours policy-rc.d with exit code 101 = "action forbidden").
policy=/usr/sbin/policy-rc.d
policy_created=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 0755 "$policy"
  policy_created=1
fi
cleanup() {
  if [ "$policy_created" = 1 ]; then
    $SUDO rm -f "$policy"
  fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
lists=(/var/lib/apt/lists/*_Packages)
if [ ! -e "${lists[0]}" ]; then
  $SUDO apt-get update
fi
# A failing service start in a postinst can make apt-get exit non-zero even
# though the binaries were unpacked; judge by the binaries below.
install() {
  $SUDO apt-get install -y --no-install-recommends prometheus prometheus-alertmanager
}
if ! install; then
  # Stale package lists (a 404 for an old version) or a failed postinst:
  # refresh the lists, try again, and finish any half-done configuration.
  echo "install-monitoring: apt-get install reported an error; retrying after apt-get update" >&2
  $SUDO apt-get update || true
  install || $SUDO dpkg --configure -a || true
fi

# Stop any daemon the install started despite policy-rc.d.
for pid in $(pidfile_pids); do
  case " $before " in
    *" $pid "*) continue ;;
  esac
  if kill -0 "$pid" 2>/dev/null; then
    echo "install-monitoring: stopping daemon $pid started by the package install"
    $SUDO kill "$pid" || true
  fi
done

link_alertmanager
if have_all; then
  for b in "${need[@]}"; do
    printf 'install-monitoring: %s -> %s\n' "$b" "$(command -v "$b")"
  done
  exit 0
fi
echo "install-monitoring: binaries still missing after install" >&2
exit 1

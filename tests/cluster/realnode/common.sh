# Shared by realnode/up.sh and realnode/down.sh: names and paths of the real node.
# shellcheck shell=bash
rn_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rn_cluster=$(cd "$rn_here/.." && pwd)
rn_root=$(cd "$rn_here/../../.." && pwd)
dir=${CLUSTER_DIR:-$rn_root/.cluster}
api_port=${HERALD_APISERVER_PORT:-16443}
# Configs, certs, logs and pids next to the rest of the cluster's state.
rn=$dir/realnode
# Runtime state outside the work tree: the kubelet mounts tmpfs volumes under its root
# dir, and `rm -rf .cluster` must never walk into a live mount.
var=${HERALD_NODE_VAR:-/var/lib/herald-node}
run=${HERALD_NODE_RUN:-/run/herald-node}
containerd_sock=$run/containerd/containerd.sock
kubelet_root=$var/kubelet
pod_cidr=${HERALD_POD_CIDR:-10.88.0.0/16}
bridge=${HERALD_CNI_BRIDGE:-herald0}
cni_net=herald
# The apiserver reaches the kubelet by the node's Hostname address first, so the node is
# named after this host (its name resolves here, /etc/hosts); override if it does not.
node_name=${HERALD_REAL_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}

rlog() { printf '>> real node: %s\n' "$*" >&2; }

bin=$("$rn_cluster/build-tools.sh" paths)
export PATH="$bin:$PATH"
export KUBECONFIG="$dir/kubeconfig"

host_ip() { ip -4 route get 1.1.1.1 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="src") {print $(i+1); exit}}'; }

pid_alive() { # name: its pid file names a live process that is that program
  local f=$rn/pids/$1.pid
  [ -f "$f" ] && tr '\0' ' ' < "/proc/$(cat "$f")/cmdline" 2>/dev/null | grep -q -- "$1"
}

stop_pid() { # name [seconds]: TERM the process group, KILL after the grace period
  local f=$rn/pids/$1.pid secs=${2:-15} pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  # A pid file that outlived its process (a reboot) may name someone else's process now.
  if ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1"; then rm -f "$f"; return 0; fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
}

ctr_() { ctr --address "$containerd_sock" -n k8s.io "$@"; }

#!/usr/bin/env bash
# Removes the real node: the kubelet and kube-proxy, every container containerd runs for
# it, containerd, the kubelet's mounts, the pods' network namespaces, the CNI bridge,
# the iptables rules kube-proxy, the kubelet and CNI added, and the Node object. Restores
# the sysctls that up.sh and the kubelet changed. Images stay in containerd's store
# (under $HERALD_NODE_VAR); `down.sh --purge` removes that too.
set -uo pipefail
. "$(dirname "$0")/common.sh"

[ -d "$rn" ] || [ -d "$run" ] || { [ "${1:-}" = --purge ] && rm -rf "$var"; exit 0; }
rlog "stopping"
stop_pid kube-proxy 10
stop_pid kubelet 15

# The pods' containers outlive containerd (each has its own shim): end them first.
if [ -S "$containerd_sock" ] && ctr --address "$containerd_sock" version >/dev/null 2>&1; then
  for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done
  deadline=$((SECONDS + 20))
  while [ -n "$(ctr_ tasks ls 2>/dev/null | awk 'NR>1 && $3!="STOPPED"')" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete "$c" >/dev/null 2>&1 || true; done
  for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
fi
stop_pid containerd 20
# Shims whose containerd is gone (e.g. after a crash): end them by their -address flag.
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $containerd_sock" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done

# Mounts: the kubelet's volumes, containerd's rootfs and shm mounts, the sandboxes' netns.
findmnt -rn -o TARGET | grep -E "^($kubelet_root|$var/containerd|$run)(/|$)" | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
done
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-'); do ip netns delete "$ns" 2>/dev/null || true; done
ip link delete "$bridge" 2>/dev/null || true

# The cgroups the kubelet (/kubepods, QoS) and containerd (/k8s.io) made, in every
# hierarchy, deepest first; a cgroup with a process left in it stays (rmdir says busy).
for h in /sys/fs/cgroup/*/; do
  for top in kubepods k8s.io; do
    [ -d "$h$top" ] && find "$h$top" -depth -type d -exec rmdir {} + 2>/dev/null
  done
done

# iptables: every chain named KUBE-* (kube-proxy, the kubelet) or CNI-* (bridge ipMasq,
# portmap) and every rule that jumps to one; the rest of each table is left as it was.
for t in nat filter mangle; do
  if iptables-save -t "$t" 2>/dev/null | grep -q -E '(KUBE-|CNI-)'; then
    iptables-save -t "$t" | grep -v -E '(KUBE-|CNI-)' | iptables-restore -T "$t" 2>/dev/null \
      || rlog "could not clean the $t table"
  fi
done
for t in nat filter mangle; do
  if ip6tables-save -t "$t" 2>/dev/null | grep -q -E '(KUBE-|CNI-)'; then
    ip6tables-save -t "$t" | grep -v -E '(KUBE-|CNI-)' | ip6tables-restore -T "$t" 2>/dev/null || true
  fi
done

# Sysctls back to what they were before up.sh.
if [ -f "$rn/sysctl.orig" ]; then
  while IFS='=' read -r k v; do [ -n "$k" ] && sysctl -q -w "$k=$v" >/dev/null 2>&1 || true; done < "$rn/sysctl.orig"
fi

# The Node object, while the API server is still there.
if [ -f "$dir/kubeconfig" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
  kubectl delete node "$node_name" --ignore-not-found --wait=false >/dev/null 2>&1 || true
fi
rm -rf "$run" "$kubelet_root" "$var/cni" "$rn"
[ "${1:-}" = --purge ] && rm -rf "$var"
rlog "removed"
exit 0

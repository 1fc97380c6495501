#!/usr/bin/env bash
# Adds a real node to the local cluster: containerd (Debian's) as the CRI, runc, a CNI
# bridge network from Debian's containernetworking-plugins, the kubelet and kube-proxy
# of the pinned Kubernetes release. Every kubelet setting and why: docs/real-node.md.
#
#   realnode/up.sh     start it (or reuse it), load Herald's images, wait for Ready
#   realnode/down.sh   remove it (cluster.sh down calls it)
#
# The node is labelled herald.dev/node=real and tainted herald.dev/real-node=true:NoSchedule:
# ordinary pods keep landing on the kwok nodes; a pod that wants this node selects the
# label and tolerates the taint. HERALD_REAL_NODE_IMAGES=0 skips building Herald's images.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || { rlog "needs root (containerd, mounts, iptables)"; exit 1; }

state=$rn
# shellcheck source=../procs.sh
. "$(dirname "$0")/../procs.sh"

node_ready() {
  [ "$(kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

packages() {
  local p missing=()
  for p in containerd runc containernetworking-plugins iptables conntrack buildah; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  rlog "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

mkcert() { # name CN O [subjectAltName]
  local name=$1 cn=$2 o=$3 san=${4:-} pki=$dir/pki
  [ -f "$pki/$name.crt" ] && return 0
  local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o$subj"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}

kubeconfig() { # file cert-name
  cat > "$1" <<EOC
apiVersion: v1
kind: Config
clusters:
- name: herald-local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $dir/pki/$2.crt
    client-key: $dir/pki/$2.key
contexts:
- name: herald-local
  context: {cluster: herald-local, user: $2}
current-context: herald-local
EOC
}

sysctls() {
  # Remember what was there before, once, so down.sh can put it back. The kubelet itself
  # sets the vm./kernel. ones (protectKernelDefaults: false), see docs/real-node.md.
  if [ ! -f "$rn/sysctl.orig" ]; then
    local k
    for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom \
        kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
      echo "$k=$(sysctl -n "$k" 2>/dev/null || true)"
    done > "$rn/sysctl.orig"
  fi
  # Pods reach the world through the host (ipMasq); Service traffic between pods on the
  # bridge must pass through iptables for kube-proxy's DNAT.
  sysctl -q -w net.ipv4.ip_forward=1
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1 2>/dev/null || modprobe br_netfilter 2>/dev/null || true
}

calm_kernel() {
  # At start the kubelet sets vm.overcommit_memory=1, kernel.panic=10 and
  # kernel.panic_on_oops=1 (protectKernelDefaults: true would refuse to start instead).
  # The last two only decide what an oops does to this shared VM, nothing pods or the
  # kubelet rely on, so they go back to what they were; down.sh restores the rest.
  local k v
  for k in kernel.panic kernel.panic_on_oops; do
    v=$(sed -n "s/^$k=//p" "$rn/sysctl.orig")
    [ -n "$v" ] && sysctl -q -w "$k=$v" >/dev/null 2>&1 || true
  done
}

containerd_config() {
  mkdir -p "$var/containerd" "$run/containerd" "$rn/cni"
  cat > "$rn/containerd.toml" <<EOC
# containerd for the real node (written by tests/cluster/realnode/up.sh)
version = 2
root = "$var/containerd"
state = "$run/containerd"
# Snapshotters this host has no use for; they only log errors at start.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$containerd_sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$var/containerd-opt"

[plugins."io.containerd.grpc.v1.cri"]
  # No registry: the sandbox image is built locally (images/pause) and imported.
  sandbox_image = "localhost/herald-pause:3.10"
  enable_selinux = false
  # This VM grants no process CAP_SYS_RESOURCE, so nobody may lower an oom_score_adj;
  # the kubelet asks -998 for every sandbox and runc fails with "nsexec: failed to update
  # /proc/self/oom_score_adj: Permission denied". Clamp to containerd's own score (0).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd on these hosts: runc manages cgroupfs directly (= kubelet cgroupDriver).
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$rn/cni"
    max_conf_num = 1
EOC
}

cni_config() {
  local gw; gw=$(python3 -c "import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))" "$pod_cidr")
  cat > "$rn/cni/10-$cni_net.conflist" <<EOC
{
  "cniVersion": "1.0.0",
  "name": "$cni_net",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$gw"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$var/cni/networks"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOC
}

kubelet_config() {
  # The kubelet's QoS cgroups (/kubepods/...) work on this host; HERALD_KUBELET_QOS=0 is
  # the fallback for a host where they do not: pods then sit in containerd's /k8s.io/<id>.
  local qos="cgroupsPerQOS: true
enforceNodeAllocatable: [pods]"
  [ "${HERALD_KUBELET_QOS:-1}" = 0 ] && qos="cgroupsPerQOS: false
enforceNodeAllocatable: []"
  cat > "$rn/kubelet.yaml" <<EOC
# The real node's kubelet (written by tests/cluster/realnode/up.sh). Each setting and
# its reason: docs/real-node.md.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$containerd_sock
# Authentication: client certificates signed by the cluster CA (the apiserver's
# kubelet-client cert), bearer tokens through TokenReview; never anonymous.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $dir/pki/kubelet-$node_name.crt
tlsPrivateKeyFile: $dir/pki/kubelet-$node_name.key
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# cgroup v1 (hybrid layout), and no systemd: the kubelet writes cgroupfs itself.
cgroupDriver: cgroupfs
failCgroupV1: false
$qos
# This VM has no swap today; if one of its kind has, the node still starts (and pods
# get no swap: memorySwap's default behaviour NoSwap).
failSwapOn: false
memorySwap: {}
# No cluster DNS in the local cluster: pods get the host's resolv.conf.
clusterDomain: cluster.local
clusterDNS: []
resolvConf: /etc/resolv.conf
# Images come from local archives, not a registry: never garbage-collect them, and do
# not evict pods over a disk this VM shares with everything else.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
# The kubelet may adjust the kernel tunables it wants; down.sh restores them.
protectKernelDefaults: false
maxPods: 50
serializeImagePulls: false
registerNode: true
# Ordinary pods stay on the kwok nodes; the real node's pods tolerate this.
registerWithTaints:
- {key: herald.dev/real-node, value: "true", effect: NoSchedule}
rotateCertificates: false
serverTLSBootstrap: false
staticPodPath: ""
podPidsLimit: -1
containerLogMaxSize: 10Mi
containerLogMaxFiles: 2
EOC
}

start_containerd() {
  if pid_alive containerd && ctr --address "$containerd_sock" version >/dev/null 2>&1; then return 0; fi
  stop_pid containerd 5
  rlog "starting containerd ($containerd_sock)"
  containerd_config
  start containerd containerd --config "$rn/containerd.toml"
  wait_for "containerd" 60 ctr --address "$containerd_sock" version
}

start_kubelet() {
  if pid_alive kubelet; then return 0; fi
  local ip=$1
  rlog "starting the kubelet as node $node_name"
  mkdir -p "$kubelet_root"
  kubelet_config
  start kubelet kubelet \
    --config="$rn/kubelet.yaml" \
    --kubeconfig="$rn/kubelet.kubeconfig" \
    --root-dir="$kubelet_root" \
    --hostname-override="$node_name" \
    --node-ip="$ip" \
    --node-labels=herald.dev/node=real,type=real \
    --v="${HERALD_KUBELET_V:-1}"
}

start_kube_proxy() {
  if pid_alive kube-proxy; then return 0; fi
  rlog "starting kube-proxy (iptables mode)"
  cat > "$rn/kube-proxy.yaml" <<EOC
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $rn/kube-proxy.kubeconfig}
hostnameOverride: $node_name
clusterCIDR: $pod_cidr
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack table size and timeouts alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
# Do not turn on route_localnet for NodePorts on 127.0.0.1.
iptables: {localhostNodePorts: false}
EOC
  start kube-proxy kube-proxy --config="$rn/kube-proxy.yaml" --v=1
}

main() {
  "$rn_cluster/cluster.sh" status || NODE= "$rn_cluster/cluster.sh" up >/dev/null
  mkdir -p "$rn/logs" "$rn/pids"
  if pid_alive containerd && pid_alive kubelet && pid_alive kube-proxy && node_ready; then
    [ "${HERALD_REAL_NODE_IMAGES:-1}" = 0 ] || HERALD_CONTAINERD_SOCK=$containerd_sock "$rn_root/images/build.sh" load
    rlog "reusing node $node_name (Ready)"
    return 0
  fi
  local started=$SECONDS ip; ip=$(host_ip)
  packages
  sysctls
  mkcert "kubelet-$node_name" "system:node:$node_name" system:nodes "DNS:$node_name,IP:$ip,IP:127.0.0.1"
  mkcert kube-proxy system:kube-proxy ""
  kubeconfig "$rn/kubelet.kubeconfig" "kubelet-$node_name"
  kubeconfig "$rn/kube-proxy.kubeconfig" kube-proxy
  start_containerd
  # The sandbox image first: without it no pod starts. Herald's images after.
  HERALD_CONTAINERD_SOCK=$containerd_sock "$rn_root/images/build.sh" pause-load
  cni_config
  start_kubelet "$ip"
  start_kube_proxy
  wait_for "the kubelet's healthz" 60 curl -fsS http://127.0.0.1:10248/healthz
  calm_kernel
  wait_for "node $node_name Ready" 120 node_ready
  if [ "${HERALD_REAL_NODE_IMAGES:-1}" != 0 ]; then
    HERALD_CONTAINERD_SOCK=$containerd_sock "$rn_root/images/build.sh" load
  fi
  rlog "node $node_name Ready after $((SECONDS - started))s (label herald.dev/node=real, taint herald.dev/real-node=true:NoSchedule)"
}

main "$@"

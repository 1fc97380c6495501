#!/usr/bin/env bash
# A real local Kubernetes cluster without Docker: etcd, kube-apiserver (RBAC on),
# kube-controller-manager and kube-scheduler as host processes, and kwok driving
# fake nodes. Everything lives in $CLUSTER_DIR (default .cluster/).
#
#   cluster.sh up      start it, or reuse a running one; prints the kubeconfig path
#   cluster.sh down    stop it and remove its state
#   cluster.sh status  exit 0 when the API server answers
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
api_port=${HERALD_APISERVER_PORT:-16443}
etcd_port=${HERALD_ETCD_PORT:-12379}
kwok_nodes=${HERALD_KWOK_NODES:-2}
service_cidr=10.96.0.0/16

log() { printf '>> %s\n' "$*" >&2; }
state=$dir
# shellcheck source=procs.sh
. "$here/procs.sh"

# "up" builds what is missing; the other commands only need the paths.
bin=$("$here/build-tools.sh" "$([ "${1:-}" = up ] && echo all || echo paths)")
export PATH="$bin:$PATH"
export KUBECONFIG="$dir/kubeconfig"

api_ready() {
  [ -f "$dir/kubeconfig" ] && kubectl get --raw /readyz >/dev/null 2>&1
}

host_ip() { ip -4 route get 1.1.1.1 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="src") {print $(i+1); exit}}'; }

mkcert() { # name CN O [subjectAltName]
  local name=$1 cn=$2 o=$3 san=${4:-}
  local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o$subj"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/pki/$name.key" -subj "$subj" \
    -out "$dir/pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$dir/pki/$name.ext"
  openssl x509 -req -in "$dir/pki/$name.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$dir/pki/$name.ext" -out "$dir/pki/$name.crt" 2>/dev/null
}

kubeconfig() { # file cert-name
  local file=$1 cert=$2
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: herald-local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: $cert
  user:
    client-certificate: $dir/pki/$cert.crt
    client-key: $dir/pki/$cert.key
contexts:
- name: herald-local
  context: {cluster: herald-local, user: $cert}
current-context: herald-local
EOF
}

pki() {
  mkdir -p "$dir/pki"
  [ -f "$dir/pki/ca.crt" ] && return 0
  log "generating PKI"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$dir/pki/ca.key" -days 3650 \
    -subj "/CN=herald-local-ca" -out "$dir/pki/ca.crt" 2>/dev/null
  local ip; ip=$(host_ip)
  mkcert apiserver kube-apiserver "" \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1${ip:+,IP:$ip}"
  mkcert admin kubernetes-admin system:masters
  mkcert controller-manager system:kube-controller-manager ""
  mkcert scheduler system:kube-scheduler ""
  mkcert kwok kwok-controller system:masters
  mkcert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  openssl genrsa -out "$dir/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub" 2>/dev/null
  kubeconfig "$dir/kubeconfig" admin
  kubeconfig "$dir/controller-manager.kubeconfig" controller-manager
  kubeconfig "$dir/scheduler.kubeconfig" scheduler
  kubeconfig "$dir/kwok.kubeconfig" kwok
}


up() {
  if api_ready; then
    log "reusing the running cluster ($dir/kubeconfig)"
    echo "$dir/kubeconfig"
    return 0
  fi
  # A stale state dir (e.g. after a reboot) is cleaned first.
  [ -d "$dir/pids" ] && down_processes
  mkdir -p "$dir/logs" "$dir/pids"
  pki
  local ip; ip=$(host_ip)

  log "starting etcd on 127.0.0.1:$etcd_port"
  start etcd etcd --name herald --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-cluster "herald=http://127.0.0.1:$((etcd_port + 1))" \
    --unsafe-no-fsync --quota-backend-bytes=4294967296 --log-level=warn

  log "starting kube-apiserver on :$api_port"
  start kube-apiserver kube-apiserver \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=0.0.0.0 --secure-port="$api_port" ${ip:+--advertise-address="$ip"} \
    --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" \
    --kubelet-client-certificate="$dir/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$dir/pki/apiserver-kubelet-client.key" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/pki/sa.pub" \
    --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-cluster-ip-range="$service_cidr" \
    --allow-privileged=true --profiling=false \
    --max-requests-inflight=800 --max-mutating-requests-inflight=400
  wait_for "kube-apiserver" 90 kubectl get --raw /readyz

  log "starting kube-controller-manager, kube-scheduler and kwok"
  start kube-controller-manager kube-controller-manager \
    --kubeconfig="$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$dir/pki/sa.key" --root-ca-file="$dir/pki/ca.crt" \
    --cluster-signing-cert-file="$dir/pki/ca.crt" --cluster-signing-key-file="$dir/pki/ca.key" \
    --service-cluster-ip-range="$service_cidr" \
    --leader-elect=false --secure-port=0 --profiling=false \
    --kube-api-qps=200 --kube-api-burst=400 --concurrent-job-syncs=20 \
    --concurrent-gc-syncs=40
  start kube-scheduler kube-scheduler \
    --kubeconfig="$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --leader-elect=false --secure-port=0 --profiling=false \
    --kube-api-qps=200 --kube-api-burst=400
  start kwok kwok --kubeconfig="$dir/kwok.kubeconfig" \
    --config="$here/kwok/pod-stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=10.244.0.1/16 --node-ip=10.250.0.1 --server-address=

  for i in $(seq 0 $((kwok_nodes - 1))); do
    sed "s/NAME/kwok-node-$i/g" "$here/kwok/node.yaml" | kubectl apply -f - >/dev/null
  done
  wait_for "kwok nodes Ready" 60 kubectl wait --for=condition=Ready node -l type=kwok --timeout=1s
  wait_for "the default ServiceAccount" 60 kubectl get serviceaccount default -n default
  log "cluster ready; KUBECONFIG=$dir/kubeconfig"
  echo "$dir/kubeconfig"
}

down_processes() {
  local f pid
  for f in "$dir"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$dir"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

down() {
  down_processes
  rm -rf "$dir"
  log "cluster removed"
}

# --- real node (NODE=real): tests/cluster/realnode/, docs/real-node.md -----------------
# With NODE unset nothing below changes what up does; down also removes a real node
# if one was started (its state lives in $dir/realnode and /var/lib/herald-node).
real_node_up() { if [ "${NODE:-}" = real ]; then "$here/realnode/up.sh" >&2; fi; }
real_node_down() { if [ -d "$dir/realnode" ]; then "$here/realnode/down.sh" >&2; fi; }
# --------------------------------------------------------------------------------------

# Two `up` at once (two shells, two test runs) would each start a control plane's worth of
# controllers against one etcd: Jobs then get two pods. One at a time, under a lock.
with_lock() { mkdir -p "$dir"; exec 9>"$dir/.lock"; flock -w 1800 9; "$@"; flock -u 9; exec 9>&-; }

case "${1:-}" in
  up) with_lock up; real_node_up ;;
  down) real_node_down; down ;;
  status) api_ready ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

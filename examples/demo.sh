#!/usr/bin/env bash
# make demo-kwok: Herald end to end on the local cluster's kwok nodes (the cluster is already up):
# the operator on the host, simulated adapter pods. `make demo` is the real path (examples/demo-real.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=${KUBECONFIG:-$root/.cluster/kubeconfig}
ns=herald-demo-kwok
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing the CRDs"
kubectl apply --server-side --force-conflicts -f "$root/crds/"
kubectl wait --for=condition=Established crd/publications.herald.dev crd/platformadapters.herald.dev --timeout=60s
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
# A second run keeps everything else in the namespace; only the demo's own Publication starts over,
# so that its first attempt gets the 503 again.
kubectl delete -n "$ns" publication/hello-herald --ignore-not-found --wait=true

say "Starting Herald (log: .cluster/demo-operator.log)"
HERALD_METRICS_PORT=${HERALD_METRICS_PORT:-18080} "$root/.venv/bin/python" -m herald -n "$ns" --health-port 18081 \
  > "$root/.cluster/demo-operator.log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.2; done

say "Applying examples/demo/demo.yaml: the first attempt will hit an HTTP 503, the retry succeeds"
kubectl apply -n "$ns" -f "$root/examples/demo/demo.yaml"
kubectl wait -n "$ns" --for=jsonpath='{.status.phase}'=Retrying publication/hello-herald --timeout=60s
kubectl get -n "$ns" publication/hello-herald -o jsonpath='{.status.conditions[?(@.type=="Retrying")].message}{"\n"}'
kubectl wait -n "$ns" --for=condition=Published publication/hello-herald --timeout=60s

say "kubectl get publications,platformadapters,jobs"
kubectl get -n "$ns" publications,platformadapters,jobs
say "The post"
kubectl get -n "$ns" publication/hello-herald -o jsonpath='{range .status.targets[*]}{.adapter}: {.phase} after {.attempts} attempts, post {.postId} at {.url}{"\n"}{end}'
say "Events"
kubectl get events -n "$ns" --field-selector involvedObject.kind=Publication --sort-by=.lastTimestamp
say "Metrics (herald_attempts_total)"
curl -s "http://127.0.0.1:${HERALD_METRICS_PORT:-18080}/metrics" | grep '^herald_attempts_total' | grep -v ' 0.0$' || true

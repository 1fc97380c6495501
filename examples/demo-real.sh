#!/usr/bin/env bash
# make demo: Herald end to end on the local cluster's real node. `make demo` has already
# brought the cluster up with the real node (make cluster-up NODE=real) and built and
# loaded the images (make images); this script
#   1. starts a fake Mastodon on this host (python -m tests.platforms), where the pods
#      reach it at the bridge gateway 10.88.0.1;
#   2. installs Herald with Helm (helm/herald, examples/demo-real/values.yaml): the operator
#      runs as a pod on the real node;
#   3. applies examples/demo-real/ (Secret, PlatformAdapter, Publication);
#   4. waits for the Publication to be Published, then shows the post the fake Mastodon
#      received and `kubectl get publications`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=${KUBECONFIG:-$root/.cluster/kubeconfig}
ns=${HERALD_DEMO_NAMESPACE:-herald-demo}
release=herald
gateway=${HERALD_POD_GATEWAY:-10.88.0.1}
port=${HERALD_DEMO_PORT:-18090}
log=$root/.cluster/demo-mastodon.log
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Poll (with a deadline) until a command succeeds.
until_ok() { local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "timed out waiting for: $*" >&2; return 1; fi
    sleep 0.2
  done; }

node=$(kubectl get nodes -l herald.dev/node=real -o jsonpath='{.items[0].metadata.name}')
[ -n "$node" ] || { echo "no node labelled herald.dev/node=real: run 'make demo' (or 'make cluster-up NODE=real')" >&2; exit 1; }

say "Starting a fake Mastodon on this host, port $port (log: .cluster/demo-mastodon.log)"
cd "$root"
"$root/.venv/bin/python" -m tests.platforms --platform mastodon --host 0.0.0.0 --port "$port" \
  --public-url "http://$gateway:$port" > "$log" 2>&1 &
fake=$!
trap 'kill $fake 2>/dev/null; wait $fake 2>/dev/null || true' EXIT
until_ok 10 curl -sf "http://127.0.0.1:$port/_herald/posts" || { cat "$log" >&2; exit 1; }
head -n1 "$log"

say "Installing Herald with Helm: release $release in namespace $ns, the operator on node $node"
if helm status "$release" -n "$ns" >/dev/null 2>&1; then helm uninstall "$release" -n "$ns" --wait >/dev/null; fi
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$ns"
# Helm installs crds/ only when they are missing; apply them so an older copy is updated.
kubectl apply --server-side --force-conflicts -f "$root/helm/herald/crds/" >/dev/null
helm install "$release" "$root/helm/herald" -n "$ns" -f "$root/examples/demo-real/values.yaml" | sed '/^NOTES:/,$d'
kubectl -n "$ns" rollout status "deployment/$release" --timeout=180s
kubectl -n "$ns" get pods -o wide

say "Applying examples/demo-real/ (Secret, PlatformAdapter -> http://$gateway:$port, Publication)"
sed "s#http://10.88.0.1:18090#http://$gateway:$port#" "$root/examples/demo-real/adapter.yaml" | kubectl apply -n "$ns" -f -
kubectl apply -n "$ns" -f "$root/examples/demo-real/publication.yaml"
kubectl wait -n "$ns" --for=condition=Published publication/hello-herald --timeout=180s

say "The post the fake Mastodon received (GET /_herald/posts)"
curl -s "http://127.0.0.1:$port/_herald/posts" | "$root/.venv/bin/python" -m json.tool

say "kubectl get publications"
kubectl get -n "$ns" publications
say "The attempt: its Job and pod (on node $node)"
# The result is read from the pod's termination message; the Job's Complete comes a moment later.
kubectl wait -n "$ns" --for=condition=Complete job -l herald.dev/publication=hello-herald --timeout=60s >/dev/null
kubectl get -n "$ns" jobs,pods -l herald.dev/publication=hello-herald -o wide
kubectl get -n "$ns" publication/hello-herald -o jsonpath='{range .status.targets[*]}{.adapter}: {.phase} after {.attempts} attempt(s), post {.postId} at {.url}{"\n"}{end}'
say "Events"
kubectl get events -n "$ns" --field-selector involvedObject.kind=Publication --sort-by=.lastTimestamp

say "Herald stays installed (the fake Mastodon stops now). Remove it with:"
echo "  helm uninstall $release -n $ns && kubectl delete namespace $ns"

#!/usr/bin/env bash
# make demo: Herald end to end on the local cluster's real node. `make demo` has already
# brought the cluster up with the real node (make cluster-up NODE=real) and built and
# loaded the images (make images); this script
#   1. starts a fake Mastodon on this host (python -m tests.platforms), where the pods
#      reach it at the bridge gateway 10.88.0.1. It keeps running after the script ends
#      (detached; PID and log in .cluster/), so the demo can be continued;
#   2. installs or upgrades Herald with Helm (helm/herald, examples/demo-real/values.yaml):
#      the operator runs as a pod on the real node;
#   3. applies examples/demo-real/ (Secret, PlatformAdapter, Publication);
#   4. waits for the Publication to be Published, shows the posts the fake Mastodon
#      received and `kubectl get publications`, and prints how to post again.
#
# Running it again keeps everything: the namespace, the release, what you created in it,
# and the fake Mastodon when it is still running (its posts included). Every step is an
# apply, `helm upgrade --install`, or a reuse.
#
#   examples/demo-real.sh        the demo (make demo)
#   examples/demo-real.sh stop   stop the fake Mastodon (make demo-stop; make cluster-down does it too)
#
# HERALD_DEMO_NAMESPACE (herald-demo), HERALD_DEMO_PORT (18090) and HERALD_DEMO_STATE (.cluster,
# where the PID and log files go) let a second copy run next to it (tests/docs/ does).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ns=${HERALD_DEMO_NAMESPACE:-herald-demo}
release=herald
gateway=${HERALD_POD_GATEWAY:-10.88.0.1}
port=${HERALD_DEMO_PORT:-18090}
state=${HERALD_DEMO_STATE:-$root/.cluster}
log=$state/demo-mastodon.log
pidfile=$state/demo-mastodon.pid # "<pid> <port>"
shown_log=${log#"$root"/}         # relative to the repository when it is in it
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Poll (with a deadline) until a command succeeds.
until_ok() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "timed out waiting for: $*" >&2
      return 1
    fi
    sleep 0.2
  done
}

# The PID of the fake Mastodon the pid file names, if that process is still it.
fake_pid() {
  local pid _
  [ -s "$pidfile" ] || return 1
  read -r pid _ <"$pidfile"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '-m tests.platforms --platform mastodon' || return 1
  echo "$pid"
}
fake_port() { local _ p; read -r _ p <"$pidfile" && echo "$p"; }
gone() { ! kill -0 "$1" 2>/dev/null; }
stop_fake() {
  local pid
  if pid=$(fake_pid); then
    kill "$pid"
    until_ok 10 gone "$pid" || kill -9 "$pid" 2>/dev/null || true
    echo "stopped the demo's fake Mastodon (PID $pid)"
  fi
  rm -f "$pidfile"
}

if [ "${1:-}" = stop ]; then
  stop_fake
  exit 0
fi
[ $# -eq 0 ] || {
  echo "usage: $0 [stop]" >&2
  exit 2
}

export KUBECONFIG=${KUBECONFIG:-$root/.cluster/kubeconfig}
node=$(kubectl get nodes -l herald.dev/node=real -o jsonpath='{.items[0].metadata.name}')
[ -n "$node" ] || {
  echo "no node labelled herald.dev/node=real: run 'make demo' (or 'make cluster-up NODE=real')" >&2
  exit 1
}
cd "$root"
mkdir -p "$state"

if pid=$(fake_pid) && [ "$(fake_port)" = "$port" ] && curl -sf "http://127.0.0.1:$port/_herald/posts" >/dev/null; then
  say "The fake Mastodon is still running on this host, port $port (PID $pid, log: $shown_log)"
else
  stop_fake >/dev/null
  say "Starting a fake Mastodon on this host, port $port (log: $shown_log)"
  # Detached (its own session, stdin closed): it outlives this script and the terminal.
  # The pid file gets the server's own PID (exec keeps it).
  setsid sh -c 'echo "$$ $1" > "$2"; shift 2; exec "$@"' sh "$port" "$pidfile" \
    "$root/.venv/bin/python" -m tests.platforms --platform mastodon --host 0.0.0.0 --port "$port" \
    --public-url "http://$gateway:$port" >"$log" 2>&1 </dev/null &
  until_ok 10 curl -sf "http://127.0.0.1:$port/_herald/posts" || {
    cat "$log" >&2
    exit 1
  }
fi
head -n1 "$log"

say "Installing Herald with Helm: release $release in namespace $ns, the operator on node $node"
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
# The CRDs are shared by everything on the cluster (values.yaml: crds.enabled=false): applied
# here, so that an older copy is updated.
kubectl apply --server-side --force-conflicts -f "$root/crds/" >/dev/null
kubectl wait --for=condition=Established crd/publications.herald.dev crd/platformadapters.herald.dev --timeout=60s >/dev/null
# The images keep their tag (dev) when `make images` rebuilds them: the source's hash in a pod
# annotation restarts the operator when the code changed since the last run, and only then.
source_hash=$(find operator adapters pyproject.toml Dockerfile -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
  ! -path '*.egg-info*' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
helm upgrade --install "$release" "$root/helm/herald" -n "$ns" -f "$root/examples/demo-real/values.yaml" \
  --set-string "podAnnotations.herald\.dev/demo-source=$source_hash" | sed '/^NOTES:/,$d'
kubectl -n "$ns" rollout status "deployment/$release" --timeout=180s
kubectl -n "$ns" get pods -l app.kubernetes.io/instance="$release" -o wide

say "Applying examples/demo-real/ (Secret, PlatformAdapter -> http://$gateway:$port, Publication)"
sed "s#http://10.88.0.1:18090#http://$gateway:$port#" "$root/examples/demo-real/adapter.yaml" | kubectl apply -n "$ns" -f -
kubectl apply -n "$ns" -f "$root/examples/demo-real/publication.yaml"
kubectl wait -n "$ns" --for=condition=Published publication/hello-herald --timeout=180s

say "The posts the fake Mastodon received (GET /_herald/posts)"
curl -s "http://127.0.0.1:$port/_herald/posts" | "$root/.venv/bin/python" -m json.tool

say "kubectl get publications -o wide"
kubectl get -n "$ns" publications -o wide
say "The attempt: its Job and pod (on node $node)"
jobs=$(kubectl get -n "$ns" jobs -l herald.dev/publication=hello-herald -o name)
if [ -n "$jobs" ]; then
  # The result is read from the pod's termination message; the Job's Complete comes a moment later.
  kubectl wait -n "$ns" --for=condition=Complete $jobs --timeout=60s >/dev/null
  kubectl get -n "$ns" jobs,pods -l herald.dev/publication=hello-herald -o wide
else
  echo "(its Job is gone: Herald deletes finished Jobs after config.jobTtlSeconds)"
fi
kubectl get -n "$ns" publication/hello-herald -o jsonpath='{range .status.targets[*]}{.adapter}: {.phase} after {.attempts} attempt(s), post {.postId} at {.url}{"\n"}{end}'
say "Events"
kubectl get events -n "$ns" --field-selector involvedObject.kind=Publication --sort-by=.lastTimestamp

tools=$(tests/cluster/build-tools.sh paths)
say "Herald and the fake Mastodon keep running. Post again, from another shell:"
# Flush left: the heredoc's EOF must start its line. README.md, "Post again", shows the same.
cat <<PRINTED
export KUBECONFIG=$KUBECONFIG PATH=$tools:$root/.venv/bin:\$PATH
kubectl apply -n $ns -f - <<'EOF'
apiVersion: herald.dev/v1alpha1
kind: Publication
metadata:
  name: second-post
spec:
  content:
    text: My second post through Herald.
    link: https://example.org/herald
    tags: [herald]
  targets:
    - adapter: mastodon
EOF
kubectl wait -n $ns --for=condition=Published publication/second-post --timeout=2m
PRINTED
say "See it:"
cat <<PRINTED
kubectl get pub -n $ns -o wide
kubectl herald status second-post -n $ns   # the kubectl plugin: kubectl-herald, in .venv/bin
curl -s http://127.0.0.1:$port/_herald/posts | python3 -m json.tool   # what the fake Mastodon received
PRINTED
say "Running make demo again keeps what you created. When you are done:"
echo "make demo-stop   # stops the fake Mastodon (make cluster-down stops it too); its log: $shown_log"
echo "helm uninstall $release -n $ns && kubectl delete namespace $ns"

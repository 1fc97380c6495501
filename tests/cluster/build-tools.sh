#!/usr/bin/env bash
# Builds the pinned cluster binaries (kube-*, kubectl, kubelet, etcd, kwok, helm) into a
# cache directory keyed by version, outside git. A warm cache makes this a no-op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HERALD_CACHE:-$HOME/.cache/herald}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# Builds run on 2 cores: one package at a time keeps the link step's memory in check.
export GOMAXPROCS=${GOMAXPROCS:-2}

key() { sha256sum "$1/go.sum" | cut -c1-12; }

k8s_dir="$cache/bin/k8s-$K8S_VERSION-$(key "$here/k8s")"
etcd_dir="$cache/bin/etcd-$ETCD_VERSION-$(key "$here/etcd")"
kwok_dir="$cache/bin/kwok-$KWOK_VERSION"
helm_dir="$cache/bin/helm-$HELM_VERSION"

build_k8s() {
  local out=$k8s_dir
  [ -x "$out/kubelet" ] && return 0
  echo ">> building Kubernetes $K8S_VERSION into $out" >&2
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$out.tmp"
  (cd "$here/k8s" && go build -trimpath -ldflags "-s -w $ld" -o "$out.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_etcd() {
  local out=$etcd_dir
  [ -x "$out/etcd" ] && return 0
  echo ">> building etcd $ETCD_VERSION into $out" >&2
  mkdir -p "$out.tmp"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_plain() { # dir pkg@version
  local out=$1 pkg=$2
  [ -x "$out/$(basename "${pkg%@*}")" ] && return 0
  echo ">> go install $pkg into $out" >&2
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" GOFLAGS= go install -trimpath -ldflags "-s -w" "$pkg"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

case "${1:-all}" in
  paths) ;;
  all)
    build_etcd
    build_plain "$kwok_dir" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    build_plain "$helm_dir" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    build_k8s
    ;;
  *) echo "usage: $0 [all|paths]" >&2; exit 2 ;;
esac

# Everything needed lands in one bin dir of symlinks, so PATH needs one entry.
bin="$cache/bin/current"
mkdir -p "$bin"
for f in "$k8s_dir"/* "$etcd_dir"/etcd "$kwok_dir"/kwok "$helm_dir"/helm; do
  [ -e "$f" ] && ln -sfn "$f" "$bin/$(basename "$f")"
done
echo "$bin"

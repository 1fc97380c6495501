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
# kstatus: a small command around sigs.k8s.io/cli-utils/pkg/kstatus (tests/cluster/kstatus), pinned by
# its go.mod; keyed by its sources too, so a change to main.go rebuilds it.
cli_utils_version=$(awk '$1 == "sigs.k8s.io/cli-utils" {print $2}' "$here/kstatus/go.mod")
kstatus_dir="$cache/bin/kstatus-$cli_utils_version-$(cat "$here"/kstatus/go.mod "$here"/kstatus/go.sum "$here"/kstatus/main.go | sha256sum | cut -c1-12)"
# helm-docs: generates helm/herald/README.md from values.yaml (`make chart-docs`); pinned by the wrapper
# module tests/cluster/helm-docs, keyed by its version and go.sum.
helm_docs_version=$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/norwoodj/helm-docs") print $(i + 1)}' "$here/helm-docs/go.mod")
helm_docs_dir="$cache/bin/helm-docs-$helm_docs_version-$(key "$here/helm-docs")"
# prometheus-operator, and the Prometheus (with kubernetes_sd, which Debian's lacks) that runs what it
# generates: tests/monitoring/test_prometheus_operator.py; pinned by the wrapper module
# tests/cluster/prometheus-operator, keyed by its version and go.sum.
prom_op_version=$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/prometheus-operator/prometheus-operator") print $(i + 1)}' "$here/prometheus-operator/go.mod")
prom_op_dir="$cache/bin/prometheus-operator-$prom_op_version-$(key "$here/prometheus-operator")"
# otelcol: a builder-style OpenTelemetry Collector (OTLP receiver, file exporter) for the tracing tests
# (tests/cluster/otelcol); pinned by its go.mod, keyed by the collector release and its sources.
otelcol_version=$(awk '$1 == "go.opentelemetry.io/collector/otelcol" {print $2}' "$here/otelcol/go.mod")
otelcol_dir="$cache/bin/otelcol-$otelcol_version-$(cat "$here"/otelcol/go.mod "$here"/otelcol/go.sum "$here"/otelcol/main.go | sha256sum | cut -c1-12)"

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

build_kstatus() {
  local out=$kstatus_dir
  [ -x "$out/kstatus" ] && return 0
  echo ">> building kstatus (sigs.k8s.io/cli-utils $cli_utils_version) into $out" >&2
  mkdir -p "$out.tmp"
  (cd "$here/kstatus" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/kstatus" .)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_helm_docs() {
  local out=$helm_docs_dir
  [ -x "$out/helm-docs" ] && return 0
  echo ">> building helm-docs $helm_docs_version into $out" >&2
  mkdir -p "$out.tmp"
  (cd "$here/helm-docs" && go build -trimpath -ldflags "-s -w -X main.version=${helm_docs_version#v}" \
    -o "$out.tmp/helm-docs" github.com/norwoodj/helm-docs/cmd/helm-docs)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_otelcol() {
  local out=$otelcol_dir
  [ -x "$out/otelcol-herald" ] && return 0
  echo ">> building the OpenTelemetry Collector $otelcol_version (OTLP in, file out) into $out" >&2
  mkdir -p "$out.tmp"
  (cd "$here/otelcol" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/otelcol-herald" .)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_prometheus_operator() {
  local out=$prom_op_dir
  [ -x "$out/prometheus-operator" ] && [ -x "$out/prometheus" ] && return 0
  echo ">> building prometheus-operator $prom_op_version and its Prometheus into $out" >&2
  local ver=github.com/prometheus/common/version
  local prom_version
  prom_version=$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/prometheus/prometheus") print $(i + 1)}' \
    "$here/prometheus-operator/go.mod")
  prom_version=${prom_version#v0.}  # the module's v0.313.1 is Prometheus 3.13.1
  prom_version=${prom_version:0:1}.$((10#${prom_version:1:2})).${prom_version#*.}
  mkdir -p "$out.tmp"
  (cd "$here/prometheus-operator" && nice -n 10 go build -trimpath \
    -ldflags "-s -w -X $ver.Version=${prom_op_version#v} -X $ver.Revision=$prom_op_version -X $ver.Branch=release" \
    -o "$out.tmp/prometheus-operator" github.com/prometheus-operator/prometheus-operator/cmd/operator)
  # Not linked into bin/current: Debian's prometheus stays the one on PATH.
  (cd "$here/prometheus-operator" && nice -n 10 go build -trimpath \
    -ldflags "-s -w -X $ver.Version=$prom_version -X $ver.Revision=v$prom_version -X $ver.Branch=release" \
    -o "$out.tmp/prometheus" github.com/prometheus/prometheus/cmd/prometheus)
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
    build_kstatus
    build_helm_docs
    build_prometheus_operator
    build_otelcol
    ;;
  helm-docs) build_helm_docs ;;  # only helm-docs (the chart README test, `make chart-docs`)
  prometheus-operator) build_prometheus_operator ;;  # only prometheus-operator (tests/monitoring)
  otelcol) build_otelcol ;;  # only the OpenTelemetry Collector (tests/tracing)
  *) echo "usage: $0 [all|paths|helm-docs|otelcol|prometheus-operator]" >&2; exit 2 ;;
esac

# Everything needed lands in one bin dir of symlinks, so PATH needs one entry.
bin="$cache/bin/current"
mkdir -p "$bin"
for f in "$k8s_dir"/* "$etcd_dir"/etcd "$kwok_dir"/kwok "$helm_dir"/helm "$kstatus_dir"/kstatus "$helm_docs_dir"/helm-docs "$otelcol_dir"/otelcol-herald \
  "$prom_op_dir"/prometheus-operator; do
  [ -e "$f" ] && ln -sfn "$f" "$bin/$(basename "$f")"
done
echo "$bin"

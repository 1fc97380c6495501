#!/usr/bin/env bash
# Builds Herald's images from the Dockerfile with buildah (daemonless, Debian's package),
# FROM the local base image of images/base.sh, and loads them into containerd's k8s.io
# namespace (the real node's CRI) when that containerd is running.
#
#   images/build.sh [build]   base image + both targets, exported as docker-archives
#   images/build.sh load      build, then import into containerd (the real node)
#   images/build.sh pause     build the pause (sandbox) image only; prints its archive
#   images/build.sh pause-load  build the pause image and import it into containerd
#
# Names: herald-operator:dev and herald-adapter:dev. In containerd they are
# docker.io/library/herald-*:dev, which is what the kubelet looks for when a pod says
# `image: herald-adapter:dev` (the chart's default), and also localhost/herald-*:dev.
# HERALD_BUILD_BASE_IMAGE=<ref> builds FROM another base instead (e.g. a registry's).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$images_cache/archives
tag=${HERALD_IMAGE_TAG:-dev}
targets=(operator adapter)
PAUSE_REF=localhost/herald-pause:3.10

# A CA bundle for pip in the builder stage (a TLS-intercepting proxy's CA lives in the
# host's bundle); passed as a build secret, so it never lands in a layer.
ca_bundle=${HERALD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

ctr_() { ctr --address "$containerd_sock" -n k8s.io "$@"; }
containerd_up() { [ -S "$containerd_sock" ] && ctr --address "$containerd_sock" version >/dev/null 2>&1; }

# The inputs of a target: the Dockerfile, .dockerignore, the base and the build context.
context_key() {
  {
    echo "$1"
    cat "$images_root/Dockerfile" "$images_root/.dockerignore"
    (cd "$images_root" && find pyproject.toml operator adapters -type f ! -path '*/__pycache__/*' \
      ! -name '*.pyc' ! -path '*.egg-info*' -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

build_target() { # target base
  local target=$1 base=$2 name=herald-$1
  local key; key=$(context_key "$base")
  local archive=$out/$name-$key.tar
  if [ -s "$archive" ]; then echo "$archive"; return 0; fi
  ilog "building $name:$tag (target $target, FROM $base)"
  local secret=()
  [ -s "$ca_bundle" ] && secret=(--secret "id=ca_bundle,src=$ca_bundle")
  bh bud --quiet --layers --pull=false --isolation chroot --format docker \
    --build-arg BASE_IMAGE="$base" "${secret[@]}" --target "$target" \
    -t "localhost/$name:$tag" -f "$images_root/Dockerfile" "$images_root" >&2
  mkdir -p "$out"
  rm -f "$out/$name"-*.tar
  # One archive, two names: the short name's normalisation and the local one.
  bh push --quiet "localhost/$name:$tag" "docker-archive:$archive.tmp:docker.io/library/$name:$tag" >&2
  mv "$archive.tmp" "$archive"
  echo "$archive"
}

build_pause() { # the sandbox image: a static Go binary that waits for a signal
  local key; key=$(cat "$images_here/pause/main.go" "$images_here/pause/go.mod" "$0" | sha256sum | cut -c1-12)
  local archive=$out/herald-pause-$key.tar
  if [ -s "$archive" ]; then echo "$archive"; return 0; fi
  ilog "building $PAUSE_REF (static Go binary)"
  local work; work=$(mktemp -d)
  (cd "$images_here/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    go build -trimpath -ldflags '-s -w' -o "$work/pause" .)
  local c; c=$(bh from --quiet scratch)
  bh copy --quiet "$c" "$work/pause" /pause >/dev/null
  bh config --entrypoint '["/pause"]' --cmd '' --user 65535:65535 \
    --label dev.herald.pause.key="$key" "$c"
  bh commit --quiet --rm --format docker "$c" "$PAUSE_REF" >/dev/null
  rm -rf "$work"
  mkdir -p "$out"
  rm -f "$out"/herald-pause-*.tar
  bh push --quiet "$PAUSE_REF" "docker-archive:$archive.tmp:$PAUSE_REF" >&2
  mv "$archive.tmp" "$archive"
  echo "$archive"
}

import_archive() { # archive name...: import unless containerd already has this archive's image
  local archive=$1; shift
  local stamp; stamp=$(basename "$archive" .tar)
  local id fresh=1
  for id in "$@"; do
    ctr_ images ls "name==$id" 2>/dev/null | grep -q "dev.herald.archive=$stamp" || fresh=0
  done
  [ "$fresh" = 1 ] && return 0
  ilog "importing $(basename "$archive") into containerd (k8s.io)"
  ctr_ images import "$archive" >/dev/null
  local first=$1
  for id in "$@"; do
    [ "$id" = "$first" ] || ctr_ images tag --force "$first" "$id" >/dev/null
    ctr_ images label "$id" "dev.herald.archive=$stamp" >/dev/null
  done
}

base_ref() { if [ -n "${HERALD_BUILD_BASE_IMAGE:-}" ]; then echo "$HERALD_BUILD_BASE_IMAGE"; else "$images_here/base.sh"; fi; }

build_all() {
  need_debs buildah
  local base; base=$(base_ref)
  for t in "${targets[@]}"; do build_target "$t" "$base" >/dev/null; done
  build_pause >/dev/null
}

load_all() {
  if ! containerd_up; then
    ilog "containerd is not running at $containerd_sock (the real node is down): built, not loaded"
    return 0
  fi
  local base t; base=$(base_ref)
  for t in "${targets[@]}"; do
    import_archive "$(build_target "$t" "$base")" "docker.io/library/herald-$t:$tag" "localhost/herald-$t:$tag"
  done
  import_archive "$(build_pause)" "$PAUSE_REF"
}

case "${1:-build}" in
  build) build_all; ls -1 "$out"/*.tar ;;
  load) build_all; load_all ;;
  pause) need_debs buildah; build_pause ;;
  pause-load) need_debs buildah; containerd_up && import_archive "$(build_pause)" "$PAUSE_REF" ;;
  *) echo "usage: $0 [build|load|pause|pause-load]" >&2; exit 2 ;;
esac

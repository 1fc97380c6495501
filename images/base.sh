#!/usr/bin/env bash
# The base image for the Dockerfile when no registry is reachable: a minimal Debian
# bookworm rootfs (debootstrap --variant=minbase + python3 + ca-certificates) built from
# Debian's own packages and imported into buildah's storage as an image.
#
#   images/base.sh          build (or reuse) it; prints the image reference
#   images/base.sh ref      print the reference only (no build)
#
# Cached under $HERALD_CACHE/images/base-<key>/, keyed by this recipe's hash, so a warm
# run only checks that the image is in storage. HERALD_DEBIAN_MIRROR picks the mirror.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SUITE=bookworm
PACKAGES=python3,ca-certificates
MIRROR=${HERALD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
key=$(cat "$0" | sha256sum | cut -c1-12)
ref=localhost/herald-base:$SUITE-$key
dir=$images_cache/base-$key

[ "${1:-}" = ref ] && { echo "$ref"; exit 0; }

build_rootfs() {
  [ -s "$dir/rootfs.tar" ] && return 0
  need_debs debootstrap
  ilog "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  local rootfs=$dir.tmp/rootfs
  debootstrap --variant=minbase --include="$PACKAGES" --components=main "$SUITE" "$rootfs" "$MIRROR" \
    >"$dir.tmp/debootstrap.log" 2>&1 || { tail -n 30 "$dir.tmp/debootstrap.log" >&2; return 1; }
  # Security updates too: the image is the same Debian a registry's image would be.
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" > "$rootfs/etc/apt/sources.list"
  chroot "$rootfs" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -y -q upgrade' \
    >>"$dir.tmp/debootstrap.log" 2>&1 || { tail -n 30 "$dir.tmp/debootstrap.log" >&2; return 1; }
  # What an image does not need: package caches, docs, man pages, locales, logs.
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/etc/machine-id "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf
  find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
  : > "$rootfs/etc/machine-id"
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$dir.tmp/rootfs.tar" .
  rm -rf "$rootfs"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

import_image() {
  need_debs buildah
  bh inspect --type image "$ref" >/dev/null 2>&1 && return 0
  ilog "importing the rootfs as $ref"
  local c
  c=$(bh from --quiet scratch)
  bh add --quiet "$c" "$dir/rootfs.tar" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd /bin/bash --label org.opencontainers.image.description="Debian $SUITE minbase + $PACKAGES (debootstrap)" \
    --label dev.herald.base.key="$key" "$c"
  bh commit --quiet --rm "$c" "$ref" >/dev/null
}

build_rootfs
import_image
echo "$ref"

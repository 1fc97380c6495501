# Shared by images/*.sh: where the image work lives, and buildah pointed at it.
# Everything is kept outside git, under $HERALD_CACHE/images.
# shellcheck shell=bash
images_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
images_root=$(cd "$images_here/.." && pwd)
images_cache=${HERALD_CACHE:-$HOME/.cache/herald}/images
# buildah's own storage (layers, build cache). overlay works as root on this ext4;
# HERALD_STORAGE_DRIVER=vfs is the fallback for hosts where overlay-on-X is refused.
storage_driver=${HERALD_STORAGE_DRIVER:-overlay}

ilog() { printf '>> %s\n' "$*" >&2; }

need_debs() { # package...
  local p missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  ilog "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

bh() { # buildah with the cache's storage; chroot isolation: no systemd, no nested runtime needed
  mkdir -p "$images_cache/storage" "$images_cache/runroot"
  BUILDAH_ISOLATION=chroot buildah --root "$images_cache/storage" --runroot "$images_cache/runroot" \
    --storage-driver "$storage_driver" "$@"
}

# The cluster's real node: containerd's socket, for loading images into it.
containerd_sock=${HERALD_CONTAINERD_SOCK:-/run/herald-node/containerd/containerd.sock}

#!/bin/sh
# Builds the krew archive of `kubectl herald` and its manifest with the RELEASE placeholders filled:
#
#   plugins/krew/release.sh VERSION BASE_URL [OUT_DIR]
#
#   VERSION   the release tag, e.g. v0.1.0
#   BASE_URL  where the release's files are downloaded from, e.g.
#             https://github.com/herald-dev/herald/releases/download/v0.1.0
#   OUT_DIR   default dist/krew
#
# Writes OUT_DIR/kubectl-herald-VERSION.tar.gz (the shim, reproducibly: the same bytes on every run)
# and OUT_DIR/herald.yaml (plugins/krew/herald.yaml with version, uri and sha256 set). Upload the
# archive to BASE_URL, then submit herald.yaml to krew-index (docs/kubectl-plugin.md).
set -eu
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
version=$1
base=${2%/}
out=${3:-dist/krew}
here=$(cd "$(dirname "$0")" && pwd)
case $version in v[0-9]*) ;; *) echo "release.sh: VERSION must look like v0.1.0, not $version" >&2; exit 2 ;; esac

mkdir -p "$out"
archive=kubectl-herald-$version.tar.gz
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$here/kubectl-herald" "$stage/kubectl-herald"
chmod 0755 "$stage/kubectl-herald"
touch -d @0 "$stage/kubectl-herald" 2>/dev/null || touch -t 197001010000 "$stage/kubectl-herald"
(cd "$stage" && tar --owner=0 --group=0 --numeric-owner -cf - kubectl-herald) | gzip -n -9 >"$out/$archive"
if command -v sha256sum >/dev/null 2>&1; then
  sum=$(sha256sum "$out/$archive" | cut -d' ' -f1)
else
  sum=$(shasum -a 256 "$out/$archive" | cut -d' ' -f1)
fi
{
  echo "# kubectl herald $version for krew, written by plugins/krew/release.sh from plugins/krew/herald.yaml."
  sed -e '/^#/d' \
    -e "s|^\( *\)version: .*# RELEASE.*\$|\1version: $version|" \
    -e "s|^\( *\)uri: .*# RELEASE.*\$|\1uri: $base/$archive|" \
    -e "s|^\( *\)sha256: .*# RELEASE.*\$|\1sha256: \"$sum\"|" \
    "$here/herald.yaml"
} >"$out/herald.yaml"
if grep -q 'RELEASE' "$out/herald.yaml"; then
  echo "release.sh: a RELEASE placeholder of plugins/krew/herald.yaml was not filled in $out/herald.yaml" >&2
  exit 1
fi
echo "$out/$archive $sum"
echo "$out/herald.yaml"

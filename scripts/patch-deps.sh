#!/usr/bin/env bash
# Prepare the dependencies Gate carries patches for (third_party/<crate>/*.patch):
# take the published crate (cargo's download cache, else crates.io), check its
# SHA-256, extract it under .patched/ and apply the patches in order. The root
# Cargo.toml's [patch.crates-io] points there. Idempotent: a stamp records the
# patches applied, and a changed patch re-extracts.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
  local crate=$1 version=$2 sha256=$3
  local dest=".patched/$crate-$version"
  local stamp
  stamp=$(cat "third_party/$crate"/*.patch | sha256sum | cut -d' ' -f1)
  if [ -f "$dest/.gate-patched" ] && [ "$(cat "$dest/.gate-patched")" = "$stamp" ]; then
    return 0
  fi
  local archive
  archive=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate-$version.crate" 2>/dev/null | head -n1 || true)
  if [ -z "$archive" ]; then
    mkdir -p .patched
    archive=".patched/$crate-$version.crate"
    echo "patch-deps: downloading $crate $version from crates.io" >&2
    curl -fsSL --retry 3 -o "$archive" "https://static.crates.io/crates/$crate/$crate-$version.crate"
  fi
  if [ "$(sha256sum "$archive" | cut -d' ' -f1)" != "$sha256" ]; then
    echo "patch-deps: $archive does not have the expected SHA-256 $sha256" >&2
    exit 1
  fi
  rm -rf "$dest"
  mkdir -p .patched
  tar -xzf "$archive" -C .patched
  for patch in "third_party/$crate"/*.patch; do
    if ! patch -s -p1 -d "$dest" < "$patch"; then
      echo "patch-deps: $patch does not apply to $crate $version" >&2
      exit 1
    fi
  done
  echo "$stamp" > "$dest/.gate-patched"
}

prepare regorus 0.14.1 ec9c3ac0d614c8f87448b86c8ddef36c8affce3d2c5deea81b7c28c812e4bfb8

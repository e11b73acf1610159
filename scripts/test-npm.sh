#!/usr/bin/env bash
# Install the npm packages the test suites start as peers (control/tests/peers/*/package-lock.json)
# into a cache directory, once per lockfile: `npm ci` runs again only when a lockfile changed.
# The tests find them through GATE_TEST_NPM (default ~/.cache/gate/test-npm).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GATE_TEST_NPM:-$HOME/.cache/gate/test-npm}"
peer="$root/control/tests/peers/oidc"
if ! command -v npm >/dev/null; then
  echo "test-npm: npm is missing; install nodejs and npm (scripts/deps.sh does as root)" >&2
  exit 1
fi
stamp="$cache/.lock.sha256"
want="$(sha256sum "$peer/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$cache/node_modules" ]]; then
  exit 0
fi
mkdir -p "$cache"
cp "$peer/package.json" "$peer/package-lock.json" "$cache/"
(cd "$cache" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
echo "test-npm: installed $(cd "$cache" && npm ls --depth=0 --parseable | tail -n +2 | xargs -n1 basename | tr '\n' ' ')in $cache"

#!/usr/bin/env bash
# Create (once per machine) the Python venv the test suites use for real
# Python peers (scripts/test-requirements.txt), and reuse it while the
# requirements are unchanged. Prints nothing when it is current.
# Location: $GATE_TEST_VENV, default ~/.cache/gate/test-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${GATE_TEST_VENV:-$HOME/.cache/gate/test-venv}
stamp=$(sha256sum scripts/test-requirements.txt | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.gate-requirements" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
echo "test-venv: creating $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
echo "$stamp" > "$venv/.gate-requirements"

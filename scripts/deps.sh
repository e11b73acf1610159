#!/usr/bin/env bash
# Install the system packages Gate's test suites need (real servers and clients).
# As root: apt-get installs whatever is missing. Otherwise: print the exact command and fail.
set -euo pipefail

# program-to-check:package pairs
needs=(
  /usr/lib/postgresql/15/bin/initdb:postgresql-15
  /usr/lib/postgresql/15/bin/psql:postgresql-client-15
  /usr/sbin/mariadbd:mariadb-server
  /usr/bin/mariadb:mariadb-client
  /usr/sbin/sshd:openssh-server
  /usr/bin/ssh:openssh-client
  /usr/bin/rsync:rsync
  /usr/sbin/nginx:nginx-light
  /usr/bin/wrk:wrk
  /usr/bin/sysbench:sysbench
  /usr/sbin/haproxy:haproxy
  /usr/sbin/pgbouncer:pgbouncer
  /usr/bin/promtool:prometheus
  /usr/bin/curl:curl
  /usr/bin/jq:jq
  /usr/bin/openssl:openssl
  /usr/bin/chromium:chromium
  /usr/bin/chromedriver:chromium-driver
  /usr/bin/node:nodejs
  /usr/bin/npm:npm
)

missing=()
for pair in "${needs[@]}"; do
  program=${pair%%:*}
  package=${pair##*:}
  [ -x "$program" ] || missing+=("$package")
done
if ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed"; then
  missing+=(python3-venv)
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "deps: cargo-nextest is missing; install it with: cargo install cargo-nextest --locked" >&2
  exit 1
fi

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing system packages: ${missing[*]}" >&2
  echo "deps: run as root:  $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
bash -c "$cmd" >&2

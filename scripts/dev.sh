#!/usr/bin/env bash
# `make dev`: the local stack. gate-control on :8080 (embedded SQLite, insecure:
# local development only), a throwaway PostgreSQL with sample data, and
# gate-connector in front of it using config/connector.yaml and
# policies/example.rego. The connector starts only once the control plane
# answers /health. Ctrl-C stops everything this script started and deletes the
# sample database (the control plane's .data/gate.db is kept).
#
# Environment (all optional):
#   GATE_LISTEN_ADDR          connector listen address        (default :6432)
#   GATE_CONTROL_LISTEN_ADDR  control-plane listen address    (default :8080)
#   GATE_SQLITE_PATH          control-plane SQLite file       (default .data/gate.db)
#   PRIMARY_DB_PORT           sample PostgreSQL port          (default: a free port)
#   SAMPLE_API_PORT           sample JSON API (nginx) port    (default: a free port)
#   ORDERS_DB_PORT            sample MariaDB port             (default: a free port)
#   GATE_MYSQL_LISTEN_PORT    connector's MySQL port          (default 3307)
#   EVENTS_MONGO_PORT         sample nx-27017 (MongoDB) port  (default: a free port)
#   GATE_MONGO_LISTEN_PORT    connector's MongoDB port        (default 27018)
#   WEB1_SSHD_PORT            sample sshd port                (default: a free port)
#   GATE_SSH_LISTEN_PORT      connector's SSH port            (default 2222)
#   GATE_TEST_VENV            venv with nx-27017 and pymongo  (default ~/.cache/gate/test-venv; make test-venv)
#   GATE_CONNECTOR_BIN        prebuilt gate-connector binary  (default: cargo build)
#   GATE_CONTROL_BIN          prebuilt gate-control binary    (default: cargo build)
#   GATE_CONNECTOR_STATE_DIR  connector's last snapshot       (default .data/connector)
#   GATE_CONNECTOR_SPOOL_DIR  connector's audit spool         (default .data/connector-deadletters)
#   GATE_CONNECTOR_RECORDING_DIR  connector's recording spool (default .data/recordings)
#   GATE_RECORDING_DIR        control plane's recordings      (default .data/control-recordings)
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=/usr/lib/postgresql/15/bin
[ -x "$PG_BIN/initdb" ] || { echo "dev: PostgreSQL 15 is missing; run 'make deps' first" >&2; exit 1; }

export GATE_LISTEN_ADDR=${GATE_LISTEN_ADDR:-:6432}
export GATE_CONTROL_LISTEN_ADDR=${GATE_CONTROL_LISTEN_ADDR:-:8080}
export GATE_SQLITE_PATH=${GATE_SQLITE_PATH:-.data/gate.db}
if [ -z "${PRIMARY_DB_PORT:-}" ]; then
  PRIMARY_DB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export PRIMARY_DB_PORT PRIMARY_DB_USER=gate_app PRIMARY_DB_PASSWORD=gate_app
if [ -z "${SAMPLE_API_PORT:-}" ]; then
  SAMPLE_API_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export SAMPLE_API_PORT
[ -x /usr/sbin/nginx ] || { echo "dev: nginx is missing; run 'make deps' first" >&2; exit 1; }
if [ -z "${ORDERS_DB_PORT:-}" ]; then
  ORDERS_DB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export GATE_MYSQL_LISTEN_PORT=${GATE_MYSQL_LISTEN_PORT:-3307}
export ORDERS_DB_PORT ORDERS_DB_USER=gate_app ORDERS_DB_PASSWORD=gate_app
venv=${GATE_TEST_VENV:-$HOME/.cache/gate/test-venv}
[ -x "$venv/bin/nx-27017" ] || { echo "dev: nx-27017 is missing from $venv; run 'make test-venv' first" >&2; exit 1; }
if [ -z "${EVENTS_MONGO_PORT:-}" ]; then
  EVENTS_MONGO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export EVENTS_MONGO_PORT GATE_MONGO_LISTEN_PORT=${GATE_MONGO_LISTEN_PORT:-27018}
[ -x /usr/sbin/sshd ] || { echo "dev: sshd is missing; run 'make deps' first" >&2; exit 1; }
if [ -z "${WEB1_SSHD_PORT:-}" ]; then
  WEB1_SSHD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export WEB1_SSHD_PORT GATE_SSH_LISTEN_PORT=${GATE_SSH_LISTEN_PORT:-2222} WEB1_SSH_USER=$(id -un)

if [ -z "${GATE_CONNECTOR_BIN:-}" ] || [ -z "${GATE_CONTROL_BIN:-}" ]; then
  cargo build --locked -q -p gate-connector -p gate-control
  GATE_CONNECTOR_BIN=${GATE_CONNECTOR_BIN:-target/debug/gate-connector}
  GATE_CONTROL_BIN=${GATE_CONTROL_BIN:-target/debug/gate-control}
fi

dir=$(mktemp -d /tmp/gate-dev.XXXXXX)
api_dir=$(mktemp -d /tmp/gate-dev-api.XXXXXX)
chmod 755 "$api_dir"
api_pid=""
# MariaDB runs as its own account: a directory of its own.
mdir=$(mktemp -d /tmp/gate-dev-mariadb.XXXXXX)
ndir=$(mktemp -d /tmp/gate-dev-mongo.XXXXXX)
nx_pid=""
# sshd reads authorized_keys as the target user: a traversable directory.
sdir=$(mktemp -d /tmp/gate-dev-ssh.XXXXXX)
chmod 755 "$sdir"
sshd_pid=""
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$dir"
  as_pg=(runuser -u postgres --)
fi
connector_pid=""
control_pid=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$connector_pid" ] && kill "$connector_pid" 2>/dev/null && wait "$connector_pid" 2>/dev/null || true
  [ -n "$control_pid" ] && kill "$control_pid" 2>/dev/null && wait "$control_pid" 2>/dev/null || true
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  [ -n "$nx_pid" ] && kill "$nx_pid" 2>/dev/null && wait "$nx_pid" 2>/dev/null || true
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null || true
  rm -rf "$ndir" "$sdir"
  rm -rf "$api_dir"
  "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  if [ -f "$mdir/mariadb.pid" ]; then
    kill -9 "$(cat "$mdir/mariadb.pid")" 2>/dev/null || true
  fi
  rm -rf "$dir" "$mdir"
  echo "dev: stopped" >&2
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

echo "dev: starting PostgreSQL 15 on 127.0.0.1:$PRIMARY_DB_PORT ($dir)" >&2
"${as_pg[@]}" "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -o \
  "-p $PRIMARY_DB_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PRIMARY_DB_PORT" -U postgres "$@"; }
psql_admin -d postgres -c "create role gate_app login password 'gate_app'"
psql_admin -d postgres -c "create database appdb owner gate_app"
psql_admin -d appdb <<'SQL'
set role gate_app;
create table customers (id int primary key, name text not null, email text, ssn text);
insert into customers values
  (1, 'Alice Johnson', 'alice@example.com', '123-45-6789'),
  (2, 'Bob Smith', 'bob.smith@example.org', '987-65-4321'),
  (3, 'Carol Díaz', 'carol@example.net', '555-12-3456');
SQL

echo "dev: starting the sample JSON API (nginx) on 127.0.0.1:$SAMPLE_API_PORT ($api_dir)" >&2
mkdir -p "$api_dir/html/v1/admin" "$api_dir/logs" "$api_dir/tmp"
cat > "$api_dir/html/v1/customers" <<'JSON'
[
  {"id": 1, "name": "Alice Johnson", "email": "alice@example.com", "ssn": "123-45-6789", "status": "active"},
  {"id": 2, "name": "Bob Smith", "email": "bob.smith@example.org", "ssn": "987-65-4321", "status": "closed"},
  {"id": 3, "name": "Carol Díaz", "email": "carol@example.net", "ssn": "555-12-3456", "status": "active"}
]
JSON
echo '{"keys": ["sk-live-do-not-leak"]}' > "$api_dir/html/v1/admin/keys"
chmod -R a+rX "$api_dir"
cat > "$api_dir/nginx.conf" <<NGINX
daemon off;
pid $api_dir/nginx.pid;
error_log $api_dir/logs/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $api_dir/tmp/body;
  proxy_temp_path $api_dir/tmp/proxy;
  fastcgi_temp_path $api_dir/tmp/fastcgi;
  uwsgi_temp_path $api_dir/tmp/uwsgi;
  scgi_temp_path $api_dir/tmp/scgi;
  default_type application/json;
  server { listen 127.0.0.1:$SAMPLE_API_PORT; root $api_dir/html; }
}
NGINX
/usr/sbin/nginx -p "$api_dir" -c "$api_dir/nginx.conf" -e "$api_dir/logs/error.log" &
api_pid=$!
echo "dev: starting MariaDB on 127.0.0.1:$ORDERS_DB_PORT ($mdir)" >&2
[ "$(id -u)" -eq 0 ] && chown mysql: "$mdir"
mariadb-install-db --no-defaults --user=mysql --datadir="$mdir/data" \
  --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve >/dev/null 2>&1
/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$mdir/data" --socket="$mdir/mariadb.sock" \
  --port="$ORDERS_DB_PORT" --bind-address=127.0.0.1 --pid-file="$mdir/mariadb.pid" \
  --log-error="$mdir/mariadb.log" --skip-name-resolve --innodb-buffer-pool-size=64M \
  --innodb-flush-log-at-trx-commit=0 --skip-log-bin >/dev/null 2>&1 &
for i in $(seq 1 100); do
  grep -q "ready for connections" "$mdir/mariadb.log" 2>/dev/null && break
  [ "$i" -eq 100 ] && { echo "dev: MariaDB did not start" >&2; exit 1; }
  sleep 0.1
done
mariadb --no-defaults --socket="$mdir/mariadb.sock" -u root <<'SQL'
CREATE DATABASE shop;
CREATE USER 'gate_app'@'127.0.0.1' IDENTIFIED BY 'gate_app';
GRANT ALL PRIVILEGES ON shop.* TO 'gate_app'@'127.0.0.1';
CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200), ssn CHAR(11));
INSERT INTO shop.customers VALUES
  (1, 'Alice Johnson', 'alice@example.com', '123-45-6789'),
  (2, 'Bob Smith', 'bob.smith@example.org', '987-65-4321'),
  (3, 'Carol Díaz', 'carol@example.net', '555-12-3456');
SQL

echo "dev: starting nx-27017 (MongoDB wire protocol on SQLite) on 127.0.0.1:$EVENTS_MONGO_PORT ($ndir)" >&2
"$venv/bin/nx-27017" --db memory --host 127.0.0.1 -p "$EVENTS_MONGO_PORT" \
  --pid-file "$ndir/nx.pid" --log-file "$ndir/nx.log" >/dev/null 2>&1 &
nx_pid=$!
for i in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$EVENTS_MONGO_PORT") 2>/dev/null; then break; fi
  [ "$i" -eq 100 ] && { echo "dev: nx-27017 did not start" >&2; exit 1; }
  sleep 0.1
done
"$venv/bin/python" - "$EVENTS_MONGO_PORT" <<'PY'
import sys, pymongo
db = pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/?directConnection=true").app
db.customers.insert_many([
    {"_id": 1, "name": "Alice Johnson", "email": "alice@example.com", "ssn": "123-45-6789"},
    {"_id": 2, "name": "Bob Smith", "email": "bob.smith@example.org", "ssn": "987-65-4321"},
    {"_id": 3, "name": "Carol Díaz", "email": "carol@example.net", "ssn": "555-12-3456"},
])
PY

echo "dev: starting sshd on 127.0.0.1:$WEB1_SSHD_PORT ($sdir)" >&2
for k in host_ed25519 gate_upstream_ed25519 app_ed25519; do
  ssh-keygen -q -t ed25519 -N "" -C "gate-dev-$k" -f "$sdir/$k"
done
cp "$sdir/gate_upstream_ed25519.pub" "$sdir/authorized_keys"
chmod 644 "$sdir/authorized_keys"
echo "[127.0.0.1]:$WEB1_SSHD_PORT $(cat "$sdir/host_ed25519.pub")" > "$sdir/known_hosts"
cat > "$sdir/sshd_config" <<CONF
Port $WEB1_SSHD_PORT
ListenAddress 127.0.0.1
HostKey $sdir/host_ed25519
PidFile $sdir/sshd.pid
AuthorizedKeysFile $sdir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$sdir/sshd_config" 2>"$sdir/sshd.log" &
sshd_pid=$!
export GATE_DEV_SSH_DIR=$sdir GATE_DEV_SSH_PUBKEY="$(cat "$sdir/app_ed25519.pub")"

control_port=${GATE_CONTROL_LISTEN_ADDR##*:}
echo "dev: starting gate-control on :$control_port (SQLite $GATE_SQLITE_PATH, insecure)" >&2
GATE_INSECURE=true GATE_API_KEY="" "$GATE_CONTROL_BIN" --config config/control.yaml &
control_pid=$!
for i in $(seq 1 100); do
  if curl -sf "http://127.0.0.1:$control_port/health" >/dev/null 2>&1; then break; fi
  kill -0 "$control_pid" 2>/dev/null || { echo "dev: gate-control exited" >&2; exit 1; }
  [ "$i" -eq 100 ] && { echo "dev: gate-control did not become healthy" >&2; exit 1; }
  sleep 0.1
done
echo "dev: gate-control healthy at http://127.0.0.1:$control_port/health" >&2
export GATE_CONTROL_URL="http://127.0.0.1:$control_port"

"$GATE_CONNECTOR_BIN" --config config/connector.yaml &
connector_pid=$!
port=${GATE_LISTEN_ADDR##*:}
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$connector_pid" 2>/dev/null || { echo "dev: gate-connector exited" >&2; exit 1; }
  sleep 0.1
done
cat >&2 <<MSG

dev: ready. Connect through Gate (masked emails and SSNs, DROP refused):

  PGPASSWORD=app psql -h localhost -p $port -U app -d appdb

  appdb=> select * from customers;
  appdb=> select email as x from customers;   -- still masked
  appdb=> drop table customers;               -- refused by policies/example.rego

The sample JSON API behind Gate (an http resource; inactive customers
filtered out, emails and SSNs masked, admin endpoints refused):

  curl -s -u app:app http://localhost:$port/v1/customers
  curl -s -u app:app http://localhost:$port/v1/admin/keys   # 403
The same sample in MariaDB, through Gate's MySQL port:

  mariadb -h 127.0.0.1 -P $GATE_MYSQL_LISTEN_PORT -u app -papp orders-db

  MariaDB [orders-db]> select * from customers;  -- masked emails and SSNs
  MariaDB [orders-db]> drop table customers;     -- refused

The same sample in MongoDB (nx-27017), through Gate's MongoDB port with pymongo:

  $venv/bin/python -c "import pymongo; print(list(pymongo.MongoClient('mongodb://app:app@127.0.0.1:$GATE_MONGO_LISTEN_PORT/?directConnection=true').app.customers.find({}, {'_id': 0, 'email': 1})))"

A shell on the sample sshd through Gate's SSH port (your key is the identity
app's; the upstream login is Gate's; record: true records it):

  ssh -i $sdir/app_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p $GATE_SSH_LISTEN_PORT app@localhost

The admin UI: open http://localhost:$control_port/ and press Sign in with the key
left empty (docs/admin-ui.md): Overview, Resources, Policies, Audit, Recordings.

The control plane (insecure, local only) answers on http://localhost:$control_port;
the connector is registered to it and enforces its policies within a second:

  curl -s localhost:$control_port/api/v1/connectors
  curl -s -H "Content-Type: application/json" -X POST localhost:$control_port/api/v1/policies -d @docs/examples/close-customers.json
  appdb=> select * from customers;            -- now: customers is closed for maintenance

Recorded sessions (docs/recordings.md) are shipped to the control plane; list and replay them:

  curl -s localhost:$control_port/api/v1/recordings
  curl -s -o session.cast localhost:$control_port/api/v1/recordings/ID/cast && $venv/bin/asciinema play session.cast

Audit events are printed below as JSON lines. Ctrl-C stops everything.
MSG
wait "$connector_pid"

#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:${PGPORT:-5432}: uses a running one,
# starts the machine's cluster, or installs PostgreSQL from Debian's packages and starts it.
set -euo pipefail
PORT="${PGPORT:-5432}"

ready() { pg_isready -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; }

if command -v pg_isready >/dev/null && ready; then
  echo "postgres: already running on 127.0.0.1:$PORT"
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null; then
  echo "postgres: not installed; installing from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /etc/postgresql | sort -V | tail -n1)"
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx main; then
  pg_createcluster "$version" main --port "$PORT" -- --auth=trust >/dev/null
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do
  ready && break
  sleep 1
done
ready || { echo "postgres: did not come up on 127.0.0.1:$PORT" >&2; exit 1; }
# Trust auth for local TCP, as the tests connect as postgres without a password.
hba="/etc/postgresql/$version/main/pg_hba.conf"
if [ -f "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
  sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
fi
echo "postgres: running on 127.0.0.1:$PORT"

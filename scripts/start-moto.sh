#!/usr/bin/env bash
# Starts moto server (S3, SSM, Step Functions look-alike) on 127.0.0.1:${MOTO_PORT:-5055},
# installing moto[server] into the project's .venv when it is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${MOTO_PORT:-5055}"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"

up() { curl -fsS "http://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1; }
if up; then echo "moto: already running on 127.0.0.1:$PORT"; exit 0; fi
# Something holds the port but does not answer as moto (say, a server whose .venv was
# deleted under it): starting another would only fail to bind.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "moto: 127.0.0.1:$PORT is taken by something that is not a working moto server;" \
    "stop it or set MOTO_PORT" >&2
  exit 1
fi

if [ ! -x .venv/bin/moto_server ]; then
  echo "moto: installing moto[server]==$MOTO_VERSION into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
mkdir -p .local
nohup .venv/bin/moto_server -H 127.0.0.1 -p "$PORT" >.local/moto.log 2>&1 &
echo $! > .local/moto.pid
for _ in $(seq 1 60); do
  up && { echo "moto: running on 127.0.0.1:$PORT (pid $(cat .local/moto.pid))"; exit 0; }
  sleep 0.5
done
echo "moto: did not come up; see .local/moto.log" >&2
exit 1

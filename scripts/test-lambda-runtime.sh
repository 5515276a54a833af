#!/usr/bin/env bash
# Every Lambda function invoked through a Lambda Runtime API emulator (cargo-lambda's
# `cargo lambda watch`), the way the Lambda service drives them: the jobnet in order —
# Guard, Ranking, Item (invoked again until done), Genre, Tag, IsActive, Notify — against
# the built-in Rakuten sandbox (`collector sandbox`), the local PostgreSQL (a database of
# its own), a raw-store directory and moto (Step Functions for Guard, SNS for Notify);
# then one bad event, whose error must come back with the Diagnostic's errorType
# (`InvalidInput`), which is what Step Functions matches. Prints one line per invocation.
#
# Needs: scripts/install-tools.sh (.venv: cargo-lambda, boto3), PostgreSQL and moto
# (scripts/start-postgres.sh, scripts/start-moto.sh). Environment: TEST_DATABASE_URL
# (an admin URL, default postgresql://postgres@127.0.0.1:5432/postgres), MOTO_ENDPOINT.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export PATH="$ROOT/.venv/bin:$PATH"
MOTO="${MOTO_ENDPOINT:-http://127.0.0.1:5055}"
ADMIN_URL="${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

work="$(mktemp -d)"
pids=()
db="lambda_emulator_$$"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  # The functions' logs, kept for a look afterwards.
  mkdir -p "$ROOT/.local" && cp "$work/watch.log" "$ROOT/.local/lambda-runtime.log" 2>/dev/null
  wait 2>/dev/null
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # port, what
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.5
  done
  echo "FAILED: $2 never listened on port $1" >&2
  return 1
}

echo "building the collector CLI (for the sandbox and the migrations)"
cargo build -q -p collector --bin collector || exit 1
collector="$ROOT/target/debug/collector"

sandbox_port="$(free_port)"
# 50 ms per answer: slow enough for Item's time box to matter below.
"$collector" sandbox --port "$sandbox_port" --items 200 --rate-limit 0 --latency-ms 50 >"$work/sandbox.log" 2>&1 &
pids+=($!)
wait_port "$sandbox_port" "the sandbox" || exit 1

# moto: the state machine Guard checks for running executions, the topic Notify publishes to.
read -r sm_arn topic_arn < <(MOTO="$MOTO" python3 - <<'PY'
import json, os, boto3
kw = dict(endpoint_url=os.environ["MOTO"], region_name="ap-northeast-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
sfn = boto3.client("stepfunctions", **kw)
sm = sfn.create_state_machine(
    name=f"ichiba-collector-emulator-{os.getpid()}",
    definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
    roleArn="arn:aws:iam::123456789012:role/emulator")
topic = boto3.client("sns", **kw).create_topic(Name=f"ichiba-collector-emulator-{os.getpid()}")
print(sm["stateMachineArn"], topic["TopicArn"])
PY
) || { echo "FAILED: cannot prepare moto at $MOTO" >&2; exit 1; }

export APP_ENV=local
export DATABASE_URL="${ADMIN_URL%/*}/$db"
export RAW_STORE="file://$work/raw"
export RAKUTEN_API_BASE_URL="http://127.0.0.1:$sandbox_port"
export RAKUTEN_APPLICATION_ID=00000000-0000-4000-8000-000000000000 RAKUTEN_ACCESS_KEY=pk_sandbox
export RAKUTEN_REQUESTS_PER_SECOND=100 RANKING_MAX_PAGES=2
# The emulator gives each invocation a short deadline; Item stops this long before it.
export ITEM_DEADLINE_MARGIN_SECS=2
export AWS_ENDPOINT_URL="$MOTO" AWS_REGION=ap-northeast-1 AWS_DEFAULT_REGION=ap-northeast-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
export NOTIFY_SNS_TOPIC_ARN="$topic_arn"
export RUST_LOG=${RUST_LOG:-warn} NO_COLOR=1

"$collector" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }

watch_port="$(free_port)"
cargo lambda watch --ignore-changes --timeout 600 --invoke-address 127.0.0.1 --invoke-port "$watch_port" >"$work/watch.log" 2>&1 &
pids+=($!)
wait_port "$watch_port" "cargo lambda watch" || { cat "$work/watch.log" >&2; exit 1; }

failures=0
# invoke FUNCTION EVENT-JSON [FIELD=VALUE ...] -> the response on stdout; a line on
# stderr. Each FIELD=VALUE must hold in the output document (Python literals: True, 0).
invoke() {
  local fn="$1" event="$2" t0=$SECONDS out
  shift 2
  out="$(cargo lambda invoke "$fn" --invoke-address 127.0.0.1 --invoke-port "$watch_port" --data-ascii "$event" --output-format json 2>"$work/invoke.err")"
  local rc=$?
  if [ $rc -ne 0 ]; then
    printf '%-10s FAILED in %ss: %s\n' "$fn" "$((SECONDS - t0))" "$(tr '\n' ' ' <"$work/invoke.err" | cut -c1-400)" >&2
    return 1
  fi
  python3 - "$fn" "$((SECONDS - t0))" "$out" "$@" <<'PY' >&2 || return 1
import json, sys
fn, secs, out, checks = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
shown = ", ".join(f"{k}={out[k]}" for k in ("status", "done", "proceed", "run_id", "requests", "failure_rate")
                  if isinstance(out, dict) and k in out) or json.dumps(out)
bad = [c for c in checks if str(out.get(c.split("=", 1)[0]) if isinstance(out, dict) else None) != c.split("=", 1)[1]]
print(f"{fn:<10} {'FAILED' if bad else 'ok'} in {secs:>3}s: {shown}" + (f" (expected {', '.join(bad)})" if bad else ""))
sys.exit(1 if bad else 0)
PY
  echo "$out"
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# The sample event of a function (events/), with this run's id.
sample() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["run_id"]=sys.argv[2]; print(json.dumps(d))' "events/$1.json" "$2"; }

now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
guard_event="$(python3 -c 'import json,sys; d=json.load(open("events/guard.json")); d["state_machine_arn"]=sys.argv[1]; d["execution_arn"]=sys.argv[1].replace(":stateMachine:",":execution:")+":emulator"; d["execution_start_time"]=sys.argv[2]; d["input"]={}; print(json.dumps(d))' "$sm_arn" "$now")"
echo "invoking each function through the Lambda runtime emulator (cargo lambda watch; the first invocation of each compiles it) with the sample events of events/"
out="$(invoke guard "$guard_event" proceed=True)" || exit 1
run_id="$(field "$out" run_id)"
invoke ranking "$(sample ranking "$run_id")" status=succeeded done=True >/dev/null || failures=$((failures + 1))
for _ in $(seq 1 20); do
  out="$(invoke item "$(sample item "$run_id")")" || { failures=$((failures + 1)); break; }
  [ "$(field "$out" done)" = True ] && break
done
[ "$(field "$out" status)" = succeeded ] || { echo "FAILED: item did not succeed" >&2; failures=$((failures + 1)); }
invoke genre "$(sample genre "$run_id")" status=succeeded >/dev/null || failures=$((failures + 1))
invoke tag "$(sample tag "$run_id")" status=succeeded >/dev/null || failures=$((failures + 1))
invoke is-active "$(sample is-active "$run_id")" status=succeeded >/dev/null || failures=$((failures + 1))
invoke notify "$(sample notify-success "$run_id")" delivered=True run_closed=True >/dev/null || failures=$((failures + 1))

# A bad event: the error must carry the Diagnostic's errorType.
if cargo lambda invoke ranking --invoke-address 127.0.0.1 --invoke-port "$watch_port" --data-ascii '[]' >"$work/bad.out" 2>&1; then
  echo "FAILED: ranking accepted the event []" >&2
  failures=$((failures + 1))
elif grep -q 'InvalidInput' "$work/bad.out"; then
  printf '%-10s refused the event [] with errorType InvalidInput, as Step Functions expects\n' ranking >&2
else
  echo "FAILED: ranking's error for [] has no errorType InvalidInput: $(cat "$work/bad.out")" >&2
  failures=$((failures + 1))
fi

# Item's time box from the runtime deadline. cargo-lambda's emulator sends a constant
# deadline (600000 ms after 1970), so a runtime API of our own hands out real ones: each
# invocation gets 6 s and Item stops taking items 2 s before. 120 items at 50 ms each take
# at least 6 s, so the first invocation must pause with work left (done: false), whatever
# the machine's speed; the following ones finish the queue. The arm64 bootstrap
# of the suite's sam build runs under qemu-user when it is there (as deployed), else the
# host build.
export DATABASE_URL="${ADMIN_URL%/*}/${db}_timebox"
"$collector" migrate >"$work/migrate2.log" 2>&1 || { cat "$work/migrate2.log" >&2; exit 1; }
tb_run="$(RANKING_MAX_PAGES=4 "$collector" job ranking --output json 2>"$work/ranking2.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')"
item_cmd=("$ROOT/target/debug/item") how="host build"
arm_item="$ROOT/.local/sam-build/ItemFunction/bootstrap"
if [ -x "$arm_item" ] && command -v qemu-aarch64 >/dev/null \
   && [ "$(python3 -c 'import sys; h=open(sys.argv[1],"rb").read(20); print(int.from_bytes(h[18:20],"little"))' "$arm_item")" = 183 ]; then
  item_cmd=(qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_item") how="arm64 bootstrap under qemu-aarch64"
fi
api_port="$(free_port)"
events=()
for _ in $(seq 1 20); do events+=("{\"run_id\": \"$tb_run\"}"); done
python3 scripts/lambda-runtime-api.py --port "$api_port" --deadline-secs 6 --timeout 300 --until-done "${events[@]}" >"$work/timebox.out" 2>"$work/timebox.err" &
api_pid=$!
pids+=("$api_pid")
wait_port "$api_port" "the runtime API" || exit 1
ITEM_DEADLINE_MARGIN_SECS=2 ITEM_BATCH_SIZE=10 AWS_LAMBDA_RUNTIME_API="127.0.0.1:$api_port" AWS_LAMBDA_FUNCTION_NAME=item \
  AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 \
  "${item_cmd[@]}" >"$work/item-timebox.log" 2>&1 &
item_pid=$!
pids+=("$item_pid")
wait "$api_pid"; api_rc=$?
kill "$item_pid" 2>/dev/null
if ! python3 - "$work/timebox.out" "$how" <<'PY'
import json, sys
answers = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
docs = [a.get("response") for a in answers]
if not docs:
    sys.exit("no invocation was answered")
for i, d in enumerate(docs, 1):
    if not isinstance(d, dict):
        sys.exit(f"invocation {i} failed: {answers[i - 1]}")
    print(f"item       {sys.argv[2]}, deadline 6 s, invocation {i}: status={d['status']}, done={d['done']}, "
          f"saved={d['extra'].get('saved')}, remaining={d['extra'].get('remaining')}", file=sys.stderr)
first, last = docs[0], docs[-1]
assert len(docs) >= 2, f"one invocation did it all: {first}"
assert first["done"] is False and first["status"] == "running" and first["extra"]["saved"] > 0, \
    f"the first invocation did not pause before its deadline with work done: {first}"
assert last["done"] is True and last["status"] == "succeeded" and last["extra"]["remaining"] == 0, \
    f"the queue was not finished: {last}"
PY
then
  echo "FAILED: Item's time box from the runtime deadline (runtime API exit $api_rc)" >&2
  tail -20 "$work/item-timebox.log" >&2
  failures=$((failures + 1))
fi
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS ${db}_timebox WITH (FORCE)" >/dev/null 2>&1

if [ $failures -ne 0 ]; then
  echo "FAILED: $failures invocation(s) through the runtime emulator" >&2
  grep -v "^ *Compiling" "$work/watch.log" | tail -40 >&2
  exit 1
fi
echo "every function answered through the Lambda runtime emulator (run $run_id)"

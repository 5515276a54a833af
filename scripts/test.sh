#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. services: PostgreSQL and moto server (started, or installed and started, if needed)
#   2. tools: the Python and Node tooling of scripts/install-tools.sh (idempotent)
#   3. cargo fmt --check, cargo clippy --all-targets -D warnings
#   4. the state machine's Node-side checks and the infrastructure checks (sam validate
#      --lint, cfn-lint, the transformed-template tests, sam build, actionlint)
#   5. every Rust test of the workspace (real PostgreSQL, moto, the sandbox over HTTP,
#      the state machine under asl-runner and aws-local-stepfunctions)
# Extra arguments go to `cargo test` (e.g. a test name filter).
# Disk: a full run needs about 4.5 GB under target/ and 1.3 GB of tools (.venv,
# node_modules); it prints the free space first and what target/ holds at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

# Warn up front rather than let a linker die of a full disk halfway through.
free_mb=$(df -Pm . | awk 'NR == 2 {print $4}')
echo "== disk: ${free_mb} MB free here"
if [ "${free_mb:-0}" -lt 8000 ]; then
  echo "warning: under 8 GB free; the build may run out of disk (cargo clean frees target/)" >&2
fi

echo "== services"
scripts/start-postgres.sh
scripts/start-moto.sh
echo "== tools"
scripts/install-tools.sh

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:${PGPORT:-5432}/postgres}"
export MOTO_ENDPOINT="${MOTO_ENDPOINT:-http://127.0.0.1:${MOTO_PORT:-5055}}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== state machine (Node side)"
scripts/test-statemachine.sh --node-only
echo "== infrastructure"
scripts/test-infra.sh
echo "== cargo test"
# --tests: every crate's unit tests and every integration test, honouring `test = false`
# (the Lambda mains); clippy above already compiled the bench and every other target.
cargo test --workspace --tests "$@"
echo "== all checks passed in $((SECONDS - started)) s ($(du -sm target | cut -f1) MB in target/)"

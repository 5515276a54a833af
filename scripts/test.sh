#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. services: PostgreSQL and moto server (started, or installed and started, if needed)
#   2. tools: the Python and Node tooling of scripts/install-tools.sh (idempotent)
#   3. cargo fmt --check, cargo clippy --all-targets -D warnings
#   4. every Rust test of the workspace (real PostgreSQL, moto, the sandbox over HTTP,
#      the state machine under asl-runner and aws-local-stepfunctions)
#   5. the state machine's Node-side checks and the infrastructure checks (sam validate
#      --lint, cfn-lint, the transformed-template tests, sam build, actionlint)
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

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
cargo test --workspace --all-targets "$@"
echo "== all checks passed in $((SECONDS - started)) s"

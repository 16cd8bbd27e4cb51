#!/usr/bin/env bash
# Builds the gateway of an earlier commit (tests/previous-gateway.rev: the last release whose
# gateway speaks the previous counter protocol) into target/previous-gateway/<rev>/build/, for the
# end-to-end test that runs it against this build's counters Worker (a gateway rolled back, or
# not deployed yet, while the new counters Worker is live; gateway_core::protocol). Cached by
# commit: a second run takes no time. When the counter protocol changes, move the pin to the
# last commit that speaks the version before it.
set -euo pipefail
cd "$(dirname "$0")/.."

rev=$(tr -d '[:space:]' < tests/previous-gateway.rev)
out=target/previous-gateway/$rev
if [ -f "$out/src/build/entry.mjs" ] && [ -f "$out/src/build/index_bg.wasm" ]; then
  echo "previous gateway $rev: built already ($out/src/build)"
  exit 0
fi
if ! git cat-file -e "$rev^{commit}" 2>/dev/null; then
  echo "previous gateway: commit $rev is not in this clone (tests/previous-gateway.rev); a shallow clone cannot run the protocol test: fetch the history (git fetch --unshallow)" >&2
  exit 1
fi
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$CARGO_BIN/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/miniflare/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/miniflare/node_modules/.bin/esbuild}"
export PATH="$CARGO_BIN:$PATH"
rm -rf "$out"
mkdir -p "$out/src"
git archive "$rev" | tar -x -C "$out/src"
echo "previous gateway $rev: building (its own target folder: a cold build the first time)"
(
  cd "$out/src"
  GATEWAY_BUILD_COMMIT=$rev CARGO_TARGET_DIR="$PWD/../target" worker-build --release
  # That release's entry module (its Makefile's copy step).
  cp durable/entry.mjs build/entry.mjs
)
echo "previous gateway $rev: built ($out/src/build)"

#!/usr/bin/env bash
# `make scan`: the local DAST scanners against the gateway in `wrangler dev` (ZAP itself cannot
# run here; CI's security workflow runs ZAP and then this): schemathesis with and without a token
# over openapi.json, and wapiti's attack modules. Reports and summaries in target/scan/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! command -v wapiti >/dev/null; then
  echo "scan: installing wapiti (Debian package)"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends wapiti
fi
make --no-print-directory build
cargo build -q -p gateway-demo -p secrets-sync --locked
cargo test -p gateway-e2e --locked --test e2e -- dast:: --include-ignored
echo
echo "scan: summaries"
for f in target/scan/*/summary.txt; do
  printf '  %s\n' "$(cat "$f")"
done

#!/usr/bin/env bash
# `make test`: the whole suite, phase by phase, with the time of each. Exits non-zero on the
# first failing phase. The end-to-end phase starts its own processes and stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

phase_names=()
phase_secs=()
run_phase() {
  local name=$1
  shift
  printf '\n==> %s\n' "$name"
  local start=$SECONDS
  if ! "$@"; then
    phase_names+=("$name (FAILED)")
    phase_secs+=($((SECONDS - start)))
    printf '<== %s: FAILED after %ss\n' "$name" "$((SECONDS - start))"
    exit 1
  fi
  phase_names+=("$name")
  phase_secs+=($((SECONDS - start)))
  printf '<== %s: %ss\n' "$name" "$((SECONDS - start))"
}
summary() {
  printf '\nPhase times:\n'
  local i
  for i in "${!phase_names[@]}"; do
    printf '  %-28s %5ss\n' "${phase_names[$i]}" "${phase_secs[$i]}"
  done
  printf '  %-28s %5ss\n' "total" "$SECONDS"
}
trap summary EXIT

run_phase "setup" scripts/setup.sh
run_phase "rustfmt" cargo fmt --all -- --check
run_phase "clippy (native)" cargo clippy --workspace --all-targets --locked -- -D warnings
run_phase "clippy (wasm32)" cargo clippy -p edge-gateway -p gateway-durable --target wasm32-unknown-unknown --locked -- -D warnings
run_phase "clippy (wasm32, bench build)" cargo clippy -p edge-gateway --features bench --target wasm32-unknown-unknown --locked -- -D warnings
core_is_pure() {
  # The domain crate must not depend on any Workers binding crate.
  local found
  found=$(cargo tree -p gateway-core -e normal --prefix none --locked | grep -E '^(worker|worker-sys|wasm-bindgen|js-sys|web-sys) ' || true)
  if [ -n "$found" ]; then
    echo "gateway-core depends on Workers bindings:" >&2
    echo "$found" >&2
    return 1
  fi
  echo "gateway-core has no Workers binding dependency"
}
run_phase "core purity" core_is_pure
release_has_no_bench_code() {
  # The deployable build must not contain the benchmark endpoints (feature `bench`). The wasm
  # keeps its function names, so look for the module's symbols; first prove the names are there,
  # so the check cannot pass vacuously.
  local names
  names=$(strings -n 8 build/index_bg.wasm)
  if ! grep -q "edge_gateway::pipeline::" <<<"$names"; then
    echo "build/index_bg.wasm has no function names: cannot check it" >&2
    return 1
  fi
  if grep -q "edge_gateway::bench::" <<<"$names"; then
    echo "build/index_bg.wasm contains the benchmark module: it was built with --features bench" >&2
    return 1
  fi
  echo "build/index_bg.wasm has no benchmark code"
}
workflow_lint() {
  # Every workflow passes actionlint and zizmor (offline: no GitHub API calls, any severity
  # fails), and the ZAP gate script fails on a high-risk report and passes a clean one.
  .tools/py/bin/actionlint .github/workflows/*.yml
  .tools/py/bin/zizmor --offline --no-progress .github/workflows/
  if scripts/zap-gate.sh tests/fixtures/zap-report-high.json >/dev/null 2>&1; then
    echo "zap-gate.sh passed a report with a high-risk alert" >&2
    return 1
  fi
  scripts/zap-gate.sh tests/fixtures/zap-report-clean.json
}
run_phase "workflow lint" workflow_lint
run_phase "deploy scripts" node --test scripts/deploy-config.test.mjs
run_phase "links" node scripts/check-links.mjs
run_phase "native tests" cargo test --workspace --locked --exclude gateway-e2e
run_phase "wasm build" make --no-print-directory build
run_phase "release build check" release_has_no_bench_code
run_phase "runtime-level tests (workerd)" bash -c 'cd miniflare && node --test counters.test.mjs shim.test.mjs'
deployability() {
  # Both Workers bundle in every environment and bind as intended (a dry run: no account, no
  # migration), and `make deploy`'s own dry run goes through both paths for both environments.
  node scripts/check-deployable.mjs
  local secrets env migration
  secrets=$(mktemp)
  chmod 600 "$secrets"
  echo '{"GATEWAY_SIGNING_KEYS":"dry-run-placeholder"}' > "$secrets"
  for env in staging production; do
    for migration in create transfer; do
      DEPLOY_SKIP_BUILD=1 ENV=$env COUNTERS_MIGRATION=$migration DRY_RUN=1 SECRETS_FILE=$secrets scripts/deploy.sh > target/deploy-dry-run.log 2>&1 || {
        cat target/deploy-dry-run.log >&2
        rm -f "$secrets"
        return 1
      }
      grep -q "3/3 smoke check skipped" target/deploy-dry-run.log
    done
  done
  rm -f "$secrets"
  # Without ENV or COUNTERS_MIGRATION it refuses, before touching anything.
  if scripts/deploy.sh > target/deploy-refused.log 2>&1 || ! grep -q "ENV is required" target/deploy-refused.log; then
    echo "deploy.sh ran without ENV" >&2
    return 1
  fi
  if ENV=staging scripts/deploy.sh > target/deploy-refused.log 2>&1 || ! grep -q "COUNTERS_MIGRATION is required" target/deploy-refused.log; then
    echo "deploy.sh ran without COUNTERS_MIGRATION" >&2
    return 1
  fi
  echo "make deploy: dry runs of staging and production (create, transfer) passed; bare runs refused"
}
run_phase "deployability (dry run)" deployability
run_phase "demo peers and sync job build" cargo build -p gateway-demo -p secrets-sync --locked
run_phase "previous gateway build" scripts/build-previous.sh
run_phase "end-to-end (wrangler dev)" cargo test -p gateway-e2e --locked --lib --test e2e

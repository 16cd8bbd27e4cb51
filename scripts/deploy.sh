#!/usr/bin/env bash
# `make deploy ENV=staging|production COUNTERS_MIGRATION=create|transfer [DRY_RUN=1]`: deploys
# the two Workers in order (docs/deploy.md):
#   1. the counters Worker (durable/wrangler.toml), with its Durable Object migration;
#   2. the gateway (wrangler.toml), with its secrets in the same version (`--secrets-file`), so
#      its first version already serves, and SECRETS_VERSION as a var;
#   3. a smoke check against the deployed URL (scripts/smoke.mjs): health names this build, and a
#      limited route answers 200 with RateLimit headers counted by the counters Worker.
#
# Inputs (environment):
#   ENV                 staging | production (required; a bare deploy is refused)
#   COUNTERS_MIGRATION  create   : the counters Worker creates its class (a fresh account), or
#                                  has it already (every later deploy: wrangler sends only
#                                  migrations newer than the script's last applied tag)
#                       transfer : once, when the gateway script itself still holds RateLimiter
#                                  objects (deployed before the split): they move to the
#                                  counters Worker with their counts and revocations
#                       Required: the script never guesses which applies.
#   DRY_RUN=1           bundle and check both Workers (`wrangler deploy --dry-run`), read Vault
#                       without writing; no upload, no smoke check (said so)
#   SECRETS_FILE        a JSON secrets file of your own (outside the audited Vault flow);
#                       without it, the Vault sync job writes one (mode 0600, removed on exit)
#   SMOKE_URL           the deployed base URL (default: the workers.dev URL wrangler reports)
#   SMOKE_TOKEN         an access token for SMOKE_PATH on this environment (required unless
#                       DRY_RUN=1)
#   SMOKE_PATH          a limited GET route the token may call (default /api/transactions)
#   CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID   for wrangler (not needed for DRY_RUN=1)
#   VAULT_ADDR and the login of secrets-sync.toml's environment (docs/secrets.md)
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  printf 'deploy: %s\n' "$*" >&2
  exit 2
}
say() { printf 'deploy: %s\n' "$*"; }

ENV=${ENV:-}
COUNTERS_MIGRATION=${COUNTERS_MIGRATION:-}
DRY_RUN=${DRY_RUN:-}
SMOKE_PATH=${SMOKE_PATH:-/api/transactions}
case "$ENV" in
  staging | production) ;;
  "") die "ENV is required: make deploy ENV=staging|production COUNTERS_MIGRATION=create|transfer (docs/deploy.md)" ;;
  *) die "ENV must be staging or production, not '$ENV'" ;;
esac
case "$COUNTERS_MIGRATION" in
  create | transfer) ;;
  "") die "COUNTERS_MIGRATION is required: 'create' (a fresh account, and every deploy after the first) or 'transfer' (once, when the gateway script still holds its own RateLimiter objects); see docs/deploy.md" ;;
  *) die "COUNTERS_MIGRATION must be create or transfer, not '$COUNTERS_MIGRATION'" ;;
esac
case "$DRY_RUN" in
  "" | 0) DRY_RUN= ;;
  1) ;;
  *) die "DRY_RUN must be 1 or unset" ;;
esac
if [ -z "$DRY_RUN" ]; then
  [ -n "${SMOKE_TOKEN:-}" ] || die "SMOKE_TOKEN is required: an access token for $SMOKE_PATH on $ENV, for the smoke check that ends the deploy"
  [ -n "${CLOUDFLARE_API_TOKEN:-}" ] || die "CLOUDFLARE_API_TOKEN is required (docs/deploy.md, step 2)"
fi
if [ -n "${SECRETS_FILE:-}" ] && [ ! -r "$SECRETS_FILE" ]; then
  die "SECRETS_FILE $SECRETS_FILE cannot be read"
fi

# Placeholders left in this environment's configuration would deploy a gateway for example.com.
placeholders=$(node scripts/deploy-config.mjs placeholders "$ENV")
if [ -n "$placeholders" ]; then
  if [ -n "$DRY_RUN" ]; then
    say "placeholders still in the $ENV configuration (a real deploy refuses them):"
    printf '  %s\n' "$placeholders"
  else
    die "replace the placeholders in the $ENV configuration first (docs/deploy.md, step 1):
$placeholders"
  fi
fi

commit=${GATEWAY_BUILD_COMMIT:-$(cat target/build-commit 2>/dev/null || echo unknown)}
if [ -z "$DRY_RUN" ] && [[ "$commit" == *-dirty || "$commit" == unknown ]]; then
  die "the working tree has uncommitted changes (build $commit): deploy a commit, so /_gateway/health names exactly what runs"
fi
if [ -n "${DEPLOY_SKIP_BUILD:-}" ]; then
  for built in build/index.js durable/build/index.js; do
    [ -f "$built" ] || die "$built is missing: run make build"
  done
else
  make --no-print-directory build
fi

export CI=true WRANGLER_SEND_METRICS=false
wrangler=miniflare/node_modules/.bin/wrangler
work=$(mktemp -d)
chmod 700 "$work"
counters_config=durable/wrangler.toml
cleanup() {
  rm -rf "$work"
  rm -f durable/wrangler.transfer.toml
}
trap cleanup EXIT

# 1. The counters Worker. A transfer deploys a copy of its configuration whose migration moves
#    the class from the gateway script instead of creating it.
if [ "$COUNTERS_MIGRATION" = transfer ]; then
  counters_config=durable/wrangler.transfer.toml
  node scripts/deploy-config.mjs transfer "$ENV" > "$counters_config"
  say "counters Worker: transfer migration from $(node scripts/deploy-config.mjs gateway-script "$ENV")"
fi
dry=()
[ -n "$DRY_RUN" ] && dry=(--dry-run --outdir "$work/counters-bundle")
say "1/3 counters Worker ($ENV)"
"$wrangler" deploy -c "$counters_config" --env "$ENV" "${dry[@]}"

# 2. The gateway, with its secrets in the same version.
secrets_args=()
vars_args=()
if [ -n "${SECRETS_FILE:-}" ]; then
  say "secrets: from $SECRETS_FILE (outside the audited Vault flow)"
  secrets_args=(--secrets-file "$SECRETS_FILE")
else
  secrets_json="$work/secrets.json"
  sync_args=(--env "$ENV" --target secrets-file --out "$secrets_json")
  [ -n "$DRY_RUN" ] && sync_args+=(--dry-run)
  audit=$(cargo run --quiet --release --locked -p secrets-sync -- "${sync_args[@]}") ||
    die "the Vault sync failed; nothing was deployed past the counters Worker (its audit line: secrets-sync-audit.log)"
  fingerprint=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).fingerprint ?? "")' "$audit")
  [ -n "$fingerprint" ] || die "the Vault sync reported no fingerprint"
  vars_args=(--var "SECRETS_VERSION:$fingerprint")
  if [ -z "$DRY_RUN" ]; then
    secrets_args=(--secrets-file "$secrets_json")
  fi
  say "secrets: from Vault ($(node -e 'const a = JSON.parse(process.argv[1]); process.stdout.write(a.secrets.map((s) => `${s.name}@${s.versions.join(",")}`).join(" "))' "$audit"))"
fi
say "2/3 gateway ($ENV)"
output="$work/wrangler-output.ndjson"
dry=()
[ -n "$DRY_RUN" ] && dry=(--dry-run --outdir "$work/gateway-bundle")
WRANGLER_OUTPUT_FILE_PATH="$output" "$wrangler" deploy -c wrangler.toml --env "$ENV" \
  "${secrets_args[@]}" "${vars_args[@]}" "${dry[@]}"
[ -n "${secrets_json:-}" ] && rm -f "$secrets_json"

# 3. The smoke check.
if [ -n "$DRY_RUN" ]; then
  say "3/3 smoke check skipped (DRY_RUN=1: nothing was uploaded)"
  exit 0
fi
url=${SMOKE_URL:-$(node scripts/deploy-config.mjs deployed-url "$output")}
[ -n "$url" ] || die "no deployed URL to check: wrangler reported no workers.dev URL, set SMOKE_URL"
say "3/3 smoke check of $url"
SMOKE_TOKEN="$SMOKE_TOKEN" node scripts/smoke.mjs "$url" "$SMOKE_PATH" "$commit"

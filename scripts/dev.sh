#!/usr/bin/env bash
# `make dev`: the demo origin, the local issuer and the gateway (wrangler dev), all on
# 127.0.0.1, then a ready-to-paste curl with a fresh token. Ctrl-C stops everything it started.
#
# Ports: GATEWAY_PORT (8787), ORIGIN_PORT (9100), ISSUER_PORT (9101), MACHINES_PORT (9102),
# INSPECTOR_PORT (9229). Signing keys are generated on first run into .local/issuer/ (the demo
# issuer, `users`) and .local/machines/ (the OpenID provider, `machines`), both git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY_PORT=${GATEWAY_PORT:-8787}
ORIGIN_PORT=${ORIGIN_PORT:-9100}
ISSUER_PORT=${ISSUER_PORT:-9101}
MACHINES_PORT=${MACHINES_PORT:-9102}
INSPECTOR_PORT=${INSPECTOR_PORT:-9229}
DEMO=target/release/gateway-demo
KEYS=.local/issuer
ISSUER_URL="http://127.0.0.1:$ISSUER_PORT"
MACHINES_URL="http://127.0.0.1:$MACHINES_PORT"
ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
AUDIENCE=https://api.example.com
mkdir -p .local/logs .local/machines

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  echo "dev: stopped"
}
trap cleanup EXIT INT TERM

wait_for() {
  local url=$1 name=$2 pid=$3
  for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dev: $name exited; see .local/logs/$name.log" >&2
      tail -20 ".local/logs/$name.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "dev: $name did not answer at $url within 60 s" >&2
  exit 1
}

# Each service runs in its own session (setsid), so cleanup can stop its whole process group
# (wrangler's workerd children included); this script's trap does the stopping.
setsid "$DEMO" origin --listen "127.0.0.1:$ORIGIN_PORT" > .local/logs/origin.log 2>&1 &
pids+=($!)
setsid "$DEMO" issuer --listen "127.0.0.1:$ISSUER_PORT" --keys "$KEYS" --issuer "$ISSUER_URL" > .local/logs/issuer.log 2>&1 &
pids+=($!)
setsid node miniflare/peers/oidc-provider.mjs serve --port "$MACHINES_PORT" --keys .local/machines/keys.json \
  > .local/logs/machines.log 2>&1 &
pids+=($!)
wait_for "$ORIGIN_URL/api/health" origin "${pids[0]}"
wait_for "$ISSUER_URL/jwks" issuer "${pids[1]}"
wait_for "$MACHINES_URL/jwks" machines "${pids[2]}"

# Short JWKS timings locally, so `gateway-demo rotate` shows within seconds.
TIMINGS='"jwks_min_ttl_seconds":1,"jwks_default_ttl_seconds":5,"jwks_refetch_interval_seconds":1'
ISSUERS="{\"users\":{\"issuer\":\"$ISSUER_URL\",\"jwks_uri\":\"$ISSUER_URL/jwks\",$TIMINGS},"
ISSUERS+="\"machines\":{\"issuer\":\"$MACHINES_URL\",\"jwks_uri\":\"$MACHINES_URL/jwks\",$TIMINGS}}"
mkdir -p .local/wrangler-config
CI=true WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false XDG_CONFIG_HOME="$PWD/.local/wrangler-config" \
  setsid miniflare/node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$GATEWAY_PORT" --inspector-port "$INSPECTOR_PORT" \
  --persist-to .wrangler/state --var "ORIGIN_URL:$ORIGIN_URL" --var "GATEWAY_ISSUERS:$ISSUERS" \
  > .local/logs/gateway.log 2>&1 < /dev/null &
pids+=($!)
wait_for "$GATEWAY_URL/_gateway/health" gateway "${pids[3]}"

TOKEN=$("$DEMO" token --keys "$KEYS" --issuer "$ISSUER_URL" --audience "$AUDIENCE" --org acme --tier pro \
  --scopes "transactions:read transactions:write transactions:export reports:generate")
cat <<MSG

================================================================================
Edge gateway:  $GATEWAY_URL   (wrangler dev; its log follows below, also in .local/logs/gateway.log)
Demo origin:   $ORIGIN_URL    (echoes what it receives)
Local issuer:  $ISSUER_URL    (issuer "users"; discovery: $ISSUER_URL/.well-known/openid-configuration)
OpenID provider: $MACHINES_URL (issuer "machines": oidc-provider, client credentials, RS256)
Issuer keys:   $KEYS/keys.json and .local/machines/keys.json (generated on first run, git-ignored)

Try it (the token is valid for 15 minutes; \`make token\` mints more):

curl -s -H "Authorization: Bearer $TOKEN" "$GATEWAY_URL/api/transactions?limit=5"

A machine client's token from the real OpenID provider (client credentials):
TOKEN=\$(curl -s -u acme-batch:acme-batch-secret -d grant_type=client_credentials \\
  -d scope=transactions:read -d resource=https://api.example.com $MACHINES_URL/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
curl -s -H "Authorization: Bearer \$TOKEN" "$GATEWAY_URL/api/transactions"

Without a token (401), and with the wrong method (405):
curl -si "$GATEWAY_URL/api/transactions"
curl -si -X DELETE "$GATEWAY_URL/api/transactions"

Ctrl-C stops everything.
================================================================================
MSG
tail -n 0 -f .local/logs/gateway.log &
tail_pid=$!
pids+=("$tail_pid")
wait "${pids[3]}"

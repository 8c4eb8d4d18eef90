#!/bin/sh
# One-time setup of the production Vault (OpenBao), run by an operator after `bao operator init`
# and unseal, with the initial root token in BAO_TOKEN:
#   docker compose exec -e BAO_TOKEN=<root token> vault sh /openbao/config/bootstrap.sh
# It enables KV v2 at secret/, AppRole auth, the least-privilege policy `sting-airflow`, and the
# AppRole Airflow logs in with; it prints VAULT_ROLE_ID and VAULT_SECRET_ID for the .env file.
# Then revoke the root token (bao token revoke <root token>): nothing in the stack uses it.
set -eu
export BAO_ADDR="${BAO_ADDR:-http://127.0.0.1:8200}"
bao secrets list | grep -q '^secret/' || bao secrets enable -path=secret -version=2 kv
bao auth list | grep -q '^approle/' || bao auth enable approle
bao policy write sting-airflow "${BAO_CONFIG_DIR:-/openbao/config}/sting-airflow.hcl"
bao write auth/approle/role/sting-airflow token_policies=sting-airflow token_ttl=1h token_max_ttl=4h \
    secret_id_ttl=0
echo "VAULT_ROLE_ID=$(bao read -field=role_id auth/approle/role/sting-airflow/role-id)"
echo "VAULT_SECRET_ID=$(bao write -f -field=secret_id auth/approle/role/sting-airflow/secret-id)"

"""Hooks own the connections: Vault (comb credentials and salts) and the application database."""

from __future__ import annotations

from airflow.providers.hashicorp.hooks.vault import VaultHook
from airflow.sdk import BaseHook

from include.settings import get_settings


class SecretNotFoundError(LookupError):
    """No secret at a Vault path. The message names the path, never a value."""


class HoneyCombVaultHook(VaultHook):
    """Reads comb secrets (KV v2) by the `vault_path` of a comb definition.

    Uses the `vault_default` connection (token auth locally; any auth the provider supports in
    production). Secrets are returned to the caller, never logged.
    """

    def __init__(self, vault_conn_id: str = "vault_default", **kwargs):
        super().__init__(vault_conn_id=vault_conn_id, **kwargs)

    def get_comb_secret(self, vault_path: str, required: tuple[str, ...] = ()) -> dict:
        path = vault_path.strip("/")
        try:
            secret = self.get_secret(secret_path=path)
        except Exception as e:  # hvac raises InvalidPath / Forbidden; name the path, not content
            raise SecretNotFoundError(
                f"cannot read Vault secret '{path}': {type(e).__name__}"
            ) from None
        if not secret:
            raise SecretNotFoundError(f"no secret at Vault path '{path}' (KV v2, mount 'secret')")
        missing = [k for k in required if not secret.get(k)]
        if missing:
            raise SecretNotFoundError(f"Vault secret '{path}' lacks key(s): {', '.join(missing)}")
        return secret


def app_dsn(conn_id: str = "sting_db") -> str:
    """DSN of the application database from the Airflow connection (Vault backend or env)."""
    try:
        c = BaseHook.get_connection(conn_id)
    except Exception:
        return get_settings().app_dsn
    auth = c.login or "postgres"
    if c.password:
        from urllib.parse import quote

        auth += ":" + quote(c.password, safe="")
    return f"postgresql://{auth}@{c.host}:{c.port or 5432}/{c.schema or 'sting'}"

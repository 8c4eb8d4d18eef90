"""Hooks own the connections: Vault (comb credentials and salts), the application database
(`sting_db`), object storage (`sting_s3`) and Redis (`sting_redis`)."""

from __future__ import annotations

from airflow.providers.hashicorp.hooks.vault import VaultHook
from airflow.providers.postgres.hooks.postgres import PostgresHook


class SecretNotFoundError(LookupError):
    """No secret at a Vault path (or no permission to read it). The message names the path, never
    a value. Deterministic: fails the run at once."""


class VaultUnavailableError(ConnectionError):
    """Vault could not be reached or answered with a server error: transient, retried."""


class HoneyCombVaultHook(VaultHook):
    """Reads comb secrets (KV v2) by the `vault_path` of a comb definition.

    Uses the `vault_default` connection (token auth locally; any auth the provider supports in
    production). Secrets are returned to the caller, never logged.
    """

    def __init__(self, vault_conn_id: str = "vault_default", **kwargs):
        super().__init__(vault_conn_id=vault_conn_id, **kwargs)

    def get_comb_secret(self, vault_path: str, required: tuple[str, ...] = ()) -> dict:
        import hvac.exceptions
        import requests

        path = vault_path.strip("/")
        try:
            secret = self.get_secret(secret_path=path)
        except (requests.exceptions.RequestException, hvac.exceptions.VaultDown, hvac.exceptions.InternalServerError,
                hvac.exceptions.BadGateway, hvac.exceptions.RateLimitExceeded) as e:
            raise VaultUnavailableError(
                f"Vault unreachable while reading '{path}' ({type(e).__name__}); the step is retried") from None
        except hvac.exceptions.VaultError as e:  # missing path, no permission (Forbidden), bad login
            raise SecretNotFoundError(f"cannot read Vault secret '{path}': {type(e).__name__}") from None
        if not secret:
            raise SecretNotFoundError(f"no secret at Vault path '{path}' (KV v2, mount 'secret')")
        missing = [k for k in required if not secret.get(k)]
        if missing:
            raise SecretNotFoundError(f"Vault secret '{path}' lacks key(s): {', '.join(missing)}")
        return secret


    def source_secret(self, vault_path: str | None, required: tuple[str, ...] = ()) -> dict | None:
        """A comb's source secret (None for open sources), its secret-looking values registered
        with the task log masker."""
        if not vault_path:
            return None
        from airflow.sdk.log import mask_secret

        from include.privacy.profiles import is_secret_key
        from include.redaction import Redactor

        secret = self.get_comb_secret(vault_path, required)
        # every literal form (escaped, URL-encoded, base64 fragments, hex): a second line behind
        # the sources' own redaction (include/redaction.py)
        forms = Redactor([v for k, v in secret.items() if v and is_secret_key(k)]).literal_forms()
        for form in forms:
            mask_secret(form)
        return secret

    def scrubbing_secrets(self, salt_path: str, with_tokens: bool) -> tuple[str, object | None]:
        """(hash key, token vault or None): what the privacy engine needs, masked in task logs.
        The hash key is the HMAC key of every `hash` action (`hash_key` at `salt_path`, with its
        `hash_key_version`, kept in `self.hash_key_version` for the outputs' metadata). The token
        vault (keys in Vault, tokens in the application database) only when a profile or a rule
        may tokenize."""
        from airflow.sdk.log import mask_secret

        secret = self.get_comb_secret(salt_path, ("hash_key",))
        key = str(secret["hash_key"])
        mask_secret(key)
        self.hash_key_version = str(secret.get("hash_key_version") or "1")
        if not with_tokens:
            return key, None
        from include.privacy.tokens import VAULT_PATH, TokenVault

        keys = self.get_comb_secret(VAULT_PATH, ("hmac_key", "fernet_key"))
        mask_secret(keys["hmac_key"])
        mask_secret(keys["fernet_key"])
        return key, TokenVault(keys["hmac_key"], keys["fernet_key"], app_dsn())


class StingDbHook(PostgresHook):
    """The application database (`sting_db`): a libpq conninfo built from the Airflow connection
    (host, port, login, password, schema, extras) for the library's psycopg code. No fallback: a
    missing or broken connection fails the task with the hook's own error."""

    def __init__(self, postgres_conn_id: str = "sting_db", **kwargs):
        super().__init__(postgres_conn_id=postgres_conn_id, **kwargs)

    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        c = self.connection
        args = {"host": c.host, "port": c.port or 5432, "user": c.login, "password": c.password,
                "dbname": self.database or c.schema}
        extras = {k: v for k, v in c.extra_dejson.items()
                  if k not in self.ignored_extra_options and k != "cursor" and isinstance(v, str | int)}
        return make_conninfo(**{k: v for k, v in {**args, **extras}.items() if v not in (None, "")})


def app_dsn(conn_id: str = "sting_db") -> str:
    """The application database's conninfo, from the `sting_db` connection through its hook."""
    return StingDbHook(postgres_conn_id=conn_id).conninfo()


def airflow_clients(db_conn_id: str = "sting_db", s3_conn_id: str = "sting_s3", redis_conn_id: str = "sting_redis"):
    """Plain clients for library code, each built by its provider hook on first use."""
    from include.clients import Clients

    def s3():
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=s3_conn_id).get_conn()

    def redis():
        from airflow.providers.redis.hooks.redis import RedisHook

        return RedisHook(redis_conn_id=redis_conn_id).get_conn()

    def secret(path: str) -> dict:  # through the Vault hook: values masked in task logs
        return HoneyCombVaultHook().source_secret(path) or {}

    return Clients(dsn=app_dsn(db_conn_id), s3_factory=s3, redis_factory=redis, secret_reader=secret,
                   airflow_metadata_url_factory=airflow_metadata_url)


METADATA_CONN = "sting_airflow_metadata"


def airflow_metadata_url(conn_id: str = METADATA_CONN) -> str | None:
    """The SQLAlchemy URL of Airflow's metadata database from the maintenance connection
    `sting_airflow_metadata` (postgres; its password masked in logs), or None when the deployment
    has not configured one. Airflow 3 tasks cannot reach the metadata database through the
    configuration (the supervisor replaces it with `airflow-db-not-allowed:///`): metadata cleanup
    is granted explicitly, by this connection, to the steps that need it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret

    try:
        c = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    if c.password:
        mask_secret(c.password)
    from urllib.parse import quote

    auth = quote(c.login or "", safe="") + (":" + quote(c.password, safe="") if c.password else "")
    return (f"postgresql+psycopg2://{auth}{'@' if auth else ''}{c.host or '127.0.0.1'}:{c.port or 5432}/"
            f"{quote(c.schema or 'airflow', safe='')}")

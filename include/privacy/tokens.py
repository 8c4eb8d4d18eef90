"""Reversible tokenization: a token vault in PostgreSQL, the encryption key in Vault."""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.compute as pc

from include.db import connect
from include.privacy.actions import _as_string, keyed_token

VAULT_PATH = "sting/tokenization"  # {"hmac_key": ..., "fernet_key": ...}


class TokenVault:
    def __init__(self, hmac_key: str, fernet_key: str, dsn: str | None = None):
        from cryptography.fernet import Fernet

        if len(hmac_key) < 16:
            raise ValueError("tokenization hmac_key must be at least 16 characters")
        self.hmac_key, self.fernet, self.dsn = hmac_key, Fernet(fernet_key.encode()), dsn

    @classmethod
    def from_vault(cls, dsn: str | None = None) -> TokenVault:
        """Keys from Vault; created there on first use."""
        from cryptography.fernet import Fernet

        from include import vault

        try:
            sec = vault.read_secret(VAULT_PATH)
        except LookupError:
            import secrets

            sec = {"hmac_key": secrets.token_hex(32), "fernet_key": Fernet.generate_key().decode()}
            vault.write_secret(VAULT_PATH, sec)
        return cls(sec["hmac_key"], sec["fernet_key"], dsn)

    def tokenize(self, arr: pa.Array, entity: str) -> pa.Array:
        """Same value + entity -> same token, stored once (upsert) with its encrypted value."""
        tokens = keyed_token(arr, self.hmac_key, entity)
        pairs = pa.table({"t": tokens, "v": _as_string(arr)}).filter(pc.is_valid(tokens))
        uniq = pairs.group_by("t").aggregate([("v", "min")])
        rows = [(t, entity, self.fernet.encrypt(v.encode()).decode())
                for t, v in zip(uniq.column("t").to_pylist(), uniq.column("v_min").to_pylist(), strict=True)]
        if rows:
            with connect(self.dsn) as conn, conn.cursor() as cur:
                cur.executemany("INSERT INTO privacy_tokens (token, entity_type, ciphertext) VALUES (%s, %s, %s) "
                                "ON CONFLICT (token) DO NOTHING", rows)
        return tokens

    def detokenize(self, token: str, *, actor: str, reason: str) -> str | None:
        """The original value, or None for an unknown token. Every call is audited."""
        if not actor or not reason:
            raise ValueError("detokenize needs an actor and a reason (both are audited)")
        with connect(self.dsn) as conn:
            row = conn.execute("SELECT ciphertext FROM privacy_tokens WHERE token = %s", (token,)).fetchone()
            conn.execute("INSERT INTO privacy_token_audit (token, actor, reason, found) VALUES (%s, %s, %s, %s)",
                         (token, actor, reason, row is not None))
        return self.fernet.decrypt(row["ciphertext"].encode()).decode() if row else None


@functools.lru_cache(maxsize=1)
def default_vault() -> TokenVault:
    return TokenVault.from_vault()

"""What the database sources (PostgreSQL, MySQL/MariaDB) share: credentials, the source error,
the marker of scrubbed columns, the query-template variables, and the scrubbing decisions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from include.honeycomb.config import CombDefinition
from include.honeycomb.errors import CombError

SCRUBBED_FLAG = "__sting_scrubbed"
TEMPLATE_VAR = re.compile(r"\$\{(table|last_sync|window_start|window_end)\}")


class SourceError(CombError):
    """The source could not be read (unreachable, bad credentials, missing table or column);
    `permanent` when no retry can help."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    @classmethod
    def from_secret(cls, secret: dict, vault_path: str) -> Credentials:
        missing = [k for k in ("username", "password") if not secret.get(k)]
        if missing:
            raise SourceError(f"Vault secret '{vault_path}' lacks key(s): {', '.join(missing)}", permanent=True)
        return cls(str(secret["username"]), str(secret["password"]))

    def redact(self, text: str) -> str:
        """Every form of the password (raw, escaped, URL-encoded, base64, hex: include/redaction.py)."""
        from include.redaction import Redactor

        return Redactor([self.password])(text)


def scrub_decisions(comb: CombDefinition, columns: list[str]) -> dict[str, tuple[str, str]]:
    """Column -> (action, entity) for a database source's columns, after checking that the key
    and incremental columns exist (shared by the PostgreSQL and MySQL sources)."""
    ex = comb.configuration.extraction
    missing = [c for c in [*ex.primary_key, ex.incremental_column] if c and c not in columns]
    if missing:
        raise SourceError(
            f"comb '{comb.name}': column(s) {', '.join(missing)} not in the source "
            f"(columns: {', '.join(columns)})", permanent=True,
        )
    return comb.configuration.scrubbing.decisions(columns)

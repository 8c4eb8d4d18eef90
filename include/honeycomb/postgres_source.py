"""PostgreSQL source: stream a window of a table as Arrow batches, with the scrubbing rules pushed
into the SELECT so raw values of scrubbed columns never leave the source database.

Safety of the generated SQL:
- table and column names are quoted identifiers (psycopg.sql.Identifier), never pasted text;
- values (window bounds, the hash salt) travel as bound parameters into session settings
  (`set_config($1)`), and the query reads them with current_setting(). The data query itself has
  no parameters, so the ADBC driver streams it with binary COPY, and no value ever appears in
  statement text (nor in the server's statement log).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow as pa
from psycopg import sql

from include.honeycomb.config import CombDefinition
from include.honeycomb.windows import RunWindow

SCRUBBED_FLAG = "__sting_scrubbed"
TEMPLATE_VAR = re.compile(r"\$\{(table|last_sync|window_start|window_end)\}")
_SETTING = {
    "last_sync": "sting.read_from",
    "window_start": "sting.window_start",
    "window_end": "sting.window_end",
}


class SourceError(RuntimeError):
    """The source could not be read (unreachable, bad credentials, missing table or column)."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    @classmethod
    def from_secret(cls, secret: dict, vault_path: str) -> Credentials:
        missing = [k for k in ("username", "password") if not secret.get(k)]
        if missing:
            raise SourceError(f"Vault secret '{vault_path}' lacks key(s): {', '.join(missing)}")
        return cls(str(secret["username"]), str(secret["password"]))

    def redact(self, text: str) -> str:
        for s in {self.password, quote(self.password, safe="")}:
            if s:
                text = text.replace(s, "***")
        return text


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split(".")) if "." in name else sql.Identifier(name)


def render_base_query(comb: CombDefinition) -> sql.Composable:
    """The source relation: the table, or the query_template with its placeholders made safe."""
    ex = comb.configuration.extraction
    if not ex.query_template:
        return sql.SQL("SELECT * FROM {}").format(_ident(ex.table))
    parts: list[sql.Composable] = []
    pos = 0
    for m in TEMPLATE_VAR.finditer(ex.query_template):
        parts.append(sql.SQL(ex.query_template[pos : m.start()]))
        var = m.group(1)
        if var == "table":
            parts.append(_ident(ex.table))
        else:
            parts.append(sql.SQL("current_setting({})::timestamptz").format(sql.Literal(_SETTING[var])))
        pos = m.end()
    parts.append(sql.SQL(ex.query_template[pos:].rstrip().rstrip(";")))
    return sql.Composed(parts)


def _mask_expr(col: sql.Identifier) -> sql.Composable:
    txt = sql.SQL("({}::text)").format(col)
    return sql.SQL(
        "CASE WHEN {c} IS NULL THEN NULL WHEN length({t}) <= 4 THEN repeat('*', length({t})) "
        "ELSE repeat('*', length({t}) - 4) || right({t}, 4) END"
    ).format(c=col, t=txt)


def _hash_expr(col: sql.Identifier) -> sql.Composable:
    # Salted SHA-256, hex: sha256(salt || value). Stable for a given salt, so joins still work.
    return sql.SQL(
        "CASE WHEN {c} IS NULL THEN NULL ELSE encode(sha256(convert_to("
        "current_setting('sting.hash_salt') || ({c}::text), 'UTF8')), 'hex') END"
    ).format(c=col)


def _constant_expr(col: sql.Identifier, text: str) -> sql.Composable:
    return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE {t} END").format(c=col, t=sql.Literal(text))


def scrub_decisions(comb: CombDefinition, columns: list[str]) -> dict[str, tuple[str, str]]:
    """Column -> (action, entity) for a database source's columns, after checking that the key
    and incremental columns exist (shared by the PostgreSQL and MySQL sources)."""
    ex = comb.configuration.extraction
    missing = [c for c in [*ex.primary_key, ex.incremental_column] if c and c not in columns]
    if missing:
        raise SourceError(
            f"comb '{comb.name}': column(s) {', '.join(missing)} not in the source "
            f"(columns: {', '.join(columns)})"
        )
    return comb.configuration.scrubbing.decisions(columns)


def build_select(
    comb: CombDefinition, columns: list[str], window: RunWindow
) -> tuple[sql.Composable, dict[str, tuple[str, str]], list[str]]:
    """SELECT over the base relation with scrubbing pushed down and the window applied.

    Returns (query, decisions column -> (action, entity), output column names). Columns whose
    action cannot run in SQL (tokenize, generalize, anonymize_ip) are selected as they are and
    scrubbed on the Arrow batches by the pipeline.
    """
    from include.honeycomb.config import PUSHDOWN_ACTIONS
    from include.privacy.actions import REDACTED

    ex = comb.configuration.extraction
    decisions = scrub_decisions(comb, columns)
    select: list[sql.Composable] = []
    out_cols: list[str] = []
    for c in columns:
        action, entity = decisions.get(c, (None, None))
        ident = sql.Identifier(c)
        if action == "remove":
            continue
        if action == "hash":
            select.append(sql.SQL("{} AS {}").format(_hash_expr(ident), ident))
        elif action == "mask":
            select.append(sql.SQL("{} AS {}").format(_mask_expr(ident), ident))
        elif action == "secret":
            select.append(sql.SQL("{} AS {}").format(_constant_expr(ident, REDACTED), ident))
        elif action == "redact":
            select.append(sql.SQL("{} AS {}").format(_constant_expr(ident, f"<{entity}>"), ident))
        else:  # no action, or one that runs on the Arrow side
            assert action is None or action not in PUSHDOWN_ACTIONS
            select.append(ident)
        out_cols.append(c)
    scrubbed = [sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in decisions]
    flag = sql.SQL(" OR ").join(scrubbed) if scrubbed else sql.SQL("false")
    select.append(sql.SQL("({}) AS {}").format(flag, sql.Identifier(SCRUBBED_FLAG)))

    query = sql.SQL("SELECT {} FROM ({}) AS src").format(sql.SQL(", ").join(select), render_base_query(comb))
    if window.mode == "incremental":
        inc = sql.Identifier(ex.incremental_column)
        query = sql.SQL(
            "{} WHERE {inc} >= current_setting('sting.read_from')::timestamptz "
            "AND {inc} < current_setting('sting.window_end')::timestamptz"
        ).format(query, inc=inc)
    return query, decisions, out_cols


def connection_uri(comb: CombDefinition, creds: Credentials) -> str:
    p = comb.pg_parameters
    return (
        f"postgresql://{quote(creds.username, safe='')}:{quote(creds.password, safe='')}@{p.host}:{p.port}/"
        f"{quote(p.database, safe='')}?sslmode={p.ssl_mode}&connect_timeout={p.connect_timeout}"
        f"&application_name=sting-honeycomb-{comb.name}"
    )


@contextmanager
def open_source(comb: CombDefinition, creds: Credentials):
    import adbc_driver_postgresql.dbapi as adbc

    p = comb.pg_parameters
    where = f"postgresql source {p.host}:{p.port}/{p.database}"
    try:
        conn = adbc.connect(connection_uri(comb, creds))
    except Exception as e:  # driver errors carry libpq's text; never the password, but be sure
        raise SourceError(f"comb '{comb.name}': cannot connect to {where}: {creds.redact(str(e)).strip()}") from None
    try:
        yield conn
    finally:
        conn.close()


def _set(cur, name: str, value: str) -> None:
    cur.execute("SELECT set_config($1, $2, false)", parameters=(name, value))
    cur.fetchall()


@contextmanager
def stream_window(
    comb: CombDefinition, creds: Credentials, window: RunWindow, salt: str | None
) -> Iterator[tuple[pa.Schema, dict, Iterator[pa.RecordBatch]]]:
    """Context: (schema incl. the scrubbed flag column, info, batch iterator) of the window."""
    ex = comb.configuration.extraction
    with open_source(comb, creds) as conn:
        cur = conn.cursor()
        try:
            if window.mode == "incremental":
                _set(cur, "sting.read_from", window.read_from(ex.lookback).isoformat())
                _set(cur, "sting.window_start", window.start.isoformat())
                _set(cur, "sting.window_end", window.end.isoformat())
            else:  # a template may still name the placeholders: make them mean "everything"
                _set(cur, "sting.read_from", "-infinity")
                _set(cur, "sting.window_start", "-infinity")
                _set(cur, "sting.window_end", window.end.isoformat())
            _set(cur, "sting.hash_salt", salt or "")
            describe = sql.SQL("SELECT * FROM ({}) AS src LIMIT 0").format(render_base_query(comb))
            cur.execute(describe.as_string())
            columns = [f.name for f in cur.fetch_arrow_table().schema]
            query, decisions, out_cols = build_select(comb, columns, window)
            if any(a == "hash" for a, _ in decisions.values()) and not salt:
                raise SourceError(f"comb '{comb.name}': a 'hash' rule needs a salt, none was given")
            cur.execute(query.as_string())
            reader = cur.fetch_record_batch()
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"comb '{comb.name}': query failed: {creds.redact(str(e)).strip()}") from None
        info = {"columns": out_cols, "decisions": decisions}
        yield reader.schema, info, iter(reader)

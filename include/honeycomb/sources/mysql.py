"""MySQL / MariaDB source: the same contract as the PostgreSQL source (a window of a table or of a
query_template as Arrow batches, scrubbing pushed into the SELECT), over PyMySQL with a server-side
(unbuffered) cursor so memory stays flat.

Safety of the generated SQL:
- table and column names are backtick-quoted identifiers (embedded backticks doubled);
- values (window bounds) are bound parameters, escaped by the driver; no secret is ever sent to
  the source (the `hash` action's key stays in the worker).
- the session runs in UTC (time_zone '+00:00'); DATETIME values are taken as UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pyarrow as pa

from include.honeycomb.config import CombDefinition
from include.honeycomb.errors import mysql_permanent
from include.honeycomb.sources.database import SCRUBBED_FLAG, TEMPLATE_VAR, Credentials, SourceError, scrub_decisions
from include.honeycomb.windows import RunWindow

_PARAM = {"last_sync": "%(read_from)s", "window_start": "%(window_start)s", "window_end": "%(window_end)s"}


def quote_ident(name: str) -> str:
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


def render_base_query(comb: CombDefinition) -> str:
    """The source relation, with ${table} as a quoted identifier and the time placeholders as
    bound parameters. Literal '%' in the template is escaped for the driver's paramstyle."""
    ex = comb.configuration.extraction
    if not ex.query_template:
        return f"SELECT * FROM {quote_ident(ex.table)}"
    out, pos = [], 0
    for m in TEMPLATE_VAR.finditer(ex.query_template):
        out.append(ex.query_template[pos:m.start()].replace("%", "%%"))
        var = m.group(1)
        out.append(quote_ident(ex.table) if var == "table" else _PARAM[var])
        pos = m.end()
    out.append(ex.query_template[pos:].rstrip().rstrip(";").replace("%", "%%"))
    return "".join(out)


def _text(c: str) -> str:
    return f"CAST({c} AS CHAR)"


def build_select(comb: CombDefinition, columns: list[str], window: RunWindow,
                 null_cursor: bool = False) -> tuple[str, dict, list[str]]:
    from include.honeycomb.config import PUSHDOWN_ACTIONS
    from include.privacy.actions import REDACTED

    ex = comb.configuration.extraction
    decisions = scrub_decisions(comb, columns)
    select, out_cols = [], []
    for c in columns:
        action, entity = decisions.get(c, (None, None))
        q = quote_ident(c)
        t = _text(q)
        if action == "remove":
            continue
        if action == "mask":
            expr = (f"CASE WHEN {q} IS NULL THEN NULL WHEN CHAR_LENGTH({t}) <= 4 THEN REPEAT('*', CHAR_LENGTH({t})) "
                    f"ELSE CONCAT(REPEAT('*', CHAR_LENGTH({t}) - 4), RIGHT({t}, 4)) END")
        elif action in ("secret", "redact"):
            text = REDACTED if action == "secret" else f"<{entity}>"
            expr = f"IF({q} IS NULL, NULL, '{text}')"  # constants of ours: [A-Z_<>], no quotes
            assert "'" not in text
        else:
            assert action is None or action not in PUSHDOWN_ACTIONS
            expr = q
        select.append(f"{expr} AS {q}")
        out_cols.append(c)
    flag = " OR ".join(f"{quote_ident(c)} IS NOT NULL" for c in decisions) or "FALSE"
    select.append(f"({flag}) AS {quote_ident(SCRUBBED_FLAG)}")
    query = f"SELECT {', '.join(select)} FROM ({render_base_query(comb)}) AS src"
    if null_cursor:
        query += f" WHERE {quote_ident(ex.incremental_column)} IS NULL"
    elif window.mode == "incremental":
        inc = quote_ident(ex.incremental_column)
        query += f" WHERE {inc} >= %(read_from)s AND {inc} < %(window_end)s"
    return query, decisions, out_cols


def _arrow_type(desc, binary: bool = False) -> pa.DataType | None:
    """The Arrow type of a result column; `binary`: the column's character set is `binary`
    (BINARY, VARBINARY, BLOB: bytes, never text)."""
    from pymysql.constants import FIELD_TYPE as F

    if binary and desc[1] in (F.VARCHAR, F.VAR_STRING, F.STRING, F.TINY_BLOB, F.BLOB, F.MEDIUM_BLOB, F.LONG_BLOB):
        return pa.binary()
    code, precision, scale = desc[1], desc[4], desc[5]
    if code == F.TINY and desc[3] == 1:  # TINYINT(1): MySQL's BOOLEAN
        return pa.bool_()
    if code in (F.TINY, F.SHORT, F.LONG, F.LONGLONG, F.INT24, F.YEAR):
        return pa.int64()
    if code in (F.FLOAT, F.DOUBLE):
        return pa.float64()
    if code in (F.DECIMAL, F.NEWDECIMAL):
        return pa.decimal128(max(1, min(int(precision or 38), 38)), int(scale or 0))
    if code == F.DATE:
        return pa.date32()
    if code in (F.DATETIME, F.TIMESTAMP):
        return pa.timestamp("us", tz="UTC")
    if code == F.TIME:
        return pa.duration("us")  # MySQL TIME is a duration (-838:59:59 to 838:59:59)
    if code in (F.VARCHAR, F.VAR_STRING, F.STRING, F.JSON, F.ENUM, F.SET):
        return pa.string()
    if code in (F.TINY_BLOB, F.BLOB, F.MEDIUM_BLOB, F.LONG_BLOB):
        return pa.string()  # TEXT columns (a binary character set was handled above)
    return None  # BIT, GEOMETRY, ...: decided by the first value


def _utc(v):
    return v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v


def _batches(cur, names: list[str], types: list[pa.DataType | None], size: int) -> Iterator[pa.RecordBatch]:
    schema = None
    while True:
        rows = cur.fetchmany(size)
        if not rows:
            break
        cols = list(zip(*rows, strict=True))
        arrays = []
        for i, values in enumerate(cols):
            t = types[i] if schema is None else schema.field(i).type
            if t is not None and pa.types.is_timestamp(t):
                values = [_utc(v) for v in values]
            elif t is not None and pa.types.is_boolean(t):
                values = [None if v is None else bool(v) for v in values]
            elif t is not None and pa.types.is_string(t):
                values = [None if v is None else (v if isinstance(v, str) else str(v)) for v in values]
            if t is None:
                first = next((v for v in values if v is not None), None)
                t = pa.binary() if isinstance(first, (bytes, bytearray)) else pa.string()
                types[i] = t
            arrays.append(pa.array(values, t))
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        schema = schema or batch.schema
        yield batch


@contextmanager
def stream_window(comb: CombDefinition, creds: Credentials, window: RunWindow, null_cursor: bool = False):
    """Context: (schema incl. the scrubbed flag column, info, batch iterator) of the window."""
    import pymysql
    import pymysql.cursors

    p = comb.parameters
    ex = comb.configuration.extraction
    where = f"{comb.subtype} source {p.host}:{p.port}/{p.database}"
    try:
        conn = pymysql.connect(host=p.host, port=p.port, user=creds.username, password=creds.password,
                               database=p.database, connect_timeout=p.connect_timeout, charset="utf8mb4",
                               init_command="SET time_zone = '+00:00'", ssl={} if p.ssl else None,
                               cursorclass=pymysql.cursors.SSCursor)
    except pymysql.MySQLError as e:
        raise SourceError(f"comb '{comb.name}': cannot connect to {where}: {creds.redact(str(e))}",
                          mysql_permanent(e)) from None
    try:
        naive = lambda d: d.astimezone(UTC).replace(tzinfo=None) if d else None  # noqa: E731
        if window.mode == "incremental":
            params = {"read_from": naive(window.read_from(ex.lookback)), "window_start": naive(window.start),
                      "window_end": naive(window.end)}
        else:
            params = {"read_from": datetime(1, 1, 1), "window_start": datetime(1, 1, 1),
                      "window_end": naive(window.end)}
        try:
            with conn.cursor(pymysql.cursors.Cursor) as c:
                c.execute(f"SELECT * FROM ({render_base_query(comb)}) AS src LIMIT 0", params)
                columns = [d[0] for d in c.description]
            query, decisions, out_cols = build_select(comb, columns, window, null_cursor)
            cur = conn.cursor()
            cur.execute(query, params if window.mode == "incremental" or "%(" in query else None)
        except SourceError:
            raise
        except pymysql.MySQLError as e:
            raise SourceError(f"comb '{comb.name}': query failed: {creds.redact(str(e))}", mysql_permanent(e)) from None
        names = [d[0] for d in cur.description]
        fields = getattr(getattr(cur, "_result", None), "fields", None) or [None] * len(cur.description)
        types = [_arrow_type(d, getattr(f, "charsetnr", None) == 63) for d, f in zip(cur.description, fields,
                                                                                    strict=True)]
        flag = names.index(SCRUBBED_FLAG)
        types[flag] = pa.bool_()
        batches = _batches(cur, names, types, min(ex.batch_size, 50_000))
        first = next(batches, None)
        if first is not None:
            schema = first.schema
        else:
            schema = pa.schema([pa.field(n, t or pa.string()) for n, t in zip(names, types, strict=True)])

        def all_batches():
            if first is not None:
                yield first
            yield from batches  # same column types as the first batch (they are fixed by it)

        yield schema, {"columns": out_cols, "decisions": decisions}, all_batches()
    finally:
        conn.close()

"""PostgreSQL source: stream a window of a table as Arrow batches, with the scrubbing rules pushed
into the SELECT so raw values of scrubbed columns never leave the source database.

Safety of the generated SQL:
- table and column names are quoted identifiers (psycopg.sql.Identifier), never pasted text;
- values (window bounds) travel as bound parameters into session settings (`set_config($1)`),
  and the query reads them with current_setting(). The data query itself has no parameters, so
  the ADBC driver streams it with binary COPY.
- no secret is ever sent to the source: the `hash` action's key stays in the worker (pseudonyms
  are computed on the Arrow batches), so neither a statement log nor a query_template reading
  session settings can see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pyarrow as pa
from psycopg import sql

from include.honeycomb.config import CombDefinition
from include.honeycomb.errors import pg_permanent
from include.honeycomb.sources.database import SCRUBBED_FLAG, TEMPLATE_VAR, Credentials, SourceError, scrub_decisions
from include.honeycomb.windows import RunWindow

_SETTING = {
    "last_sync": "sting.read_from",
    "window_start": "sting.window_start",
    "window_end": "sting.window_end",
}


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


def _constant_expr(col: sql.Identifier, text: str) -> sql.Composable:
    return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE {t} END").format(c=col, t=sql.Literal(text))


# PostgreSQL types the ADBC driver passes as opaque bytes (or in a unit no reader expects), and
# how the SELECT turns them into a common type: text for network addresses, bit strings, xml,
# time with time zone, uuid (canonical text: read as such by every Parquet reader, unlike the
# Parquet UUID annotation); intervals as microseconds (PostgreSQL's own epoch arithmetic: a month
# is 30 days, a year 365.25) that become Arrow durations; money as numeric(20,2).
_TEXT_TYPES = {"uuid", "inet", "cidr", "macaddr", "macaddr8", "timetz", "xml", "bit", "varbit", "tsvector",
               "tsquery", "point", "line", "lseg", "box", "path", "polygon", "circle", "pg_lsn", "txid_snapshot",
               "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "oid", "regclass"}


def sql_casts(schema: pa.Schema) -> dict[str, str]:
    """Column -> cast kind ('text', 'text[]', 'interval', 'money') from the driver's description."""
    out = {}
    for f in schema:
        pgtype = (f.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
        base = pgtype.removeprefix("_")
        if pgtype == "interval":
            out[f.name] = "interval"
        elif pgtype == "money":
            out[f.name] = "money"
        elif base in _TEXT_TYPES or (isinstance(f.type, pa.BaseExtensionType) and base != "numeric"
                                     and f.type.extension_name not in ("arrow.json",)):
            out[f.name] = "text[]" if pgtype.startswith("_") else "text"
        elif pa.types.is_list(f.type) and isinstance(f.type.value_type, pa.BaseExtensionType) and base != "numeric":
            out[f.name] = "text[]"
    return out


def _cast_expr(col: sql.Identifier, kind: str) -> sql.Composable:
    return {
        # the type's own output format (inet '10.0.0.1', not the text cast's '10.0.0.1/32')
        "text": sql.SQL("CASE WHEN {0} IS NULL THEN NULL ELSE format('%s', {0}) END"),
        "text[]": sql.SQL("{}::text[]"),
        "interval": sql.SQL("(EXTRACT(epoch FROM {}) * 1000000)::bigint"),
        "money": sql.SQL("{}::numeric(20,2)"),
    }[kind].format(col)


def _numeric_type(typmod: int) -> pa.DataType:
    """numeric(p,s) -> decimal(p,s); unconstrained numeric -> decimal(38,18), as Spark reads it."""
    if typmod < 4:
        return pa.decimal128(38, 18)
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(min(precision, 76), scale)


def arrow_targets(schema: pa.Schema, casts: dict[str, str], described: pa.Schema) -> dict[int, pa.DataType]:
    """Field index -> the Arrow type the output column gets, for the fields that need a change:
    numerics to decimals, JSON to text, naive timestamps to UTC, intervals to durations. The
    PostgreSQL type and typmod come from the description of the source relation."""
    out = {}
    for i, f in enumerate(schema):
        j = described.get_field_index(f.name)
        meta = (described.field(j).metadata if j >= 0 else None) or f.metadata or {}
        t = f.type
        if casts.get(f.name) == "interval":
            out[i] = pa.duration("us")
        elif casts.get(f.name) == "money" and isinstance(t, pa.BaseExtensionType):
            out[i] = pa.decimal128(20, 2)
        elif isinstance(t, pa.BaseExtensionType) and meta.get(b"POSTGRESQL:type") in (b"numeric", b"money"):
            out[i] = _numeric_type(int(meta.get(b"POSTGRESQL:typmod", b"-1")))
        elif pa.types.is_list(t) and isinstance(t.value_type, pa.BaseExtensionType) and \
                meta.get(b"POSTGRESQL:type") == b"_numeric":
            out[i] = pa.list_(pa.decimal128(38, 18))
        elif isinstance(t, pa.BaseExtensionType):
            out[i] = t.storage_type if t.extension_name == "arrow.json" else pa.string()
        elif pa.types.is_timestamp(t) and t.tz is None:
            out[i] = pa.timestamp("us", tz="UTC")  # naive timestamps are UTC (the session runs in UTC)
        elif pa.types.is_timestamp(t) and t.unit != "us":
            out[i] = pa.timestamp("us", tz="UTC")
    return out


def convert(arr: pa.Array, target: pa.DataType, column: str) -> pa.Array:
    """One column of a batch to its output type; a value that does not fit names its column."""
    import pyarrow.compute as pc

    if isinstance(arr.type, pa.BaseExtensionType):
        arr = arr.storage
    elif pa.types.is_list(arr.type) and isinstance(arr.type.value_type, pa.BaseExtensionType):
        arr = pa.ListArray.from_arrays(arr.offsets, arr.values.storage, mask=arr.is_null())
    try:
        if pa.types.is_duration(target) and pa.types.is_integer(arr.type):
            return pc.cast(arr, pa.int64()).view(target)
        return pc.cast(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SourceError(f"column '{column}': a value does not fit {target} ({str(e)[:200]})", permanent=True) from None


def build_select(
    comb: CombDefinition, columns: list[str], window: RunWindow, casts: dict[str, str] | None = None,
    null_cursor: bool = False,
) -> tuple[sql.Composable, dict[str, tuple[str, str]], list[str]]:
    """SELECT over the base relation with scrubbing pushed down and the window applied (or, with
    `null_cursor`, the rows whose incremental column is NULL).

    Returns (query, decisions column -> (action, entity), output column names). Columns whose
    action cannot run in SQL (tokenize, generalize, anonymize_ip) are selected as they are and
    scrubbed on the Arrow batches by the pipeline. `casts` (column -> kind, see `sql_casts`)
    turns types the Arrow driver only passes as opaque bytes into ones every reader knows.
    """
    casts = casts or {}
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
        if action == "mask":
            select.append(sql.SQL("{} AS {}").format(_mask_expr(ident), ident))
        elif action == "secret":
            select.append(sql.SQL("{} AS {}").format(_constant_expr(ident, REDACTED), ident))
        elif action == "redact":
            select.append(sql.SQL("{} AS {}").format(_constant_expr(ident, f"<{entity}>"), ident))
        else:  # no action, or one that runs on the Arrow side
            assert action is None or action not in PUSHDOWN_ACTIONS
            select.append(sql.SQL("{} AS {}").format(_cast_expr(ident, casts[c]), ident) if c in casts else ident)
        out_cols.append(c)
    scrubbed = [sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in decisions]
    flag = sql.SQL(" OR ").join(scrubbed) if scrubbed else sql.SQL("false")
    select.append(sql.SQL("({}) AS {}").format(flag, sql.Identifier(SCRUBBED_FLAG)))

    query = sql.SQL("SELECT {} FROM ({}) AS src").format(sql.SQL(", ").join(select), render_base_query(comb))
    if null_cursor:
        query = sql.SQL("{} WHERE {} IS NULL").format(query, sql.Identifier(ex.incremental_column))
    elif window.mode == "incremental":
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
        text = creds.redact(str(e)).strip()
        raise SourceError(f"comb '{comb.name}': cannot connect to {where}: {text}", pg_permanent(text)) from None
    try:
        yield conn
    finally:
        conn.close()


def _set(cur, name: str, value: str) -> None:
    cur.execute("SELECT set_config($1, $2, false)", parameters=(name, value))
    cur.fetchall()


@contextmanager
def stream_window(
    comb: CombDefinition, creds: Credentials, window: RunWindow, null_cursor: bool = False,
) -> Iterator[tuple[pa.Schema, dict, Iterator[pa.RecordBatch]]]:
    """Context: (schema incl. the scrubbed flag column, info, batch iterator) of the window, or
    of the rows whose incremental column is NULL. Output types are normalised: decimals,
    UTC timestamps, durations, text for what has no Arrow type."""
    ex = comb.configuration.extraction
    with open_source(comb, creds) as conn:
        cur = conn.cursor()
        try:
            cur.execute("SET TIME ZONE 'UTC'")  # naive timestamps are read, compared and written as UTC
            if window.mode == "incremental":
                _set(cur, "sting.read_from", window.read_from(ex.lookback).isoformat())
                _set(cur, "sting.window_start", window.start.isoformat())
                _set(cur, "sting.window_end", window.end.isoformat())
            else:  # a template may still name the placeholders: make them mean "everything"
                _set(cur, "sting.read_from", "-infinity")
                _set(cur, "sting.window_start", "-infinity")
                _set(cur, "sting.window_end", window.end.isoformat())
            describe = sql.SQL("SELECT * FROM ({}) AS src LIMIT 0").format(render_base_query(comb))
            cur.execute(describe.as_string())
            described = cur.fetch_arrow_table().schema
            columns = [f.name for f in described]
            casts = sql_casts(described)
            query, decisions, out_cols = build_select(comb, columns, window, casts, null_cursor)
            cur.execute(query.as_string())
            reader = cur.fetch_record_batch()
        except SourceError:
            raise
        except Exception as e:
            text = creds.redact(str(e)).strip()
            raise SourceError(f"comb '{comb.name}': query failed: {text}", pg_permanent(text)) from None
        targets = arrow_targets(reader.schema, casts, described)
        schema = pa.schema([pa.field(f.name, targets.get(i, f.type)) for i, f in enumerate(reader.schema)])

        def batches():
            for b in reader:
                if targets:
                    cols = [convert(b.column(i), targets[i], f.name) if i in targets else b.column(i)
                            for i, f in enumerate(reader.schema)]
                    b = pa.RecordBatch.from_arrays(cols, schema=schema)
                yield b

        info = {"columns": out_cols, "decisions": decisions}
        yield schema, info, batches()

"""What lands in Parquet keeps its meaning: every common PostgreSQL and MySQL type arrives as the
Arrow type a user expects (read back with pyarrow and pandas); the cursor and every timestamp are
UTC whatever the column's type, also across a type change; NULL cursors are reported and
delivered by the documented policy."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from datetime import UTC, timedelta

import pandas as pd
import psycopg
import pyarrow as pa
import pytest

from include.settings import get_settings
from tests.combtools import clear_test_outputs, read_output, run_steps, utc, write_def

T0 = utc(2026, 10, 5, 0)
W1 = {"window_start": T0, "window_end": T0 + timedelta(hours=1)}
W2 = {"window_start": T0 + timedelta(hours=1), "window_end": T0 + timedelta(hours=2)}


def _pg_comb(schema: str, table: str = "typed", **extraction) -> dict:
    return {
        "name": f"ty_{schema}", "type": "database", "subtype": "postgresql",
        "configuration": {
            "connection": {"vault_path": "honey_combs/sample_customers/credentials",
                           "parameters": {"host": "127.0.0.1", "port": 5432, "database": "sting_sample_source"}},
            "extraction": {"mode": "incremental", "schedule": "0 * * * *", "table": f"{schema}.{table}",
                           "primary_key": ["id"], "incremental_column": "updated_at", "lookback": "1h", **extraction},
            "scrubbing": {"enabled": True},
            "output": {"prefix": f"tests/{schema}"},
        },
    }


@pytest.fixture
def pg(source_db, combs_dir):
    dsn, schema = source_db
    yield dsn, schema, combs_dir
    clear_test_outputs(schema)


PG_TYPES = """
    id BIGINT PRIMARY KEY, amount NUMERIC(12,2), ratio NUMERIC, big NUMERIC(50,5), uid UUID, doc JSON, docb JSONB,
    ints INT[], tags TEXT[], nums NUMERIC[], ip INET, net CIDR, mac MACADDR, took INTERVAL, day DATE,
    at_time TIME, at_timetz TIMETZ, raw BYTEA, mood {schema}.mood, flag BOOLEAN, naive TIMESTAMP,
    small SMALLINT, f4 REAL, f8 DOUBLE PRECISION, cash MONEY, bits BIT(3), code CHAR(3), xmlv XML,
    updated_at TIMESTAMPTZ
"""


def test_postgresql_types_read_back_as_proper_arrow_and_pandas_types(pg):
    dsn, schema, d = pg
    u = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE TYPE "{schema}".mood AS ENUM (\'sad\', \'ok\', \'happy\')')
        c.execute(f'CREATE TABLE "{schema}".typed ({PG_TYPES.format(schema=schema)})')
        c.execute(
            f"""INSERT INTO "{schema}".typed VALUES (1, 1234.56, 3.141592653589793238, 12345678901234567890123.45678,
                %s, '{{"a": 1}}', '{{"b": [1, 2]}}', '{{1,2}}', '{{x,y}}', '{{1.5,2.25}}', '10.0.0.1', '10.0.0.0/8',
                '08:00:2b:01:02:03', '1 day 02:03:04.5', '2026-01-02', '12:34:56', '12:34:56+02', '\\xdeadbeef',
                'ok', true, '2026-10-05 00:30:00', 7, 1.5, 2.5, 12.34, B'101', 'ab', '<a/>', %s)""",
            (u, T0 + timedelta(minutes=10)))
        c.execute(f"""INSERT INTO "{schema}".typed (id, updated_at) VALUES (2, %s)""", (T0 + timedelta(minutes=20),))
    name = write_def(d, _pg_comb(schema))
    _, _, out, _ = run_steps(name, "r1", **W1)
    t, _ = read_output(out["bucket"], out["key"])
    types = {f.name: f.type for f in t.schema}
    assert types["amount"] == pa.decimal128(12, 2) and types["ratio"] == pa.decimal128(38, 18)
    assert types["big"] == pa.decimal256(50, 5)
    assert types["nums"] == pa.list_(pa.decimal128(38, 18))
    assert types["ints"] == pa.list_(pa.int32()) and types["tags"] == pa.list_(pa.string())
    for col in ("uid", "doc", "docb", "ip", "net", "mac", "at_timetz", "mood", "bits", "code", "xmlv"):
        assert types[col] == pa.string(), (col, types[col])
    assert types["took"] == pa.duration("us") and types["day"] == pa.date32() and types["at_time"] == pa.time64("us")
    assert types["raw"] == pa.binary() and types["flag"] == pa.bool_() and types["small"] == pa.int16()
    assert types["naive"] == types["updated_at"] == pa.timestamp("us", tz="UTC")
    assert types["cash"] == pa.decimal128(20, 2)
    assert not [f for f in t.schema if isinstance(f.type, pa.BaseExtensionType)]  # nothing opaque
    row = t.to_pylist()[0]
    assert row["amount"] == decimal.Decimal("1234.56") and row["big"] == decimal.Decimal("12345678901234567890123.45678")
    assert row["uid"] == str(u) and row["doc"] == '{"a": 1}' and row["ip"] == "10.0.0.1"
    assert row["took"] == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    assert row["nums"] == [decimal.Decimal("1.5"), decimal.Decimal("2.25")]
    assert row["naive"] == dt.datetime(2026, 10, 5, 0, 30, tzinfo=UTC)
    assert row["cash"] == decimal.Decimal("12.34") and row["mood"] == "ok" and row["raw"] == b"\xde\xad\xbe\xef"
    # pandas reads it as a user expects
    df = t.to_pandas()
    assert str(df["naive"].dtype).startswith("datetime64[us, UTC]") and str(df["took"].dtype).startswith("timedelta64")
    assert df.loc[0, "amount"] == decimal.Decimal("1234.56") and pd.isna(df.loc[1, "amount"])
    assert df.loc[0, "day"] == dt.date(2026, 1, 2)


def test_cursor_type_drift_keeps_utc_and_delivers_nothing_twice(pg):
    dsn, schema, d = pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE TABLE "{schema}".typed (id BIGINT PRIMARY KEY, note TEXT, updated_at TIMESTAMPTZ)')
        with c.cursor().copy(f'COPY "{schema}".typed FROM STDIN') as cp:
            for i in range(68):
                cp.write_row((i, "x", T0 + timedelta(minutes=30, seconds=i)))
    name = write_def(d, _pg_comb(schema))
    _, _, out1, _ = run_steps(name, "r1", **W1)
    assert out1["records_processed"] == 68
    with psycopg.connect(dsn, autocommit=True) as c:  # the source changes the cursor's type
        c.execute("SET TIME ZONE 'UTC'")
        c.execute(f'ALTER TABLE "{schema}".typed ALTER COLUMN updated_at TYPE TIMESTAMP')
        c.execute(f"""INSERT INTO "{schema}".typed VALUES (100, 'y', '2026-10-05 01:10:00')""")
    # window 2 re-reads window 1's last hour (lookback): the 68 rows are recognised, not re-sent
    _, _, out2, _ = run_steps(name, "r2", **W2)
    t2, _ = read_output(out2["bucket"], out2["key"])
    assert t2.column("id").to_pylist() == [100] and out2["duplicates_skipped"] == 68
    t1, _ = read_output(out1["bucket"], out1["key"])
    assert t1.schema.field("updated_at").type == t2.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert t2.column("updated_at")[0].as_py() == dt.datetime(2026, 10, 5, 1, 10, tzinfo=UTC)
    # a rerun of window 1 after the drift still holds its 68 rows, identical
    _, _, out1b, _ = run_steps(name, "r1", **W1)
    t1b, _ = read_output(out1b["bucket"], out1b["key"])
    assert t1b.column("id").to_pylist() == list(range(68)) and t1b.equals(t1)


def test_null_cursor_rows_are_reported_and_delivered_once(pg):
    dsn, schema, d = pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE TABLE "{schema}".typed (id BIGINT PRIMARY KEY, note TEXT, updated_at TIMESTAMPTZ)')
        c.execute(f"""INSERT INTO "{schema}".typed VALUES (1, 'a', %s), (2, 'no cursor', NULL), (3, 'no cursor', NULL)""",
                  (T0 + timedelta(minutes=5),))
    name = write_def(d, _pg_comb(schema))
    _, _, out, loaded = run_steps(name, "r1", **W1)
    assert out["records_processed"] == 1 and out["null_cursor"]["rows"] == 2
    nc, _ = read_output(out["bucket"], out["null_cursor"]["key"])
    assert sorted(nc.column("id").to_pylist()) == [2, 3]
    from include.db import connect

    with connect() as conn:  # reported in the audit, and a document of the jar
        ex = conn.execute("SELECT metadata FROM honey_comb_executions WHERE id = %s",
                          (out["null_cursor"] and loaded and _execution_id(conn, name, "r1"),)).fetchone()
        assert ex["metadata"]["null_cursor"]["rows"] == 2
        docs = conn.execute("SELECT upload_path FROM documents WHERE honey_jar_id = %s", (loaded["jar_id"],)).fetchall()
    assert {r["upload_path"] for r in docs} == {out["uri"], out["null_cursor"]["uri"]}
    # row 2 gets a cursor value (in window 2), row 1 loses its cursor: each is in exactly one output
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'UPDATE "{schema}".typed SET updated_at = %s WHERE id = 2', (T0 + timedelta(minutes=70),))
        c.execute(f'UPDATE "{schema}".typed SET updated_at = NULL WHERE id = 1')
    _, _, out2, _ = run_steps(name, "r2", **W2)
    _, _, out1b, _ = run_steps(name, "r1", **W1)  # window 1 re-cut: row 1 no longer in it
    ids = []
    for key in (out1b["key"], out2["key"], out2["null_cursor"]["key"]):
        t, _ = read_output(out["bucket"], key)
        ids += t.column("id").to_pylist()
    assert sorted(ids) == [1, 2, 3]
    # policy fail: the run fails naming the rows without a cursor
    name_f = write_def(d, {**_pg_comb(schema), "name": f"tf_{schema}",
                           "configuration": {**_pg_comb(schema)["configuration"],
                                             "extraction": {**_pg_comb(schema)["configuration"]["extraction"],
                                                            "null_cursor": "fail"},
                                             "output": {"prefix": f"tests/{schema}/f"}}})
    with pytest.raises(Exception, match=r"2 row\(s\) have a NULL incremental column 'updated_at'"):
        run_steps(name_f, "r1", **W1)


def _execution_id(conn, comb_name: str, run_key: str) -> str:
    return conn.execute("""SELECT e.id FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
                            WHERE c.name = %s AND e.run_key = %s""", (comb_name, run_key)).fetchone()["id"]


def test_mysql_types_read_back_as_proper_arrow_types(mysql_source, combs_dir):
    s = get_settings()
    root, db = mysql_source
    with root.cursor() as c:
        c.execute(f"""CREATE TABLE `{db}`.typed (id BIGINT PRIMARY KEY, amount DECIMAL(12,2), doc JSON,
                      mood ENUM('sad','ok'), flag BOOLEAN, took TIME(6), day DATE, raw VARBINARY(8), f8 DOUBLE,
                      naive DATETIME(6), updated_at TIMESTAMP(6) NULL)""")
        c.execute(f"""INSERT INTO `{db}`.typed VALUES (1, 1234.56, '{{"a": 1}}', 'ok', TRUE, '26:03:04.5',
                      '2026-01-02', X'DEADBEEF', 2.5, '2026-10-05 00:30:00', '2026-10-05 00:10:00')""")
    name = write_def(combs_dir, {
        "name": f"my_{db}", "type": "database", "subtype": "mariadb",
        "configuration": {
            "connection": {"vault_path": f"honey_combs/{db}/credentials",
                           "parameters": {"host": s.mysql_host, "port": s.mysql_port, "database": db}},
            "extraction": {"mode": "incremental", "schedule": "0 * * * *", "table": f"{db}.typed",
                           "primary_key": ["id"], "incremental_column": "updated_at"},
            "output": {"prefix": f"tests/{db}"}}})
    _, _, out, _ = run_steps(name, "r1", **W1)
    t, _ = read_output(out["bucket"], out["key"])
    types = {f.name: f.type for f in t.schema}
    assert pa.types.is_decimal(types["amount"]) and types["amount"].scale == 2
    assert types["doc"] == types["mood"] == pa.string() and types["flag"] == pa.bool_()
    assert types["took"] == pa.duration("us") and types["day"] == pa.date32() and types["raw"] == pa.binary()
    assert types["naive"] == types["updated_at"] == pa.timestamp("us", tz="UTC")
    row = t.to_pylist()[0]
    assert row["amount"] == decimal.Decimal("1234.56") and row["flag"] is True
    assert row["took"] == timedelta(hours=26, minutes=3, seconds=4.5) and row["raw"] == b"\xde\xad\xbe\xef"
    df = t.to_pandas()
    assert str(df["took"].dtype).startswith("timedelta64") and str(df["naive"].dtype).startswith("datetime64")

"""database/mysql combs against the real MariaDB: windows, incremental without duplicates,
query_template rendered safely, scrubbing pushed into the SELECT (same hashes as PostgreSQL's)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from include import vault
from include.settings import get_settings
from tests.combtools import read_output, run_steps, write_def


@pytest.fixture
def mysql_db(mysql_source, tmp_path, monkeypatch):
    root, db = mysql_source
    with root.cursor() as c:
        c.execute(f"CREATE TABLE `{db}`.orders (id BIGINT PRIMARY KEY, email VARCHAR(200), ssn VARCHAR(20),"
                  " phone_mobile VARCHAR(40), amount DECIMAL(10,2), notes TEXT, updated_at DATETIME(6) NOT NULL)")
    d = tmp_path / "combs"
    d.mkdir()
    monkeypatch.setenv("STING_COMBS_DIR", str(d))
    return root, db, d


def comb(db: str, **extraction) -> dict:
    s = get_settings()
    return {
        "name": f"my_{db}", "type": "database", "subtype": "mariadb",
        "configuration": {
            "connection": {"vault_path": f"honey_combs/{db}/credentials",
                           "parameters": {"host": s.mysql_host, "port": s.mysql_port, "database": db}},
            "extraction": {"mode": "incremental", "schedule": "0 * * * *", "table": f"{db}.orders",
                           "primary_key": ["id"], "incremental_column": "updated_at", "lookback": "1h",
                           **extraction},
            "scrubbing": {"custom_rules": [{"field": "email", "action": "hash"}, {"field": "ssn", "action": "remove"},
                                           {"pattern": "phone_*", "action": "mask"}]},
            "output": {"prefix": f"tests/{db}"},
        },
    }


def insert(root, db, rows):
    with root.cursor() as c:
        c.executemany(f"INSERT INTO `{db}`.orders VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)


def row(i, ts, email=None):
    return (i, email or f"u{i}@example.com", "123-45-6789", f"+1 415 555 {i:04d}", "12.50", f"note {i} 50%", ts)


def ids(out):
    t, _ = read_output(out["bucket"], out["key"])
    return sorted(t.column("id").to_pylist()), t


def test_mysql_incremental_windows_and_pushdown(mysql_db):
    root, db, d = mysql_db
    insert(root, db, [row(1, datetime(2026, 3, 1, 10, 5)), row(2, datetime(2026, 3, 1, 10, 59, 59)),
                      row(3, datetime(2026, 3, 1, 11, 0)), row(4, datetime(2026, 3, 1, 11, 30))])
    name = write_def(d, comb(db))
    w1 = {"window_start": datetime(2026, 3, 1, 10, tzinfo=UTC), "window_end": datetime(2026, 3, 1, 11, tzinfo=UTC)}
    w2 = {"window_start": datetime(2026, 3, 1, 11, tzinfo=UTC), "window_end": datetime(2026, 3, 1, 12, tzinfo=UTC)}
    _, _, out1, _ = run_steps(name, "r1", **w1)
    got, t = ids(out1)
    assert got == [1, 2]
    assert "ssn" not in t.column_names
    assert t.column("phone_mobile").to_pylist()[0].endswith("0001") and "415" not in t.column("phone_mobile")[0].as_py()
    assert str(t.schema.field("updated_at").type) == "timestamp[us, tz=UTC]"
    # DECIMAL stays exact (the driver reports its display width: precision may come out wider)
    assert pa.types.is_decimal(t.schema.field("amount").type) and t.schema.field("amount").type.scale == 2
    # the pseudonym is the engine's keyed hash (computed in the worker, as for every source):
    # joins across sources work
    from include.privacy.actions import keyed_hash

    key = vault.read_secret("sting/scrubbing")["hash_key"]
    assert t.column("email")[0].as_py() == keyed_hash(pa.array(["u1@example.com"]), key)[0].as_py()
    # window 2 re-reads window 1's last hour (lookback) but delivers only its own rows
    _, _, out2, _ = run_steps(name, "r2", **w2)
    assert ids(out2)[0] == [3, 4]
    # a late row committed into window 1's time range after it ran: window 2 delivers it, once
    insert(root, db, [row(5, datetime(2026, 3, 1, 10, 45))])
    _, staged, out2b, _ = run_steps(name, "r2", **w2)
    assert ids(out2b)[0] == [3, 4, 5] and staged["duplicates_skipped"] == 2
    # rerun of window 1: same rows as before, plus nothing from window 2
    _, _, out1b, _ = run_steps(name, "r1", **w1)
    assert ids(out1b)[0] == [1, 2]  # row 5 was delivered by window 2: not again


def test_mysql_query_template_is_rendered_safely(mysql_db):
    root, db, d = mysql_db
    insert(root, db, [row(1, datetime(2026, 3, 1, 10, 5)), row(2, datetime(2026, 3, 1, 10, 20))])
    template = ("SELECT id, email, notes, updated_at FROM ${table} WHERE notes LIKE '%50%' "
                "AND updated_at >= ${last_sync}")
    name = write_def(d, comb(db, query_template=template))
    w = {"window_start": datetime(2026, 3, 1, 10, tzinfo=UTC), "window_end": datetime(2026, 3, 1, 11, tzinfo=UTC)}
    _, _, out, _ = run_steps(name, "r1", **w)
    got, t = ids(out)
    assert got == [1, 2] and t.column_names == ["id", "email", "notes", "updated_at"]
    from include.honeycomb.config import load_comb_file
    from include.honeycomb.sources.mysql import render_base_query

    sql = render_base_query(load_comb_file(d / f"{name}.yaml"))
    assert f"`{db}`.`orders`" in sql and "%(read_from)s" in sql and "'%%50%%'" in sql


def test_mysql_bad_credentials_name_the_source_not_the_password(mysql_db):
    root, db, d = mysql_db
    vault.write_secret(f"honey_combs/{db}/credentials", {"username": "nobody", "password": "s3cr3t-value"})
    name = write_def(d, comb(db))
    with pytest.raises(Exception) as e:
        run_steps(name, "r1", window_start="2026-03-01T10:00:00Z", window_end="2026-03-01T11:00:00Z")
    assert "cannot connect to mariadb source" in str(e.value) and "s3cr3t-value" not in str(e.value)

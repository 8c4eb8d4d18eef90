"""The database comb's data path, step by step through the real operators, against real
PostgreSQL, Vault and S3."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from airflow.sdk.exceptions import AirflowFailException

from include import storage
from include.db import connect
from include.honeycomb.sources.database import SourceError
from tests.combtools import insert, read_output, run_steps, utc, write_comb

T0 = utc(2026, 10, 5, 0)


def _rows(n0, n, ts, tag="r"):
    return [(i, f"user{i}@example.org", f"123-45-{i:04d}", f"+1 555 01{i:04d}", f"note {tag} {i}", ts)
            for i in range(n0, n0 + n)]


def test_equal_timestamps_and_late_commit_are_not_lost(comb_env):
    tmp, dsn, schema = comb_env
    name = write_comb(tmp, schema)
    boundary = T0 + timedelta(hours=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert(conn, schema, _rows(1, 50, T0 + timedelta(minutes=30)))
        insert(conn, schema, _rows(100, 40, boundary))  # 40 rows share the boundary timestamp
    # A writer stamps a row inside interval 1 but commits only after interval 1 was extracted.
    late = psycopg.connect(dsn)
    insert(late, schema, [(999, "late@example.org", "999-99-9999", "+1 555 0999", "late", T0 + timedelta(minutes=59))])

    _, _, out1, _ = run_steps(name, "run-1", window_start=T0, window_end=boundary)
    late.commit()
    late.close()
    _, _, out2, res2 = run_steps(name, "run-2", window_start=boundary, window_end=boundary + timedelta(hours=1))

    t1, _ = read_output(out1["bucket"], out1["key"])
    t2, _ = read_output(out2["bucket"], out2["key"])
    ids1, ids2 = set(t1.column("id").to_pylist()), set(t2.column("id").to_pylist())
    assert ids1 == set(range(1, 51))
    assert ids2 == set(range(100, 140)) | {999}  # boundary rows once, the late row caught by lookback
    assert not ids1 & ids2
    assert out1["records_processed"] == 50
    assert out2["duplicates_skipped"] == 50  # the lookback re-read interval 1 and dropped what it had
    # Rerun interval 1 now that the late row is visible: it must not deliver it a second time.
    _, _, out1b, _ = run_steps(name, "run-1", window_start=T0, window_end=boundary)
    assert out1b["key"] == out1["key"]
    t1b, _ = read_output(out1b["bucket"], out1b["key"])
    assert set(t1b.column("id").to_pylist()) == ids1
    assert out1b["duplicates_skipped"] == 1


def test_scrubbing_pushed_into_select_and_rerun_is_idempotent(comb_env):
    tmp, dsn, schema = comb_env
    name = write_comb(tmp, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert(conn, schema, _rows(1, 20, T0 + timedelta(minutes=5)))
        insert(conn, schema, [(21, None, None, None, "no pii", T0 + timedelta(minutes=6))])
    run, staged, out, res = run_steps(name, "run-a", window_start=T0, window_end=T0 + timedelta(hours=1))
    table, body = read_output(out["bucket"], out["key"])
    assert "ssn" not in table.column_names  # removed
    assert out["records_processed"] == 21 and out["records_scrubbed"] == 20
    raw = body.decode("latin-1")
    for i in range(1, 21):
        assert f"user{i}@example.org" not in raw and f"123-45-{i:04d}" not in raw
        assert f"+1 555 01{i:04d}" not in raw
    phones = table.column("phone_mobile").to_pylist()
    assert phones[0].endswith("0001") and set(phones[0][:-4]) == {"*"}
    emails = table.column("email").to_pylist()
    assert len(emails[0]) == 64 and emails[-1] is None
    assert out["key"].startswith(f"tests/{schema}/year=2026/month=10/")
    assert pq_compression(body) == "SNAPPY"

    # Rerun: same key, same bytes (hash is stable: salt from Vault), one document, one execution row.
    run2, _, out2, res2 = run_steps(name, "run-a", window_start=T0, window_end=T0 + timedelta(hours=1))
    assert out2["key"] == out["key"] and out2["sha256"] == out["sha256"]
    assert run2["execution_id"] == run["execution_id"] and res2["document_count"] == 1
    with connect() as conn:
        n = conn.execute("SELECT count(*) AS n FROM documents WHERE honey_jar_id = %s", (run["jar_id"],)).fetchone()
        ex = conn.execute("SELECT * FROM honey_comb_executions WHERE id = %s", (run["execution_id"],)).fetchone()
    assert n["n"] == 1
    assert ex["status"] == "completed" and ex["records_processed"] == 21 and ex["metadata"]["restarts"] == 1
    assert not list(storage.list_keys(out["bucket"], f"_staging/tests/{schema}/"))  # staging is empty


def pq_compression(body: bytes) -> str:
    import io

    import pyarrow.parquet as pq

    return pq.ParquetFile(io.BytesIO(body)).metadata.row_group(0).column(0).compression


def test_snapshot_generation_makes_a_jar_per_run(comb_env):
    tmp, dsn, schema = comb_env
    name = write_comb(tmp, schema, mode="snapshot", execution_type="snapshot_generation")
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert(conn, schema, _rows(1, 30, T0))
    r1, _, o1, _ = run_steps(name, "snap-1", window_end=T0 + timedelta(days=1))
    r2, _, o2, _ = run_steps(name, "snap-2", window_end=T0 + timedelta(days=2))
    assert o1["records_processed"] == o2["records_processed"] == 30
    assert r1["jar_id"] != r2["jar_id"] and o1["key"] != o2["key"]
    r1b, _, _, _ = run_steps(name, "snap-1", window_end=T0 + timedelta(days=1))
    assert r1b["jar_id"] == r1["jar_id"]


def _outputs(schema):
    from include.settings import get_settings

    return [o["Key"] for o in storage.list_keys(get_settings().comb_output_bucket, f"tests/{schema}/")]


def _last_execution(run_key):
    with connect() as conn:
        return conn.execute("SELECT * FROM honey_comb_executions WHERE run_key = %s", (run_key,)).fetchone()


def test_missing_vault_secret_fails_clearly_without_output(comb_env):
    tmp, dsn, schema = comb_env
    name = write_comb(tmp, schema, vault_path=f"honey_combs/{schema}/does_not_exist")
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert(conn, schema, _rows(1, 5, T0))
    with pytest.raises(AirflowFailException, match=f"no secret at Vault path 'honey_combs/{schema}/does_not_exist'"):
        run_steps(name, f"nosecret-{schema}", window_start=T0, window_end=T0 + timedelta(hours=1))
    assert _outputs(schema) == []
    ex = _last_execution(f"nosecret-{schema}")
    assert ex["status"] == "failed" and "does_not_exist" in ex["error_message"]


def test_unreachable_source_fails_clearly_without_output(comb_env):
    tmp, dsn, schema = comb_env
    name = write_comb(tmp, schema, parameters={"host": "127.0.0.1", "port": 1, "database": "nowhere",
                                               "connect_timeout": 2})
    with pytest.raises(SourceError, match="cannot connect to postgresql source 127.0.0.1:1/nowhere"):
        run_steps(name, f"unreach-{schema}", window_start=T0, window_end=T0 + timedelta(hours=1))
    assert _outputs(schema) == []
    ex = _last_execution(f"unreach-{schema}")
    assert ex["status"] == "failed" and "cannot connect" in ex["error_message"]
    from include import vault

    password = vault.read_secret("honey_combs/sample_customers/credentials")["password"]
    assert password not in ex["error_message"]


def test_table_name_cannot_inject_sql(comb_env):
    tmp, dsn, schema = comb_env
    evil = f'{schema}.orders; DROP TABLE {schema}.orders; --'
    name = write_comb(tmp, schema, table=evil)
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert(conn, schema, _rows(1, 3, T0))
    with pytest.raises(AirflowFailException, match="query failed"):  # quoted as identifiers: no such relation (deterministic: no retry)
        run_steps(name, f"evil-{schema}", window_start=T0, window_end=T0 + timedelta(hours=1))
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".orders').fetchone()[0] == 3


def test_bad_run_params_fail_before_anything_runs(comb_env):
    tmp, dsn, schema = comb_env
    name = write_comb(tmp, schema)
    from include.honeycomb.tasks import RunParamsError

    with pytest.raises(RunParamsError, match="window_start and window_end"):
        run_steps(name, f"badparams-{schema}", window_start=T0)
    assert _outputs(schema) == []
    assert _last_execution(f"badparams-{schema}")["status"] == "failed"


def test_concurrent_loads_keep_document_count_exact(stack):
    """document_count is maintained by one trigger on deltas: concurrent writers never drift."""
    import uuid

    with connect() as conn:
        jar = conn.execute("INSERT INTO honey_jars (name, config) VALUES ('count test', %s) RETURNING id",
                           (psycopg.types.json.Jsonb({"jar_key": f"test:{uuid.uuid4()}"}),)).fetchone()["id"]

    def writer(k):
        with connect() as conn:
            for i in range(25):
                conn.execute("INSERT INTO documents (honey_jar_id, title, file_type, upload_path) VALUES (%s, 'd', 'txt', %s)",
                             (jar, f"s3://x/{k}/{i}"))
                conn.commit()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with connect() as conn:
        conn.execute("DELETE FROM documents WHERE honey_jar_id = %s AND upload_path LIKE 's3://x/0/%%'", (jar,))
        row = conn.execute("SELECT document_count, (SELECT count(*) FROM documents WHERE honey_jar_id = %s) AS real "
                           "FROM honey_jars WHERE id = %s", (jar, jar)).fetchone()
    assert row["document_count"] == row["real"] == 75


def test_profile_and_arrow_side_actions_in_a_database_comb(comb_env):
    """A profile (ccpa) plus custom rules: pushdown actions run in SQL, tokenize / generalize /
    anonymize_ip on the Arrow batches, secrets are redacted whatever the rules say."""
    tmp, dsn, schema = comb_env
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".visits (id BIGINT PRIMARY KEY, full_name TEXT, email TEXT, '
                     'client_ip TEXT, birthday DATE, session_token TEXT, notes TEXT, updated_at TIMESTAMPTZ NOT NULL)')
        conn.execute(f'INSERT INTO "{schema}".visits VALUES '
                     "(1, 'Ann Lee', 'ann@x.org', '203.0.113.77', '1984-07-23', 'tok-SECRET-1', 'ring 415-555-0134', %s),"
                     "(2, 'Bo Kim', NULL, '2001:db8:85a3::7348', NULL, NULL, 'yo', %s)", (T0, T0))
    import yaml

    name = write_comb(tmp, schema, table=f"{schema}.visits", rules=[
        {"field": "birthday", "action": "generalize"}, {"pattern": "*_ip", "action": "anonymize_ip"}])
    raw = yaml.safe_load((tmp / f"{name}.yaml").read_text())
    raw["configuration"]["scrubbing"]["profile_id"] = "ccpa_compliant"
    raw["configuration"]["scrubbing"]["text_fields"] = ["notes"]
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    _, _, out, _ = run_steps(name, f"profile-{schema}", window_start=T0, window_end=T0 + timedelta(hours=1))
    table, body = read_output(out["bucket"], out["key"])
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows[1]["full_name"].startswith("tok_") and rows[1]["email"].startswith("tok_")  # ccpa: tokenize
    assert rows[1]["client_ip"] == "203.0.113.0" and rows[2]["client_ip"] == "2001:db8:85a3::"
    assert str(rows[1]["birthday"]) == "1984-07-01" and rows[2]["email"] is None
    assert rows[1]["session_token"] == "***REDACTED***" and rows[1]["notes"] == "ring ********0134"
    assert rows[2]["notes"] == "yo"
    for secret in ("Ann Lee", "ann@x.org", "203.0.113.77", "tok-SECRET-1", "1984-07-23", "415-555-0134"):
        assert secret.encode() not in body
    assert out["scrub_plan"]["full_name"] == "tokenize" and out["records_scrubbed"] == 2
    from include.privacy.tokens import TokenVault

    assert TokenVault.from_vault().detokenize(rows[1]["email"], actor="test", reason="comb round trip") == "ann@x.org"

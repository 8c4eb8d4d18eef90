"""Helpers for tests: a comb over a private test table, run step by step through the real
operators (their `execute`) and library functions, against the real services."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow.parquet as pq
import yaml

from include import storage


def write_comb(tmp_path, schema: str, **over) -> str:
    name = f"c_{schema}"
    comb = {
        "name": name,
        "type": "database",
        "subtype": "postgresql",
        "execution_type": over.pop("execution_type", "continuous_flow"),
        "target": {"honey_jar": f"jar {schema}"},
        "configuration": {
            "connection": {
                "vault_path": over.pop("vault_path", "honey_combs/sample_customers/credentials"),
                "parameters": over.pop("parameters", {"host": "${COMB_DB_HOST:-127.0.0.1}", "port": 5432,
                                                      "database": "sting_sample_source"}),
            },
            "extraction": {
                "mode": over.pop("mode", "incremental"),
                "schedule": "0 * * * *",
                "table": over.pop("table", f"{schema}.orders"),
                "primary_key": ["id"],
                "incremental_column": "updated_at",
                "lookback": over.pop("lookback", "1h"),
            },
            "scrubbing": {"enabled": True, "custom_rules": over.pop("rules", [
                {"field": "email", "action": "hash"},
                {"field": "ssn", "action": "remove"},
                {"pattern": "phone_*", "action": "mask"},
            ])},
            "output": {"prefix": f"tests/{schema}"},
        },
    }
    assert not over, over
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(comb))
    return name


def make_orders(conn, schema: str) -> None:
    conn.execute(
        f'CREATE TABLE "{schema}".orders (id BIGINT PRIMARY KEY, email TEXT, ssn TEXT, phone_mobile TEXT,'
        " notes TEXT, updated_at TIMESTAMPTZ NOT NULL)"
    )


def insert(conn, schema: str, rows: list[tuple]) -> None:
    with conn.cursor().copy(
        f'COPY "{schema}".orders (id, email, ssn, phone_mobile, notes, updated_at) FROM STDIN'
    ) as cp:
        for r in rows:
            cp.write_row(r)


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def run_steps(name: str, run_key: str, try_number: int = 1, **params):
    """begin -> extract (operator) -> write_parquet (operator) -> load: like one DAG run (the
    steps' attempt number `try_number`, as Airflow's task instance would give it)."""
    from types import SimpleNamespace

    from include.honeycomb.tasks import begin, load
    from sting_airflow.operators import HoneyCombExtractOperator, HoneyCombParquetOutputOperator, load_comb

    comb = load_comb(name)
    context = {"ti": SimpleNamespace(try_number=try_number)}
    run = begin(comb, run_key=run_key, try_number=try_number,
                params={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()})
    staged = HoneyCombExtractOperator(task_id="extract", comb_name=name, run=run).execute(context)
    out = HoneyCombParquetOutputOperator(task_id="write_parquet", comb_name=name, run=run,
                                         staged=staged).execute(context)
    return run, staged, out, load(comb, run, out)


def read_output(bucket: str, key: str):
    body = storage.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)), body


def write_def(tmp_path, comb: dict) -> str:
    """Write any comb definition (a dict) as <name>.yaml in tmp_path."""
    (tmp_path / f"{comb['name']}.yaml").write_text(yaml.safe_dump(comb))
    return comb["name"]


def run_checkpointed(name: str, run_key: str, ack: bool = True, **params) -> dict:
    """begin -> extract -> write_parquet -> load -> acknowledge, as one DAG run of a checkpointed
    comb (api, file_system, stream). Returns the run, the outputs and the loaded table."""
    from include.honeycomb.checkpointed import acknowledge
    from include.vault import read_secret

    run, staged, out, loaded = run_steps(name, run_key, **params)
    from sting_airflow.operators import load_comb

    comb = load_comb(name)
    acked = 0
    if ack:
        path = comb.configuration.connection.vault_path
        acked = acknowledge(comb, run, read_secret(path) if path else None)
    table, _ = read_output(out["bucket"], out["key"])
    return {"run": run, "staged": staged, "out": out, "loaded": loaded, "table": table, "acked": acked}


def execution(run: dict) -> dict:
    from include.db import connect

    with connect() as conn:
        return conn.execute("SELECT * FROM honey_comb_executions WHERE id = %s", (run["execution_id"],)).fetchone()


def extract_only(name: str, run_key: str) -> tuple[dict, dict]:
    """begin + extract of a run that then dies (no publish, no load: no commit)."""
    from include.honeycomb.tasks import begin
    from sting_airflow.operators import HoneyCombExtractOperator, load_comb

    run = begin(load_comb(name), run_key=run_key)
    return run, HoneyCombExtractOperator(task_id="extract", comb_name=name, run=run).execute({})


def clear_test_outputs(prefix: str) -> None:
    """Remove a test's outputs, staging objects and incomplete uploads under tests/<prefix>/."""
    from include.settings import get_settings

    bucket = get_settings().comb_output_bucket
    for p in (f"tests/{prefix}/", f"_staging/tests/{prefix}/"):
        for o in storage.list_keys(bucket, p):
            storage.delete(bucket, o["Key"])
        storage.abort_uploads(bucket, p)


def seed_sample_customers(ids, t0: datetime, tag: str, name: str, email_domain: str, ssn_area: str,
                          phone_prefix: str, step: timedelta) -> None:
    """Rows of the stack's sample CRM (crm.customers) that only one test uses: row n updated at
    t0 + n * step; re-seeding is a no-op."""
    from include.settings import get_settings

    s = get_settings()
    with psycopg.connect(s.dsn(s.sample_source_db), autocommit=True) as c:
        for n, i in enumerate(ids):
            c.execute(
                """INSERT INTO crm.customers (id, full_name, email, ssn, phone_mobile, phone_home, date_of_birth,
                       city, country, segment, lifetime_value, notes, created_at, updated_at)
                   VALUES (%s, %s, %s, %s, %s, NULL, '1980-02-03', 'Leeds', 'GB', 'smb', 10, %s, %s, %s)
                   ON CONFLICT (id) DO NOTHING""",
                (i, f"{name} {i}", f"{tag}-{i}@{email_domain}", f"{ssn_area}-{i % 10000:04d}",
                 f"{phone_prefix}{i % 100000:05d}", tag, t0 - timedelta(days=1), t0 + n * step),
            )


def source_tables_waited_on(tables: tuple[str, ...]) -> set[str]:
    """Which of the sample source's tables some session is waiting to read (a comb's extract
    blocked inside its query by a test's lock)."""
    from include.settings import get_settings

    s = get_settings()
    with psycopg.connect(s.dsn(s.sample_source_db), autocommit=True) as c:
        rows = c.execute("""SELECT DISTINCT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                             WHERE NOT l.granted AND c.relname = ANY(%s)""", (list(tables),)).fetchall()
    return {r[0] for r in rows}

"""End to end through the running Airflow, the way users run combs: REST trigger with conf,
backfills through the REST API, reruns; then look for leaks in task logs, XCom and Parquet."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include import storage, vault
from include.db import connect
from include.settings import get_settings
from tests.combtools import read_output, seed_sample_customers, utc

pytestmark = pytest.mark.airflow
DAG = "honey_comb__sample_customers"
T = utc(2026, 10, 5, 1)  # three hourly intervals of test rows: [01:00, 04:00)
IDS = range(9_000_001, 9_000_031)


def _seed_rows():
    seed_sample_customers(IDS, T, "e2e", "E2E Person", "leak-check.example", "987-65", "+44 7700 9",
                          timedelta(minutes=6))
    return [f"e2e-{i}@leak-check.example" for i in IDS] + [f"987-65-{i % 10000:04d}" for i in IDS]


def _run_outputs(api, run_id):
    out = api.xcoms(DAG, run_id, "extract")  # database combs publish in the extract step
    return out[0]["value"] if out else None


def _wait_backfill_runs(api, intervals):
    runs = {}
    for r in api.runs(DAG):
        if r["run_type"] == "backfill" and r["logical_date"] in intervals:
            runs[r["logical_date"]] = api.wait_run(DAG, r["dag_run_id"], timeout=300)
    return runs


@pytest.fixture(scope="module")
def raw_values(airflow):
    values = _seed_rows()
    airflow.wait_for_dag(DAG)
    airflow.unpause(DAG)
    return values


def test_rest_trigger_with_conf(airflow, raw_values):
    conf = {"window_start": "2026-10-05T01:00:00+00:00", "window_end": "2026-10-05T04:00:00+00:00",
            "execution_type": "snapshot_generation"}
    run = airflow.trigger(DAG, conf=conf)
    done = airflow.wait_run(DAG, run["dag_run_id"])
    assert done["state"] == "success", [(t["task_id"], t["state"]) for t in airflow.task_instances(DAG, run["dag_run_id"])]
    with connect() as conn:
        ex = conn.execute("""SELECT e.*, j.name AS jar, j.document_count FROM honey_comb_executions e
                             JOIN honey_jars j ON j.id = e.target_honey_jar_id WHERE run_key = %s""",
                          (run["dag_run_id"],)).fetchone()
    assert ex["status"] == "completed" and ex["execution_type"] == "snapshot_generation"
    assert ex["records_processed"] == 30 and ex["records_scrubbed"] == 30
    assert ex["jar"].startswith("sample_customers snapshot") and ex["document_count"] == 1


def test_backfill_three_intervals_then_rerun_one_changes_nothing(airflow, raw_values):
    # logical dates 02:00, 03:00, 04:00 name the windows [01,02), [02,03), [03,04)
    intervals = ["2026-10-05T02:00:00Z", "2026-10-05T03:00:00Z", "2026-10-05T04:00:00Z"]
    b = airflow.backfill(DAG, intervals[0], intervals[-1], reprocess="completed")
    airflow.wait_backfill(b["id"])
    runs = _wait_backfill_runs(airflow, intervals)
    assert sorted(runs) == intervals and all(r["state"] == "success" for r in runs.values()), runs
    outs = {iv: _run_outputs(airflow, r["dag_run_id"]) for iv, r in runs.items()}
    keys = sorted(o["key"] for o in outs.values())
    assert len(set(keys)) == 3
    assert all(k.startswith("sample_customers/year=2026/month=10/") for k in keys)
    assert sum(o["records_processed"] for o in outs.values()) == 30  # 10 rows per hour, none twice
    bucket = get_settings().comb_output_bucket
    before = {k: read_output(bucket, k)[1] for k in keys}
    with connect() as conn:
        count_before = \
            conn.execute("SELECT document_count FROM honey_jars WHERE config->>'jar_key' = 'comb:sample_customers'").fetchone()["document_count"]

    # Rerun the middle interval.
    b = airflow.backfill(DAG, intervals[1], intervals[1], reprocess="completed")
    airflow.wait_backfill(b["id"])
    rerun = _wait_backfill_runs(airflow, [intervals[1]])[intervals[1]]
    assert rerun["state"] == "success"
    after = {k: read_output(bucket, k)[1] for k in keys}
    assert after == before  # byte-identical outputs
    listed = [o["Key"] for o in storage.list_keys(bucket, "sample_customers/year=2026/month=10/")]
    assert sorted(listed) == keys
    with connect() as conn:
        jar = conn.execute("SELECT id, document_count FROM honey_jars WHERE config->>'jar_key' = 'comb:sample_customers'").fetchone()
        real = conn.execute("SELECT count(*) AS n FROM documents WHERE honey_jar_id = %s", (jar["id"],)).fetchone()["n"]
    assert jar["document_count"] == real == count_before


def test_no_credentials_or_raw_values_in_logs_xcom_or_parquet(airflow, raw_values):
    secret = vault.read_secret("honey_combs/sample_customers/credentials")["password"]
    salt = vault.read_secret("sting/scrubbing")["hash_key"]
    needles = [secret, salt, *raw_values]
    from include.devstack.stack import AIRFLOW_HOME

    logs = list((AIRFLOW_HOME / "logs" / f"dag_id={DAG}").rglob("*.log"))
    assert logs
    for f in logs:
        text = f.read_text(errors="replace")
        leaked = [n for n in needles if n in text]
        assert not leaked, f"{f} contains {leaked[:3]}"
    for r in airflow.runs(DAG):
        for task in ("begin", "extract", "write_parquet", "load_honey_jar", "acknowledge"):
            try:
                entries = airflow.xcoms(DAG, r["dag_run_id"], task, key=None)
            except RuntimeError:
                continue
            blob = repr([e.get("value") for e in entries])
            assert not [n for n in needles if n in blob], (r["dag_run_id"], task)
    bucket = get_settings().comb_output_bucket
    for o in storage.list_keys(bucket, "sample_customers/"):
        _, body = read_output(bucket, o["Key"])
        text = body.decode("latin-1")
        assert not [n for n in needles if n in text], o["Key"]
    with connect() as conn:
        blob = repr(conn.execute("SELECT configuration, scrubbing_config FROM honey_combs").fetchall()) + \
            repr(conn.execute("SELECT metadata, error_message FROM honey_comb_executions").fetchall())
    assert secret not in blob and salt not in blob


def test_stream_comb_through_airflow_acks_after_the_output(airflow):
    """The Redis stream comb run by the scheduler/REST: every new message lands once in the
    Parquet outputs, and the group has nothing pending afterwards (the acknowledge task ran)."""
    import json
    import time
    import uuid
    from datetime import UTC, datetime

    import redis

    from include.devstack.sample_data import SAMPLE_STREAM

    dag = "honey_comb__sample_events_stream"
    marker = uuid.uuid4().hex
    started = datetime.now(UTC)
    r = redis.Redis.from_url(get_settings().redis_url)
    for i in range(30):
        r.xadd(SAMPLE_STREAM, {"data": json.dumps({"marker": marker, "n": i, "source_ip": "192.0.2.55",
                                                   "password": "hunter2"})})
    airflow.wait_for_dag(dag)
    airflow.unpause(dag)
    run = airflow.trigger(dag, conf={})
    assert airflow.wait_run(dag, run["dag_run_id"], timeout=300)["state"] == "success"
    deadline = time.time() + 300
    while any(x["state"] not in ("success", "failed") for x in airflow.runs(dag)) and time.time() < deadline:
        time.sleep(2)
    with connect() as conn:
        uris = [row["uri"] for row in conn.execute(
            """SELECT e.metadata->'output'->>'uri' AS uri FROM honey_comb_executions e
                 JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = 'sample_events_stream' AND e.started_at >= %s AND e.status = 'completed'""",
            (started,))]
    seen = []
    for uri in uris:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        t, body = read_output(bucket, key)
        assert b"hunter2" not in body and b"192.0.2.55" not in body
        if "marker" in t.column_names:
            seen += [n for m, n in zip(t.column("marker").to_pylist(), t.column("n").to_pylist(), strict=True)
                     if m == marker]
    assert sorted(seen) == list(range(30))
    assert r.xpending(SAMPLE_STREAM, "sting_sample_events_stream")["pending"] == 0
    r.close()

"""Exactly once under Airflow's own triggers: a CLI backfill at its default concurrency (10 runs at
once), then the same backfill reprocessing completed runs after rows changed; and the same logical
date naming the same window on every trigger path (backfill, REST with a date, `dags test`,
schedule, REST with a window conf, REST without a date)."""

from __future__ import annotations

import collections
import os
import subprocess
import time
import urllib.parse
from datetime import datetime, timedelta

import psycopg
import pytest

from include import storage
from include.db import connect
from include.devstack.stack import VENV_BIN
from include.settings import get_settings
from tests.airflowtools import backfill_and_wait
from tests.combtools import read_output, utc

pytestmark = pytest.mark.airflow
DAG = "honey_comb__sample_customers"
BASE = 9_100_000


@pytest.fixture(scope="module")
def H(airflow):
    """Four ticks of a day no run of the DAG has touched yet (the metadata database outlives a
    session): the backfill's logical dates H[1..3] name the windows [H0,H1), [H1,H2), [H2,H3)."""
    import random

    airflow.wait_for_dag(DAG)
    airflow.unpause(DAG)
    rnd = random.Random()
    for _ in range(50):
        day = utc(2026, 2, 1) + timedelta(days=rnd.randrange(0, 200))
        ticks = [day + timedelta(hours=h) for h in range(6, 10)]
        if not airflow.runs_between(DAG, ticks[0].isoformat(), ticks[3].isoformat()):
            return ticks
    raise RuntimeError("no untouched day found")


def _source():
    s = get_settings()
    return psycopg.connect(s.dsn(s.sample_source_db), autocommit=True)


def _upsert(c, i: int, ts: datetime, segment: str) -> None:
    c.execute(
        """INSERT INTO crm.customers (id, full_name, email, ssn, phone_mobile, phone_home, date_of_birth, city,
               country, segment, lifetime_value, notes, created_at, updated_at)
           VALUES (%s, %s, %s, '987-65-4321', '+44 7700 900123', NULL, '1980-02-03', 'Leeds', 'GB', %s, 10, 'bf',
                   %s, %s)
           ON CONFLICT (id) DO UPDATE SET segment = EXCLUDED.segment, updated_at = EXCLUDED.updated_at""",
        (i, f"Backfill Person {i}", f"bf-{i}@example.org", segment, ts - timedelta(days=1), ts))


def _airflow_cli(*args: str) -> str:
    p = subprocess.run([str(VENV_BIN / "airflow"), *args], env=os.environ.copy(), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p.stdout


def _backfill_and_wait(api, ticks: list[datetime], reprocess: str | None, dag: str = DAG) -> list[dict]:
    return backfill_and_wait(api, dag, ticks, reprocess)


def _delivered(H) -> dict[int, list[tuple[str, str]]]:
    """Test row id -> [(segment, output key)] over every output object of the comb that month."""
    bucket = get_settings().comb_output_bucket
    seen = collections.defaultdict(list)
    for o in storage.list_keys(bucket, f"sample_customers/year={H[0]:%Y}/month={H[0]:%m}/"):
        if f"__{H[0]:%Y%m%d}T" not in o["Key"]:  # other days' outputs (other tests, sessions)
            continue
        t, _ = read_output(bucket, o["Key"])
        if not t.num_rows:
            continue
        for i, seg in zip(t.column("id").to_pylist(), t.column("segment").to_pylist(), strict=True):
            if BASE <= i < BASE + 1000:
                seen[i].append((seg, o["Key"]))
    return seen


def test_backfill_at_default_concurrency_then_reprocessed_delivers_each_row_once(airflow, H):
    with _source() as c:
        c.execute("DELETE FROM crm.customers WHERE id >= %s AND id < %s", (BASE, BASE + 1000))
        # 20 rows per window, including rows exactly on the boundaries and in the last second.
        for w in range(3):
            for k in range(20):
                ts = H[w] + timedelta(seconds=(3599 if k == 19 else 180 * k))
                _upsert(c, BASE + 100 * w + k, ts, "v1")
    runs = _backfill_and_wait(airflow, H[1:], None)
    assert all(r["state"] == "success" for r in runs), [(r["logical_date"], r["state"]) for r in runs]
    seen = _delivered(H)
    want = {BASE + 100 * w + k for w in range(3) for k in range(20)}
    assert set(seen) == want
    assert [i for i, v in seen.items() if len(v) != 1] == []

    # Rows change: 10 rows of the first window move into the third (a new version), 15 late rows
    # arrive in the second. Reprocess every interval, 3 at once again.
    with _source() as c:
        for k in range(10):
            _upsert(c, BASE + k, H[2] + timedelta(minutes=30, seconds=k), "v2")
        for k in range(15):
            _upsert(c, BASE + 500 + k, H[1] + timedelta(minutes=2 * k), "late")
    runs = _backfill_and_wait(airflow, H[1:], "completed")
    assert all(r["state"] == "success" for r in runs), [(r["logical_date"], r["state"]) for r in runs]
    seen = _delivered(H)
    want |= {BASE + 500 + k for k in range(15)}
    assert set(seen) == want
    assert [i for i, v in seen.items() if len(v) != 1] == []  # each row exactly once ...
    assert all(seen[BASE + k][0][0] == "v2" for k in range(10))  # ... in its latest version
    assert all(seen[BASE + k][0][1].endswith(f"__{H[2]:%Y%m%dT%H%M%SZ}__{H[3]:%Y%m%dT%H%M%SZ}.parquet")
               for k in range(10))

    # every attempt of every step of these runs is in the audit, and staging is empty
    with connect() as conn:
        rows = conn.execute(
            """SELECT e.run_key, a.step, a.state FROM honey_comb_execution_attempts a
                 JOIN honey_comb_executions e ON e.id = a.execution_id WHERE e.run_key = ANY(%s)""",
            ([r["dag_run_id"] for r in runs],)).fetchall()
    steps = collections.Counter((r["step"], r["state"]) for r in rows)
    assert steps[("begin", "success")] >= 3 and steps[("extract", "success")] >= 3
    assert steps[("load_honey_jar", "success")] >= 3
    bucket = get_settings().comb_output_bucket
    assert not list(storage.list_keys(bucket, "_staging/sample_customers/"))


def _execution_window(run_id: str) -> dict:
    with connect() as conn:
        row = conn.execute(
            """SELECT e.metadata FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = 'sample_customers' AND e.run_key = %s""", (run_id,)).fetchone()
    assert row, run_id
    return row["metadata"]["window"]


def test_one_logical_date_names_one_window_on_every_trigger_path(airflow, H):
    """Airflow allows one run per logical date, so each path gets its own date here; every one
    must follow the one rule: logical date X extracts [last schedule tick before X, X)."""

    def check(run_id: str, x: datetime, path: str) -> None:
        w = _execution_window(run_id)
        start = x.replace(minute=0, second=0, microsecond=0)
        start = start - timedelta(hours=1) if start == x else start
        assert (w["start"], w["end"]) == (start.isoformat(), x.isoformat()), (path, x, w)

    # REST trigger with a logical date on the schedule, and one off it
    for x in (H[0], H[0] - timedelta(minutes=25)):
        run = airflow.trigger(DAG, logical_date=x.isoformat())
        assert airflow.wait_run(DAG, run["dag_run_id"])["state"] == "success"
        check(run["dag_run_id"], x, "REST logical_date")
    # where a user looks: the output's asset event carries the window and the counts
    q = urllib.parse.urlencode({"source_dag_id": DAG, "source_run_id": run["dag_run_id"]})
    events = airflow._req("GET", f"/api/v2/assets/events?{q}")["asset_events"]
    assert events and events[0]["extra"]["window"]["end"] == x.isoformat()
    assert {"records_processed", "records_skipped", "null_cursor", "uri"} <= set(events[0]["extra"])
    # REST trigger with the same window as conf (no logical date)
    run = airflow.trigger(DAG, conf={"window_start": (H[0] - timedelta(hours=1)).isoformat(),
                                     "window_end": H[0].isoformat()})
    assert airflow.wait_run(DAG, run["dag_run_id"])["state"] == "success"
    check(run["dag_run_id"], H[0], "REST window conf")
    # airflow dags test DAG X
    x = H[0] - timedelta(hours=2)
    _airflow_cli("dags", "test", DAG, x.isoformat())
    with connect() as conn:
        row = conn.execute(
            """SELECT e.run_key FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = 'sample_customers' AND e.metadata->>'logical_date' = %s
                ORDER BY e.started_at DESC LIMIT 1""", (x.isoformat(),)).fetchone()
    check(row["run_key"], x, "dags test")
    # Backfill runs (the test above ran them) and scheduled runs
    checked = collections.Counter()
    for r in airflow.runs(DAG) + airflow.runs_between(DAG, H[0].isoformat(), H[3].isoformat()):
        if r["state"] != "success" or not r["logical_date"] or r["run_type"] not in ("backfill", "scheduled"):
            continue
        check(r["dag_run_id"], datetime.fromisoformat(r["logical_date"].replace("Z", "+00:00")), r["run_type"])
        checked[r["run_type"]] += 1
    assert checked["backfill"] >= 3 and checked["scheduled"] >= 1  # unpausing started the latest tick
    # REST trigger without a logical date: the window ends at the trigger time
    run = airflow.trigger(DAG)
    assert airflow.wait_run(DAG, run["dag_run_id"])["state"] == "success"
    w = _execution_window(run["dag_run_id"])
    after = datetime.fromisoformat(airflow.run(DAG, run["dag_run_id"])["run_after"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(w["end"])
    assert abs((end - after).total_seconds()) < 1.5
    assert datetime.fromisoformat(w["start"]) == end.replace(minute=0, second=0, microsecond=0)


def test_unknown_conf_key_is_rejected(airflow):
    """Over REST the API server refuses it before a run exists (tests/test_conf_guard.py); a path
    that bypasses the API (`airflow dags test`) gets a run that fails in `begin`, naming the key,
    and that run's note says so."""
    import json
    import random

    airflow.wait_for_dag(DAG)
    with pytest.raises(RuntimeError, match="-> 400"):
        airflow.trigger(DAG, conf={"windw_start": "2026-02-14T07:00:00Z"})
    x = utc(2026, 9, 3, 5) + timedelta(minutes=random.randrange(0, 6000), seconds=random.randrange(60))
    p = subprocess.run([str(VENV_BIN / "airflow"), "dags", "test", DAG, x.isoformat(), "-c",
                        json.dumps({"windw_start": "2026-02-14T07:00:00Z"})],
                       env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    with connect() as conn:
        ex = conn.execute(
            """SELECT e.status, e.error_message, e.metadata FROM honey_comb_executions e
                 JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = 'sample_customers' AND e.error_message LIKE %s
                ORDER BY e.started_at DESC LIMIT 1""", ("%windw_start%",)).fetchone()
    assert ex["status"] == "failed" and "unknown conf key(s) 'windw_start'" in ex["error_message"]
    assert ex["metadata"]["cause"] == "run_parameters"
    notes = [r.get("note") or "" for r in airflow.runs_between(DAG, x.isoformat(), x.isoformat())]
    assert any("windw_start" in n for n in notes), notes


def test_checkpointed_comb_backfill_at_default_concurrency_all_succeed(airflow, H):
    """A files comb backfilled over three ticks at once, with new files in its landing folder:
    the runs take turns on the comb's read lease, so each new record is delivered exactly once
    (without it, runs reading the same file ledger at once each took the new files) and none
    fails."""
    import json
    import uuid

    from include.devstack.stack import STACK

    dag = "honey_comb__sample_sessions_files"
    airflow.wait_for_dag(dag)
    airflow.unpause(dag)  # (backfill runs of a paused DAG stay queued)
    deadline = time.time() + 300
    while time.time() < deadline:  # let the catch-up scheduled run finish first
        recent = airflow._req("GET", f"/api/v2/dags/{dag}/dagRuns?limit=20&order_by=-run_after")["dag_runs"]
        if all(r["state"] in ("success", "failed") for r in recent):
            break
        time.sleep(2)
    with connect() as conn:
        db_start = conn.execute("SELECT NOW() AS t").fetchone()["t"]
    marker = uuid.uuid4().hex
    landing = STACK / "landing" / "sessions" / "backfill-test"
    landing.mkdir(parents=True, exist_ok=True)
    for f in range(3):
        (landing / f"sessions-{marker}-{f}.jsonl").write_text("\n".join(
            json.dumps({"session_id": f"{marker}-{f}-{i}", "marker": marker, "src_ip": "203.0.113.7",
                        "username": "root", "command": "uname -a"}) for i in range(10)) + "\n")
    ticks = [H[0] + timedelta(minutes=30 * k) for k in range(1, 4)]  # three */30 ticks
    done = _backfill_and_wait(airflow, ticks, "completed", dag)
    assert all(r["state"] == "success" for r in done), [(r["logical_date"], r["state"]) for r in done]
    with connect() as conn:  # every run of the comb since the files appeared (a scheduled tick included)
        rows = conn.execute(
            """SELECT e.metadata->'output'->>'uri' AS uri FROM honey_comb_executions e
                 JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = 'sample_sessions_files' AND e.started_at >= %s AND e.status = 'completed'""",
            (db_start,)).fetchall()
    sessions = []
    for r in rows:
        bucket, key = r["uri"].removeprefix("s3://").split("/", 1)
        t, _ = read_output(bucket, key)
        if "marker" in t.column_names:
            sessions += [s for s, m in zip(t.column("session_id").to_pylist(), t.column("marker").to_pylist(),
                                           strict=True) if m == marker]
    assert sorted(sessions) == sorted(f"{marker}-{f}-{i}" for f in range(3) for i in range(10))


def test_dags_test_beside_a_backfill_of_the_same_date_leaves_a_consistent_audit(airflow):
    """`airflow dags test DAG X` deletes the DAG run that holds logical date X (Airflow's own
    behaviour) while a backfill runs it: the deleted run's execution must not stay `running`
    forever. The next comb run's `begin` closes it (failed, cause run_deleted, not counted toward
    auto-pause); the data is exactly once."""
    import random

    airflow.wait_for_dag(DAG)
    airflow.unpause(DAG)
    for _ in range(50):  # a day no run of the DAG has touched (the metadata database outlives a session)
        day = utc(2026, 3, 1) + timedelta(days=random.randrange(0, 150))
        H = [day + timedelta(hours=h) for h in range(14, 18)]
        if not airflow.runs_between(DAG, H[0].isoformat(), H[3].isoformat()):
            break
    base = BASE + 800_000 + random.randrange(10_000) * 40
    with _source() as c:
        for i in range(30):
            _upsert(c, base + i, H[0] + timedelta(minutes=6 * i), "dt")
    bf = subprocess.Popen([str(VENV_BIN / "airflow"), "backfill", "create", "--dag-id", DAG, "--from-date",
                           H[1].isoformat(), "--to-date", H[3].isoformat()], env=os.environ.copy(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4)
    _airflow_cli("dags", "test", DAG, H[2].isoformat())
    bf.wait(timeout=300)
    deadline = time.time() + 300
    while time.time() < deadline:  # the backfill's remaining runs finish
        runs = [r for r in airflow.runs_between(DAG, H[1].isoformat(), H[3].isoformat()) if r["run_type"] == "backfill"]
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(3)
    # one more run of the comb (a later window): its begin checks the comb's open executions
    run = airflow.trigger(DAG, conf={"window_start": H[3].isoformat(), "window_end": (H[3] + timedelta(hours=1)).isoformat()})
    assert airflow.wait_run(DAG, run["dag_run_id"])["state"] == "success"
    with connect() as conn:
        rows = conn.execute(
            """SELECT e.run_key, e.status, e.error_message, e.metadata FROM honey_comb_executions e
                 JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = 'sample_customers' AND (e.metadata->>'logical_date')::timestamptz BETWEEN %s AND %s""",
            (H[1], H[3])).fetchall()
    existing = {r["dag_run_id"]: r["state"] for r in airflow.runs_between(DAG, H[1].isoformat(), H[3].isoformat())}
    assert [r["run_key"] for r in rows if r["status"] == "running"] == [], rows
    for r in rows:
        if r["run_key"] in existing:  # the audit agrees with Airflow
            assert (r["status"] == "completed") == (existing[r["run_key"]] == "success"), (r, existing)
        else:  # the run Airflow deleted
            assert r["status"] == "failed" and r["metadata"]["cause"] == "run_deleted", r
            assert "no longer exists" in r["error_message"]
    ids = collections.Counter()
    bucket = get_settings().comb_output_bucket
    for o in storage.list_keys(bucket, f"sample_customers/year={day:%Y}/month={day:%m}/"):
        if f"__{day:%Y%m%d}T" in o["Key"]:
            t, _ = read_output(bucket, o["Key"])
            ids.update(i for i in t.column("id").to_pylist() if base <= i < base + 30)
    assert set(ids.values()) == {1} and len(ids) == 30, ids

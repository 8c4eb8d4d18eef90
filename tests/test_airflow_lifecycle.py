"""The lifecycle DAGs through Airflow: `airflow dags test` (the real task runner, the typed trigger
form, the provider-hook clients), and `retention_sweep` through the scheduler with a run made for
its latest tick before unpausing (an unpaused retention DAG would otherwise start a full sweep of
today's interval in the middle of the other tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime

import pytest

from include.clients import Clients


@pytest.fixture
def clients(stack):
    with Clients.from_settings() as c:
        yield c


def dags_test(dag_id: str, conf: dict, logical_date: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if logical_date:
        argv.append(logical_date)
    argv += ["-c", json.dumps(conf)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, env=os.environ.copy())


def test_retention_sweep_dry_run_through_airflow_records_audit_rows(clients):
    at = datetime(2026, 3, 1, 4, 30, tzinfo=UTC).isoformat()
    with clients.db() as conn:
        before = conn.execute("SELECT coalesce(max(id), 0) AS m FROM retention_runs").fetchone()["m"]
    p = dags_test("retention_sweep", {"dry_run": True, "policies": ["events", "system", "buckets"],
                                      "airflow_metadata": False}, at)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    with clients.db() as conn:
        rows = conn.execute("SELECT * FROM retention_runs WHERE id > %s ORDER BY id", (before,)).fetchall()
    assert rows and all(r["dry_run"] for r in rows)
    assert {r["policy"] for r in rows} == {"events", "system", "buckets"}
    # cut-offs count back from the run's interval end (the logical date's tick)
    warm = next(r for r in rows if r["policy"] == "events" and r["tier"] == "warm" and r["action"] == "archive")
    assert (datetime.fromisoformat(at) - warm["cutoff"]).days == 90


def test_retention_sweep_form_refuses_unknown_policy(clients):
    p = dags_test("retention_sweep", {"dry_run": True, "policies": ["evnts"]})
    assert p.returncode != 0


def test_backup_then_point_in_time_drill_through_airflow(clients):
    p = dags_test("backup_postgres", {"backup_type": "incr"})
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    p = dags_test("restore_drill", {"kinds": ["postgres", "redis"], "backup_first": True})
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    with clients.db() as conn:
        drills = conn.execute("SELECT kind, status, rto_seconds, rpo_seconds FROM restore_drills "
                              "WHERE finished_at > NOW() - interval '15 minutes' ORDER BY id DESC LIMIT 2").fetchall()
        assert {d["kind"] for d in drills} == {"postgres", "redis"} and all(d["status"] == "passed" for d in drills)
        b = conn.execute("SELECT * FROM backup_catalog WHERE kind = 'postgres' ORDER BY id DESC LIMIT 1").fetchone()
    assert b["status"] == "ok" and b["tool_output"]


@pytest.mark.airflow
def test_retention_system_sweep_with_airflow_db_clean_through_the_scheduler(airflow, clients):
    """`retention_sweep` as the scheduler runs it (unpaused, LocalExecutor), with `airflow db
    clean` for real: the task reaches the metadata database through the maintenance connection
    `sting_airflow_metadata` (an Airflow 3 task cannot otherwise: "Could not parse SQLAlchemy
    URL"). The run is made for the schedule's latest tick before unpausing, so the scheduler
    runs it (with the `system` policy only: the other policies would sweep the other tests' data)
    and creates no full sweep of its own. An event-log row two years old is cleaned."""
    import psycopg
    from croniter import croniter

    dag = "retention_sweep"
    airflow.wait_for_dag(dag)
    now = datetime.now(UTC)
    tick = croniter("30 4 * * *", now).get_prev(datetime).astimezone(UTC)
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    marker = f"sting-retention-test-{now.timestamp()}"
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("INSERT INTO log (dttm, event, extra) VALUES (now() - interval '2 years', 'sting_test', %s)",
                  (marker,))
    for r in airflow.runs_between(dag, tick.isoformat(), tick.isoformat()):
        airflow._req("DELETE", f"/api/v2/dags/{dag}/dagRuns/{urllib.parse.quote(r['dag_run_id'], safe='')}")
    run = airflow.trigger(dag, conf={"policies": ["system"], "airflow_metadata": True, "dry_run": False},
                          logical_date=tick.isoformat())
    try:
        airflow.unpause(dag)
        done = airflow.wait_run(dag, run["dag_run_id"], timeout=900)
    finally:
        airflow._req("PATCH", f"/api/v2/dags/{dag}", {"is_paused": True})
    states = {t["task_id"]: t["state"] for t in airflow.task_instances(dag, run["dag_run_id"])}
    assert done["state"] == "success", states
    assert len(airflow.runs_between(dag, tick.isoformat(), tick.isoformat())) == 1  # no run of its own
    with clients.db() as conn:
        row = conn.execute("""SELECT rr.action, rr.dry_run, rr.detail FROM retention_runs rr
                                JOIN job_runs j ON j.id::text = rr.run_id
                               WHERE j.job = 'retention_sweep' AND j.run_key = %s AND rr.tier = 'airflow_metadata'""",
                           (run["dag_run_id"],)).fetchone()
    assert row and row["action"] == "delete" and not row["dry_run"] and row["detail"]["exit"] == 0, row
    assert "log\nFound 1 rows" in row["detail"]["output"] or "Performing Delete" in row["detail"]["output"]
    with psycopg.connect(url) as c:
        assert c.execute("SELECT count(*) FROM log WHERE extra = %s", (marker,)).fetchone()[0] == 0


BACKUP_DAGS = ("backup_postgres", "backup_redis", "backup_chroma", "backup_object_storage")


@pytest.mark.airflow
def test_backups_from_day_one(airflow, clients):
    """A stack brought up from nothing has a full PostgreSQL backup (taken by `make stack-up` when
    the repository holds none, recorded in the catalog) and its backup DAGs unpaused: WAL
    archived from segment 1 has a base backup to be replayed onto."""
    from include.devstack import stack

    backups = stack.pgbackrest().backups()
    assert any(b["type"] == "full" for b in backups), backups
    with clients.db() as conn:
        assert conn.execute("SELECT count(*) AS n FROM backup_catalog WHERE kind = 'postgres' AND backup_type = 'full' "
                            "AND status = 'ok'").fetchone()["n"] >= 1
    for d in BACKUP_DAGS:
        assert airflow.wait_for_dag(d)["is_paused"] is False, f"{d} is paused"
    for d in ("retention_sweep", "restore_drill"):  # these stay off until an operator says so
        assert airflow.wait_for_dag(d)["is_paused"] is True, d

"""The jobs home: one module per job, run records, intervals, the DAG builder's shape and trigger
form, connections through provider hooks, and no Airflow import in include/."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.clients import Clients
from include.intervals import Interval, IntervalError, resolve_interval
from include.jobs import JOB_MODULES, load_job
from include.jobs.base import Job, Step
from include.jobs.runner import begin, run_job

REPO = Path(__file__).resolve().parent.parent


def test_nothing_in_include_imports_airflow():
    offenders = []
    for p in (REPO / "include").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{p.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "airflow"]
    assert offenders == []


def test_mysql_reader_does_not_import_the_postgres_reader():
    src = (REPO / "include/honeycomb/sources/mysql.py").read_text()
    assert "sources.postgres" not in src and "postgres_source" not in src


def test_the_same_logical_date_means_the_same_interval():
    x = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    assert resolve_interval("0 2 * * *", logical_date=x) == Interval(x - timedelta(days=1), x)
    assert resolve_interval("0 * * * *", logical_date=x) == Interval(x - timedelta(hours=1), x)
    # a manual trigger without a logical date: its run-after time names the interval
    assert resolve_interval("0 * * * *", run_after=x + timedelta(minutes=20)) == Interval(x, x + timedelta(minutes=20))
    assert resolve_interval("0 * * * *", logical_date=x, interval_start="2026-11-01T00:00:00Z",
                            interval_end="2026-11-02T00:00:00") == Interval(datetime(2026, 11, 1, tzinfo=UTC),
                                                                             datetime(2026, 11, 2, tzinfo=UTC))
    with pytest.raises(IntervalError):
        resolve_interval("0 * * * *", interval_start="2026-11-02T00:00:00Z", interval_end="2026-11-01T00:00:00Z")


def _counting(ctx):
    return {"hours": int((ctx.interval.end - ctx.interval.start).total_seconds() // 3600), "seen": sorted(ctx.results)}


def _boom(ctx):
    raise RuntimeError("the source is down")


def test_every_run_is_recorded_with_interval_counts_and_error(stack):
    c = Clients.from_settings()
    ok = Job("test_job_ok", "0 * * * *", "t", (Step("a", _counting), Step("b", _counting)))
    x = datetime(2026, 11, 25, 3, tzinfo=UTC)
    counts = run_job(ok, c, run_key=f"ok-{uuid.uuid4().hex[:6]}", logical_date=x)
    assert counts["a"]["hours"] == 1 and counts["b"]["seen"] == ["a"]
    bad = Job("test_job_bad", "0 * * * *", "t", (Step("a", _counting), Step("b", _boom)))
    key = f"bad-{uuid.uuid4().hex[:6]}"
    with pytest.raises(RuntimeError):
        run_job(bad, c, run_key=key, logical_date=x)
    with c.db() as conn:
        good = conn.execute("SELECT * FROM job_runs WHERE job = 'test_job_ok' ORDER BY started_at DESC LIMIT 1").fetchone()
        failed = conn.execute("SELECT * FROM job_runs WHERE run_key = %s", (key,)).fetchone()
        steps = conn.execute("SELECT step, status, error FROM job_run_steps WHERE run_id = %s ORDER BY step",
                             (failed["id"],)).fetchall()
    assert (good["status"], good["interval_start"], good["interval_end"]) == ("success", x - timedelta(hours=1), x)
    assert good["counts"]["a"]["hours"] == 1
    assert (failed["status"], failed["failed_step"]) == ("failed", "b") and "the source is down" in failed["error"]
    assert [(s["step"], s["status"]) for s in steps] == [("a", "success"), ("b", "failed")]
    with pytest.raises(ValueError, match="unknown parameter"):
        begin(ok, c, run_key="x", conf={"lookbak_days": 3})


def test_each_job_is_one_module_and_one_dag_with_a_trigger_form():
    from airflow.sdk import CronTriggerTimetable

    from sting_airflow.job_dag import build_job_dag

    for name in JOB_MODULES:
        job = load_job(name)
        assert (REPO / "include/jobs" / f"{name}.py").exists() and (REPO / "dags" / f"{name}.py").exists()
        dag = build_job_dag(job)
        assert dag.dag_id == name and isinstance(dag.timetable, CronTriggerTimetable)
        assert set(dag.params) == set(job.params) | {"interval_start", "interval_end"}
        for k, p in dag.params.items():
            assert p.schema.get("type"), f"{name}.{k} has no type"
        ids = {t.task_id for t in dag.tasks}
        assert ids == {"begin", "finish", "finalize_on_failure", *(s.name for s in job.steps)}
    assert load_job("hourly_aggregation").schedule == "0 * * * *"
    assert load_job("daily_intelligence").schedule == "0 2 * * *"
    assert [s.name for s in load_job("hourly_aggregation").steps][1:4] == [
        "aggregate_event_statistics", "update_threat_scores", "refresh_materialized_views"]
    assert [s.name for s in load_job("daily_intelligence").steps] == [
        "import_threat_feeds", "correlate_events", "generate_daily_report"]


def test_clients_come_from_provider_hooks_without_fallback(stack, monkeypatch):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from sting_airflow.hooks import StingDbHook, airflow_clients

    c = airflow_clients()
    with c.db() as conn:
        assert conn.execute("SELECT current_database() AS d").fetchone()["d"] == "sting"
    assert "sting-comb-outputs" in [b["Name"] for b in c.s3.list_buckets()["Buckets"]]
    assert c.redis.ping()
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    assert isinstance(StingDbHook(), PostgresHook)
    assert type(c.s3).__name__ == type(S3Hook(aws_conn_id="sting_s3").get_conn()).__name__
    monkeypatch.setenv("AIRFLOW_CONN_STING_DB_BROKEN", "postgres://nobody@127.0.0.1:1/nothing")
    import psycopg

    with pytest.raises(psycopg.OperationalError):  # a broken connection fails; nothing falls back to localhost
        with airflow_clients(db_conn_id="sting_db_broken").db():
            pass
    with pytest.raises(AirflowNotFoundException):
        airflow_clients(db_conn_id="no_such_connection")

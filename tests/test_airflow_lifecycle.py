"""The lifecycle DAGs through Airflow (`airflow dags test`: the real task runner, the typed trigger
form, the provider-hook clients), without unpausing them: an unpaused retention DAG would start a
real sweep of today's interval in the middle of the other tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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

"""Scale-out on the CeleryExecutor, docker-compose's shape, on this machine: the stack's Airflow
restarted with a Celery worker on the stack's Redis (`make stack-up EXECUTOR=celery`), the same
DAGs, a queue and a pool per workload. A worker killed (the whole process tree, as a lost machine)
in the middle of a comb's extract: the try is failed by the scheduler when its heartbeats stop, the
task is retried on the restarted worker, and the delivery holds every row once."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from include.db import connect
from include.settings import get_settings
from tests.combtools import read_output, seed_sample_customers, source_tables_waited_on, utc

REPO = Path(__file__).resolve().parents[1]
DAG = "honey_comb__sample_customers"
T = utc(2026, 10, 8, 5)  # a window of this test's own rows: [05:00, 06:00)
IDS = range(9_200_001, 9_200_041)


def test_worker_queues_are_the_workloads_queues_and_compose_serves_them_all():
    import yaml

    from include.devstack import stack
    from sting_airflow import workloads

    assert set(stack.CELERY_QUEUES) == {"default", *workloads.QUEUES}
    pools = json.loads((REPO / "plugins/sting_airflow/pools.json").read_text())
    assert {w.pool for w in workloads.ALL} == set(pools)
    # the local parallelism is the pools' slots: no workload waits for another's executor slot
    assert stack.pool_slots() == sum(p["slots"] for p in pools.values())
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    served = set()
    for svc in compose["services"].values():
        cmd = svc.get("command") or []
        if cmd[:2] == ["celery", "worker"]:
            served |= set(cmd[cmd.index("--queues") + 1].split(","))
    assert served == set(stack.CELERY_QUEUES), served


def test_visibility_timeout_outlasts_every_task():
    """A message is handed out again after the visibility timeout: it must outlast the longest
    task, or a running task's message would be delivered a second time."""
    from airflow.dag_processing.dagbag import DagBag

    from include.devstack import stack

    bag = DagBag(dag_folder=str(REPO / "dags"))
    longest = max((t.execution_timeout or timedelta(0)) for d in bag.dags.values() for t in d.tasks)
    assert longest > timedelta(hours=1)
    assert timedelta(seconds=stack.CELERY_VISIBILITY_TIMEOUT) > longest
    compose = (REPO / "docker-compose.yaml").read_text()
    assert f'AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT: "{stack.CELERY_VISIBILITY_TIMEOUT}"' in compose


@pytest.fixture(scope="module")
def celery_airflow(airflow, stack):
    """The stack's Airflow on the CeleryExecutor for this module, then back to what it was."""
    before = stack.running_executor() or "local"
    print(stack.ensure_airflow("celery"))
    yield airflow
    print(stack.ensure_airflow(before))


def _attempts(run_key: str) -> list[tuple]:
    with connect() as conn:
        rows = conn.execute(
            """SELECT a.step, a.try_number, a.state FROM honey_comb_execution_attempts a
                 JOIN honey_comb_executions e ON e.id = a.execution_id JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = 'sample_customers' AND e.run_key = %s ORDER BY a.started_at, a.id""",
            (run_key,)).fetchall()
    return [(r["step"], r["try_number"], r["state"]) for r in rows]


def _kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and everything under it (worker, pool processes, task supervisors, tasks)."""
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    return [p.pid for p in procs]


def test_tasks_run_on_the_worker_in_their_workloads_queue(celery_airflow):
    api = celery_airflow
    paused = api.wait_for_dag("hourly_aggregation")["is_paused"]
    api.unpause("hourly_aggregation")
    run = api.trigger("hourly_aggregation", conf={"interval_start": "2026-10-08T00:00:00+00:00",
                                                  "interval_end": "2026-10-08T01:00:00+00:00"})
    done = api.wait_run("hourly_aggregation", run["dag_run_id"], timeout=300)
    tis = api.task_instances("hourly_aggregation", run["dag_run_id"])
    assert done["state"] == "success", [(t["task_id"], t["state"]) for t in tis]
    ran = [t for t in tis if t["state"] == "success"]
    assert ran and {(t["queue"], t["pool"]) for t in ran} == {("jobs", "jobs")}
    assert all(t["hostname"] for t in ran)
    api._req("PATCH", "/api/v2/dags/hourly_aggregation", {"is_paused": paused})


def test_worker_killed_mid_task_the_task_is_retried_not_stuck(celery_airflow, stack):
    api = celery_airflow
    seed_sample_customers(IDS, T, "celery", "Celery Person", "kill-test.example", "987-66", "+44 7700 8",
                          timedelta(minutes=1))
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    s = get_settings()
    # The source is busy (a lock on the table): the extract blocks inside its query, in the
    # middle of the task, until the worker running it is killed.
    blocker = psycopg.connect(s.dsn(s.sample_source_db))
    blocker.execute("LOCK TABLE crm.customers IN ACCESS EXCLUSIVE MODE")
    try:
        run = api.trigger(DAG, conf={"window_start": T.isoformat(), "window_end": (T + timedelta(hours=1)).isoformat(),
                                     "execution_type": "snapshot_generation"})
        run_id = run["dag_run_id"]
        deadline = time.time() + 180
        while time.time() < deadline and ("extract", 1, "running") not in _attempts(run_id):
            time.sleep(0.5)
        assert ("extract", 1, "running") in _attempts(run_id), _attempts(run_id)
        ti = next(t for t in api.task_instances(DAG, run_id) if t["task_id"] == "extract")
        assert ti["state"] == "running" and ti["queue"] == "combs" and ti["try_number"] == 1
        while time.time() < deadline and not source_tables_waited_on(("customers",)):  # inside its source query
            time.sleep(0.5)
        assert source_tables_waited_on(("customers",))
        killed = _kill_tree(stack._pid(f"airflow-{stack.CELERY_WORKER}"))
        assert len(killed) >= 3  # the worker, its pool processes, the task's supervisor and the task
    finally:
        blocker.rollback()
        blocker.close()
    for pid in killed:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    killed_at = time.time()
    print(stack.ensure_airflow("celery"))  # the worker comes back (compose: restart: unless-stopped)
    done = api.wait_run(DAG, run_id, timeout=600)
    tis = {t["task_id"]: t for t in api.task_instances(DAG, run_id)}
    assert done["state"] == "success", {k: (t["state"], t["try_number"]) for k, t in tis.items()}
    print(f"run done {time.time() - killed_at:.0f} s after the kill")
    assert tis["extract"]["try_number"] == 2 and tis["extract"]["state"] == "success"
    assert tis["load_honey_jar"]["state"] == "success" and tis["finalize_on_failure"]["state"] == "skipped"
    attempts = _attempts(run_id)
    assert ("extract", 1, "killed") in attempts and ("extract", 2, "success") in attempts
    assert [a for a in attempts if a[0] == "extract" and a[2] == "success"] == [("extract", 2, "success")]
    with connect() as conn:
        ex = conn.execute("""SELECT e.status, e.records_processed FROM honey_comb_executions e
                             WHERE e.run_key = %s""", (run_id,)).fetchone()
    assert ex["status"] == "completed" and ex["records_processed"] == len(IDS)
    out = api.xcoms(DAG, run_id, "extract")[0]["value"]
    table, _ = read_output(out["bucket"], out["key"])
    assert table.num_rows == len(IDS)  # neither lost nor doubled

"""Workloads cannot starve each other (plugins/sting_airflow/workloads.py): with the `combs` pool
full of comb runs stuck on a busy source, a third comb waits for a combs slot, and
event_ingestion, in its own pool, still runs to the end."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest

from include.settings import get_settings
from tests.combtools import source_tables_waited_on, utc

pytestmark = pytest.mark.airflow
BLOCKED = ("honey_comb__sample_customers", "honey_comb__sample_support_tickets")
WAITING = "honey_comb__sample_threat_feed_api"
T = utc(2026, 10, 9, 3)
TABLES = ("customers", "support_tickets")


def _combs_pool(api) -> dict:
    return api._req("GET", "/api/v2/pools/combs")


def _ti(api, dag, run_id, task):
    return next(t for t in api.task_instances(dag, run_id) if t["task_id"] == task)


def test_full_combs_pool_delays_combs_only_and_events_still_flow(airflow):
    api = airflow
    paused = {}
    for dag in (*BLOCKED, WAITING, "event_ingestion"):
        paused[dag] = api.wait_for_dag(dag)["is_paused"]
        api.unpause(dag)
    s = get_settings()
    blocker = psycopg.connect(s.dsn(s.sample_source_db))
    blocker.execute("LOCK TABLE crm.customers, crm.support_tickets IN ACCESS EXCLUSIVE MODE")
    window = {"window_start": T.isoformat(), "window_end": (T + timedelta(hours=1)).isoformat()}
    try:
        runs = {dag: api.trigger(dag, conf=window)["dag_run_id"] for dag in BLOCKED}
        # both combs' extracts are stuck inside their source queries, waiting for the lock (a
        # scheduled run of the same combs, if one is due, blocks on it just the same)
        deadline = time.time() + 240
        while time.time() < deadline and source_tables_waited_on(TABLES) < {"customers", "support_tickets"}:
            time.sleep(1)
        assert source_tables_waited_on(TABLES) == {"customers", "support_tickets"}
        assert _combs_pool(api)["running_slots"] == 2 and _combs_pool(api)["open_slots"] == 0
        # a third comb waits for a combs slot ...
        waiting = api.trigger(WAITING, conf={})["dag_run_id"]
        # ... while event ingestion, in its own pool, runs to the end
        ev = api.trigger("event_ingestion", conf={"interval_start": "2026-10-09T03:00:00+00:00",
                                                  "interval_end": "2026-10-09T03:01:00+00:00"})
        done = api.wait_run("event_ingestion", ev["dag_run_id"], timeout=240)
        assert done["state"] == "success"
        assert _ti(api, WAITING, waiting, "begin")["state"] in (None, "scheduled")  # no combs slot yet
        assert _combs_pool(api)["running_slots"] == 2
        assert source_tables_waited_on(TABLES) == {"customers", "support_tickets"}  # still stuck: the pool stayed full
    finally:
        blocker.rollback()
        blocker.close()
    for dag, run_id in {**runs, WAITING: waiting}.items():
        assert api.wait_run(dag, run_id, timeout=300)["state"] == "success", dag
    for dag, was in paused.items():  # as the test found them
        api._req("PATCH", f"/api/v2/dags/{dag}", {"is_paused": was})

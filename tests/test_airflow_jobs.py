"""The security-analytics jobs through Airflow (scheduler, REST API, CLI backfills at the default
concurrency): events flow in from the queue, hourly runs backfilled concurrently give the same
rollup as a full recompute, a past day's report is regenerated identically, the trigger form
refuses unknown keys before a run exists."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from include.clients import Clients
from include.security.store import Message, ingest_batch
from tests.airflowtools import backfill_and_wait
from tests.eventtools import events_of, full_recompute, jar_of, login, publish, rollup, sensor


@pytest.fixture(scope="module")
def api(airflow):
    for d in ("event_ingestion", "hourly_aggregation", "daily_intelligence"):
        airflow.wait_for_dag(d)
        airflow.unpause(d)
    return airflow


@pytest.fixture
def clients(stack):
    c = Clients.from_settings()
    yield c
    c.close()


def test_events_flow_in_through_the_dag_with_rejects_and_duplicates_counted(api, clients):
    s = sensor()
    stream = f"test:events:{uuid.uuid4().hex[:8]}"
    good = [login(s, ip="185.220.101.34", password=f"af{i}") for i in range(30)]
    msgs = good + [dict(good[0], event_id=str(uuid.uuid4()))] + ["{broken " + s, json.dumps({"eventid": "nope", "sensor": s})]
    publish(clients.redis, stream, msgs)
    try:
        run = api.trigger("event_ingestion", conf={"stream": stream, "claim_idle_seconds": 0, "use_anomaly_model": False})
        assert api.wait_run("event_ingestion", run["dag_run_id"])["state"] == "success"
        counts = api.xcoms("event_ingestion", run["dag_run_id"], "consume_queue")[0]["value"]
    finally:
        clients.redis.delete(stream)
    assert (counts["stored"], counts["duplicates"], counts["rejected"]) == (30, 1, 2)
    assert len(events_of(clients, s)) == 30
    with clients.db() as conn:
        row = conn.execute("SELECT status, interval_start, interval_end, counts FROM job_runs WHERE run_key = %s",
                           (run["dag_run_id"],)).fetchone()
    assert row["status"] == "success" and row["counts"]["consume_queue"]["stored"] == 30


def test_unknown_trigger_parameters_are_refused_before_a_run_exists(api):
    day = (datetime.now(UTC) - timedelta(days=40, minutes=7)).replace(second=0, microsecond=0)
    with pytest.raises(RuntimeError) as e:
        api.trigger("hourly_aggregation", conf={"partitions_ahaed": 2}, logical_date=day.isoformat())
    assert "-> 400" in str(e.value) and "did you mean 'partitions_ahead'" in str(e.value), str(e.value)
    assert api.runs_between("hourly_aggregation", day.isoformat(), day.isoformat()) == []


def _rollup_equals_recompute(clients, jar) -> tuple[set, set]:
    with clients.db() as conn:
        return rollup(conn, jar), full_recompute(conn, jar)


def test_hourly_backfill_at_default_concurrency_with_late_events(api, clients):
    import random

    s = sensor()
    # The metadata database is shared by every checkout and session on the machine: hours no
    # earlier run used (a random day within the partitions kept, a random hour)
    base = (datetime.now(UTC) - timedelta(days=random.randint(20, 300), hours=random.randint(0, 23))).replace(
        minute=0, second=0, microsecond=0)
    hours = [base + timedelta(hours=i) for i in range(4)]
    first = [login(s, ip=f"61.177.172.{i + 10}", t=h + timedelta(minutes=i * 7 + 1), password=f"b{i}")
             for i, h in enumerate(hours[:3]) for _ in (0,)]
    ingest_batch(clients, [Message(str(i), "redis", json.dumps(e)) for i, e in enumerate(first)])
    ticks = [h + timedelta(hours=1) for h in hours[:3]]
    runs = backfill_and_wait(api, "hourly_aggregation", ticks, "completed")  # completed: in case a run exists
    assert {r["state"] for r in runs} == {"success"}
    got, full = _rollup_equals_recompute(clients, jar_of(clients, s))
    assert got == full and sum(x[5] for x in got) == 3
    # late events for the backfilled hours, then the reprocessing backfill: counted, equal to recompute
    late = [login(s, ip="61.177.172.99", t=h + timedelta(minutes=50), password="late") for h in hours[:3]]
    ingest_batch(clients, [Message(f"l{i}", "redis", json.dumps(e)) for i, e in enumerate(late)])
    runs = backfill_and_wait(api, "hourly_aggregation", ticks, "completed")
    assert {r["state"] for r in runs} == {"success"}
    got, full = _rollup_equals_recompute(clients, jar_of(clients, s))
    assert got == full and sum(x[5] for x in got) == 6


def test_a_backfill_of_a_past_day_regenerates_that_days_report_with_the_same_content(api, clients):
    import random

    day = (datetime.now(UTC) - timedelta(days=random.randint(20, 300))).replace(hour=2, minute=0, second=0, microsecond=0)
    s = sensor()
    ingest_batch(clients, [Message(str(i), "redis", json.dumps(login(s, t=day - timedelta(hours=i + 1), password=f"d{i}")))
                           for i in range(5)])
    runs = backfill_and_wait(api, "daily_intelligence", [day], "completed")
    assert runs[0]["state"] == "success"
    key = f"reports/{day - timedelta(days=1):%Y/%m}/report_{day - timedelta(days=1):%Y-%m-%d}.pdf"
    first = clients.s3.get_object(Bucket="threat-intel", Key=key)["Body"].read()
    time.sleep(1)
    runs = backfill_and_wait(api, "daily_intelligence", [day], "completed")
    assert runs[0]["state"] == "success"
    second = clients.s3.get_object(Bucket="threat-intel", Key=key)["Body"].read()
    assert first == second
    with clients.db() as conn:
        r = conn.execute("SELECT sha256, pages FROM daily_reports WHERE report_date = %s",
                         ((day - timedelta(days=1)).date(),)).fetchone()
    import hashlib

    assert r["sha256"] == hashlib.sha256(first).hexdigest() and r["pages"] >= 2

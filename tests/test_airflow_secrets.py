"""Through the running Airflow: an API that answers 401 with the refused request (API key
included) quoted in its body. The run fails at once, and the key is nowhere: not in the audit,
the attempts, XCom, the task logs, nor the log files of the scheduler, API server, DAG processor
and triggerer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from include import vault
from include.db import connect
from include.devstack.stack import AIRFLOW_HOME, LOGS
from include.settings import get_settings

pytestmark = pytest.mark.airflow
DAG = "honey_comb__sample_threat_feed_api"
PATH = "honey_combs/sample_threat_feed_api/credentials"


def test_api_echoing_its_key_leaks_it_nowhere(airflow):
    wrong = f"sk-live-{uuid.uuid4().hex}"
    original = vault.read_secret(PATH)
    # precondition: the sample API really quotes the refused key in its 401 body
    req = urllib.request.Request(get_settings().sample_api_url + "/v1/indicators/cursor", headers={"X-API-Key": wrong})
    for _ in range(4):  # every 4th request to the sample API is answered 429 (its rate-limit demo)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        if e.value.code != 429:
            break
    assert e.value.code == 401 and wrong in e.value.read().decode(), "the sample API must echo (restart the stack)"
    sizes = {p: p.stat().st_size for p in LOGS.glob("*.log")}
    vault.write_secret(PATH, {"api_key": wrong})
    try:
        airflow.wait_for_dag(DAG)
        airflow.unpause(DAG)
        run = airflow.trigger(DAG, conf={})
        done = airflow.wait_run(DAG, run["dag_run_id"], timeout=300)
    finally:
        vault.write_secret(PATH, original)
    assert done["state"] == "failed"
    tis = {t["task_id"]: t for t in airflow.task_instances(DAG, run["dag_run_id"])}
    assert tis["extract"]["state"] == "failed" and tis["extract"]["try_number"] == 1  # deterministic: no retry
    with connect() as conn:
        ex = conn.execute("SELECT e.id, e.error_message, e.metadata FROM honey_comb_executions e "
                          "WHERE e.run_key = %s", (run["dag_run_id"],)).fetchone()
        att = conn.execute("SELECT error FROM honey_comb_execution_attempts WHERE execution_id = %s",
                           (ex["id"],)).fetchall()
    assert "HTTP 401" in ex["error_message"]
    blobs = {"audit": json.dumps([ex["error_message"], ex["metadata"], [a["error"] for a in att]], default=str)}
    for task in ("begin", "extract"):
        try:
            blobs[f"xcom {task}"] = repr(airflow.xcoms(DAG, run["dag_run_id"], task, key=None))
        except RuntimeError:
            pass
    for f in (AIRFLOW_HOME / "logs" / f"dag_id={DAG}").rglob("*.log"):
        blobs[str(f)] = f.read_text(errors="replace")
    for p in LOGS.glob("*.log"):  # what the services wrote since the run started
        with p.open("rb") as fh:
            fh.seek(sizes.get(p, 0))
            blobs[str(p)] = fh.read().decode(errors="replace")
    leaked = [where for where, text in blobs.items() if wrong in text]
    assert leaked == []

"""Through the running Airflow: an API that answers 401 with the refused key quoted in its body in
every style real APIs use (inside the echoed headers, PHP's `\\/` escaping, an echoed
`Authorization: Basic <base64 of key:>`, URL-encoded, hex). The run fails at once, and the key
is nowhere in any form: not in the audit, the attempts, XCom, the run note, Airflow's `log`
table, the task logs, the log files of the scheduler, API server, DAG processor and triggerer,
the failure mail and webhook, nor the lineage file."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from include import vault
from include.db import connect
from include.devstack.stack import AIRFLOW_HOME, LOGS
from include.settings import get_settings

pytestmark = pytest.mark.airflow
DAG = "honey_comb__sample_threat_feed_api"
PATH = "honey_combs/sample_threat_feed_api/credentials"


def _forms(key: str) -> list[str]:
    import base64
    from urllib.parse import quote

    return [key, key.replace("/", "\\/"), quote(key, safe=""), key.encode().hex(),
            base64.b64encode(f"{key}:".encode()).decode()[:-4]]


def _airflow_db_rows(dag: str, run_id: str) -> str:
    """Airflow's own tables that keep text of a run: its note and the `log` (audit) table."""
    import psycopg

    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    with psycopg.connect(url) as c:
        notes = c.execute("SELECT n.content FROM dag_run r JOIN dag_run_note n ON n.dag_run_id = r.id "
                          "WHERE r.dag_id = %s AND r.run_id = %s", (dag, run_id)).fetchall()
        logs = c.execute("SELECT event, extra FROM log WHERE dag_id = %s AND run_id = %s", (dag, run_id)).fetchall()
    assert notes, "the run has a note"
    return repr(notes) + repr(logs)


def test_api_echoing_its_key_leaks_it_nowhere(airflow):
    from tests.test_notifications import sink

    wrong = f"sk/live+{uuid.uuid4().hex}"
    original = vault.read_secret(PATH)
    # precondition: the sample API really quotes the refused key in its 401 body
    req = urllib.request.Request(get_settings().sample_api_url + "/v1/indicators/cursor", headers={"X-API-Key": wrong})
    for _ in range(4):  # every 4th request to the sample API is answered 429 (its rate-limit demo)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        if e.value.code != 429:
            break
    body = e.value.read().decode()
    assert e.value.code == 401 and all(f in body for f in _forms(wrong)[1:]), \
        f"the sample API must echo in every style (restart the stack): {body[:500]}"
    sizes = {p: p.stat().st_size for p in LOGS.glob("*.log")}
    lineage = Path(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"])
    lineage_from = lineage.stat().st_size if lineage.exists() else 0
    sink("DELETE")
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
    blobs["airflow db: note, log"] = _airflow_db_rows(DAG, run["dag_run_id"])
    notices = sink()
    assert any(DAG in m["subject"] for m in notices["mails"]), "the failure was mailed"
    blobs["mails and webhooks"] = json.dumps(notices)
    if lineage.exists():
        with lineage.open("rb") as fh:
            fh.seek(lineage_from)
            blobs["lineage"] = fh.read().decode(errors="replace")
    leaked = [(where, form) for where, text in blobs.items() for form in _forms(wrong) if form.lower() in text.lower()]
    assert leaked == []

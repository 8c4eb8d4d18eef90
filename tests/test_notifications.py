"""Operators see what happened: a task that fails for good notifies by mail (the stack's real SMTP
server, aiosmtpd) and by webhook, without secrets; a comb failing N runs in a row pauses itself
and says so; an invalid comb definition notifies; runs carry their outcome as a note."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from include import vault
from include.notifications import Notice, short_error
from include.settings import get_settings


def sink(method: str = "GET") -> dict:
    req = urllib.request.Request(get_settings().notify_sink_url + "/messages", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def dags_test(dag_id: str, env: dict | None = None, conf: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", "dags", "test", dag_id, "-c", json.dumps(conf or {})],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def test_a_notice_reads_well_and_bounds_its_error():
    n = Notice("task_failed", "honey_comb__x", run_id="r1", task_id="extract", try_number=3,
               error=short_error(RuntimeError("line\n" * 100)), details={"rows": 5})
    assert n.subject == "[STING] honey_comb__x: extract failed"
    assert "try: 3" in n.text() and "rows: 5" in n.text() and n.text().count("line") == 12
    assert n.payload()["dag_id"] == "honey_comb__x" and "<pre>" in n.html()


def test_every_task_of_every_dag_notifies_when_it_fails(stack):
    from airflow.dag_processing.dagbag import DagBag

    from sting_airflow.notify import StingFailureNotifier

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent.parent / "dags"))
    assert not bag.import_errors
    missing = []
    for dag in bag.dags.values():
        for t in dag.tasks:
            cbs = t.on_failure_callback or []
            cbs = cbs if isinstance(cbs, list) else [cbs]
            if t.task_id == "finalize_on_failure":  # a consequence of a failure that already notified
                assert not cbs, f"{dag.dag_id}.{t.task_id} would notify twice"
            elif not any(isinstance(c, StingFailureNotifier) for c in cbs):
                missing.append(f"{dag.dag_id}.{t.task_id}")
    assert missing == [] and len(bag.dags) >= 15


@pytest.mark.airflow
def test_a_failing_comb_notifies_without_its_secret_and_pauses_after_repeated_failures(airflow, tmp_path):
    """A comb of its own (in a folder only `dags test` reads; the DAG stays paused, so the
    scheduler never takes over its runs), whose API refuses the key and quotes it in the 401:
    `dags test` twice with pause_after_failures 2."""
    import yaml

    name = f"t_failing_feed_{uuid.uuid4().hex[:6]}"
    dag = f"honey_comb__{name}"
    wrong = f"sk-live-{uuid.uuid4().hex}"
    comb = yaml.safe_load((Path(__file__).resolve().parent.parent / "include/combs/sample_threat_feed_api.yaml").read_text())
    comb.update(name=name, pause_after_failures=2, target={"honey_jar": f"jar {name}"})
    comb["configuration"]["connection"]["vault_path"] = f"honey_combs/{name}/credentials"
    comb["configuration"]["extraction"]["schedule"] = None  # unpausing it starts no run; windows given below
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(comb))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": wrong})
    sink("DELETE")
    env = {"STING_COMBS_DIR": str(tmp_path)}
    window = {"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-02T00:00:00Z"}
    first = dags_test(dag, env, window)
    assert first.returncode != 0

    def pauses() -> list[dict]:  # the API's audit log: who paused the DAG
        logs = airflow._req("GET", f"/api/v2/eventLogs?dag_id={dag}&limit=100")["event_logs"]
        return [e for e in logs if e["event"] == "patch_dag" and '"is_paused": true' in (e.get("extra") or "")]

    # (the DAG stays paused as created: an unpaused one would let the scheduler take over tasks
    # of these `dags test` runs, which its workers cannot load)
    assert pauses() == [] and not [m for m in sink()["mails"] if "paused" in m["subject"]]  # one failure: not yet
    second = dags_test(dag, env, window)
    assert second.returncode != 0
    got = sink()
    assert len(pauses()) == 1, ([m["subject"] for m in got["mails"]], second.stdout[-3000:])  # paused itself
    assert airflow._req("GET", f"/api/v2/dags/{dag}")["is_paused"] is True
    subjects = [m["subject"] for m in got["mails"] if dag in m["subject"]]
    assert subjects == [f"[STING] {dag}: extract failed"] * 2 + [f"[STING] {dag}: paused after repeated failures"]
    failed, paused = [m for m in got["mails"] if dag in m["subject"]][1:]
    assert failed["to"] == list(get_settings().notify_emails) and "HTTP 401" in failed["body"]
    assert "failures_in_a_row: 2" in paused["body"] and "paused: True" in paused["body"] and "unpause" in paused["body"]
    hooks = [w["body"] for w in got["webhooks"] if w["body"].get("dag_id") == dag]
    assert [h["kind"] for h in hooks] == ["task_failed", "task_failed", "comb_paused"]
    assert wrong not in json.dumps(got)  # the key is in no notice
    runs = airflow._req("GET", f"/api/v2/dags/{dag}/dagRuns?limit=10")["dag_runs"]
    assert len(runs) == 2 and all((r.get("note") or "").startswith("failed:") for r in runs)  # outcome as the note
    assert all(wrong not in (r.get("note") or "") for r in runs)
    airflow._req("DELETE", f"/api/v2/dags/{dag}")  # no stale test DAG left in the metadata database


@pytest.mark.airflow
def test_an_invalid_comb_definition_notifies(airflow, tmp_path):
    from include.honeycomb.config import invalid_dag_id

    bad = tmp_path / "broken_feed.yaml"
    bad.write_text("name: broken_feed\ntype: api\nsubtype: rest\nconfiguration: {connection: {}}\n")
    sink("DELETE")
    out = dags_test(invalid_dag_id(bad), {"STING_COMBS_DIR": str(tmp_path)})
    assert out.returncode != 0
    mails = [m for m in sink()["mails"] if invalid_dag_id(bad) in m["subject"]]
    assert len(mails) == 1 and "invalid_config failed" in mails[0]["subject"]
    assert "configuration" in mails[0]["body"]  # the validation error names what is wrong
    airflow._req("DELETE", f"/api/v2/dags/{invalid_dag_id(bad)}")  # (unpaused: the scheduler would keep trying it)


@pytest.mark.airflow
def test_a_successful_comb_run_carries_its_outcome_in_its_note_and_asset_event(airflow):
    dag = "honey_comb__sample_support_tickets"
    airflow.wait_for_dag(dag)
    airflow.unpause(dag)
    run = airflow.trigger(dag, conf={})
    done = airflow.wait_run(dag, run["dag_run_id"], timeout=600)
    assert done["state"] == "success"
    note = airflow.run(dag, run["dag_run_id"]).get("note") or ""
    assert "rows delivered" in note and "scrubbed" in note and "rejected" in note and "s3://" in note
    events = airflow._req("GET", "/api/v2/assets/events?limit=50&order_by=-timestamp")["asset_events"]
    mine = [e for e in events if e.get("source_run_id") == run["dag_run_id"]]
    assert mine and {"uri", "window", "records_processed", "records_scrubbed", "records_rejected"} <= set(mine[0]["extra"])

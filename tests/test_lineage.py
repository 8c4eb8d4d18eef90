"""Lineage and the seed's data classification: every table and bucket carries its class; comb
outputs carry theirs in their object metadata; OpenLineage events (the provider, a file transport
in the stack) describe source -> S3 object -> honey jar for combs, with the class as a tags facet
and row counts, and tables -> objects for jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from include.classification import BUCKETS, LEVELS, TABLES
from include.db import connect


def test_every_table_carries_its_data_classification(stack):
    with connect() as conn:
        rows = conn.execute(
            """SELECT c.relname, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'm')
                  AND NOT c.relispartition AND c.relname NOT LIKE '\\_yoyo%' AND c.relname <> 'yoyo_lock'""").fetchall()
    found = {r["relname"]: r["comment"] for r in rows}
    assert set(found) == set(TABLES), set(found) ^ set(TABLES)  # a new table needs a class
    for table, comment in found.items():
        assert comment == f"data-classification: {TABLES[table]}", table
    assert set(TABLES.values()) <= set(LEVELS) and "restricted" in TABLES.values()


def test_every_bucket_carries_its_data_classification(stack):
    from include import storage

    s3 = storage.s3_client()
    for bucket, cls in BUCKETS.items():
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        assert tags["data-classification"] == cls, bucket


def _dags_test(dag_id: str, conf: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", "dags", "test", dag_id, "-c", json.dumps(conf)],
                          capture_output=True, text=True, timeout=600, env=os.environ.copy())


def _events(path, since: int) -> list[dict]:
    with open(path, "rb") as f:
        f.seek(since)
        return [json.loads(line) for line in f.read().decode().splitlines() if line.strip().startswith("{")]


@pytest.fixture
def lineage_file(airflow):
    path = json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"]
    return path, (os.path.getsize(path) if os.path.exists(path) else 0)


@pytest.mark.airflow
def test_a_comb_run_emits_source_object_jar_lineage_with_its_classification(lineage_file):
    from datetime import UTC, datetime, timedelta

    from include import storage

    path, start = lineage_file
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    out = _dags_test("honey_comb__sample_customers", {"window_start": (end - timedelta(days=1)).isoformat(),
                                                     "window_end": end.isoformat()})
    assert out.returncode == 0, out.stderr[-2000:]
    done = [e for e in _events(path, start)
            if e.get("eventType") == "COMPLETE" and e["job"]["name"] == "honey_comb__sample_customers.extract"]
    assert done, "no COMPLETE event for the extract task"
    ev = done[-1]
    (src,) = ev["inputs"]
    assert src["namespace"] == "postgres://127.0.0.1:5432" and src["name"] == "sting_sample_source.crm.customers"
    assert src["facets"]["tags"]["tags"] == [{"key": "data_classification", "value": "confidential",
                                              "source": "STING"}]
    obj = next(o for o in ev["outputs"] if o["namespace"].startswith("s3://"))
    jar = next(o for o in ev["outputs"] if o["namespace"] == "sting://honey-jars")
    assert jar["name"] == "Customer records (sample CRM)"
    assert obj["outputFacets"]["outputStatistics"]["rowCount"] >= 0
    assert obj["facets"]["tags"]["tags"][0]["value"] == "confidential"
    head = storage.s3_client().head_object(Bucket=obj["namespace"][5:], Key=obj["name"])
    assert head["Metadata"]["data-classification"] == "confidential"  # the object carries its class too


@pytest.mark.airflow
def test_a_job_run_emits_table_to_object_lineage(lineage_file):
    path, start = lineage_file
    out = _dags_test("weekly_ml_training", {"interval_start": "2025-01-05T03:00:00Z",
                                            "interval_end": "2025-01-12T03:00:00Z", "training_days": 1})
    assert out.returncode == 0, out.stderr[-2000:]
    done = [e for e in _events(path, start)
            if e.get("eventType") == "COMPLETE" and e["job"]["name"] == "weekly_ml_training.prepare_training_data"]
    assert done
    ins = {(i["namespace"], i["name"]) for i in done[-1]["inputs"]}
    outs = {(o["namespace"], o["name"]) for o in done[-1]["outputs"]}
    assert any(n.endswith(".public.events") for _, n in ins) and any(n.endswith(".public.ml_labels") for _, n in ins)
    assert ("s3://ai-models", "datasets/weekly_ml_training/2025-01-12/features.parquet") in outs


def test_no_secret_of_the_stack_is_in_a_lineage_event(stack, lineage_file):
    from include.devstack.stack import stack_secrets

    path, _ = lineage_file
    text = open(path).read() if os.path.exists(path) else ""
    leaked = [k for k, v in stack_secrets().items() if isinstance(v, str) and len(v) >= 8 and v in text]
    assert leaked == []


def test_feed_imports_report_their_endpoints_objects_and_tables():
    """import_threat_feeds reads each feed's endpoint (no query, no key) and writes its snapshot
    object and the threat_intel tables; correlate_events reads events and threat_intel."""
    from include.jobs import load_job
    from include.jobs.runner import lineage

    job = load_job("daily_intelligence")
    counts = {"sample_taxii": {"indicators": 3, "object": "s3://threat-intel/feeds/sample_taxii/2026-11-25.json"},
              "sample_urlhaus": {"indicators": 2, "object": "s3://threat-intel/feeds/sample_urlhaus/2026-11-25.json"}}
    got = lineage(job, "import_threat_feeds", {"run_id": "x", "params": {}}, None, counts)
    assert "http://127.0.0.1:6100/intel/collections/honeypot-campaigns/objects" in got["inputs"]
    assert len(got["inputs"]) == 3 and not any("?" in u or "key" in u.lower() for u in got["inputs"])
    assert set(counts["sample_taxii"].values()) & set(got["outputs"]) and len(got["outputs"]) == 4
    assert any(u.endswith("/public/threat_intel") for u in got["outputs"])
    only = lineage(job, "import_threat_feeds", {"run_id": "x", "params": {"feeds": ["sample_misp"]}}, None, {})
    assert len(only["inputs"]) == 1 and "misp" in only["inputs"][0]
    corr = lineage(job, "correlate_events", {"run_id": "x", "params": {}}, None, {})
    assert {u.rsplit("/", 1)[1] for u in corr["inputs"]} == {"events", "threat_intel"}
    assert {u.rsplit("/", 1)[1] for u in corr["outputs"]} == {"ioc_sightings", "alerts"}

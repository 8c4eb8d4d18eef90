"""Documents through the running Airflow: uploads discovered and ingested by document_ingestion
(mapped batches), a rerun that changes nothing, and a honey comb's text fields flowing into its
jar through the comb's output Asset."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from psycopg.types.json import Jsonb

from include import storage
from include.db import connect
from include.documents import vectorstore
from tests.doctools import bad_files, corpus

pytestmark = pytest.mark.airflow
DAG = "document_ingestion"


def _wait_idle(api, dag_id, timeout=600):
    deadline = time.time() + timeout
    while any(r["state"] not in ("success", "failed") for r in api.runs(dag_id)):
        if time.time() > deadline:
            raise TimeoutError(f"{dag_id} still busy")
        time.sleep(2)


def _jar_docs(jar):
    with connect() as conn:
        return {r["title"]: r for r in conn.execute("SELECT * FROM documents WHERE honey_jar_id = %s", (jar,))}


def _all_mapped(api, run_id, task):
    return [x["value"] for x in api.xcoms(DAG, run_id, task)]


def test_uploads_are_ingested_by_the_dag_and_a_rerun_changes_nothing(airflow):
    airflow.wait_for_dag(DAG)
    airflow.unpause(DAG)
    with connect() as conn:
        jar = str(conn.execute("INSERT INTO honey_jars (name, config) VALUES (%s, %s) RETURNING id",
                               (f"e2e docs {uuid.uuid4().hex[:6]}",
                                Jsonb({"jar_key": f"e2e:{uuid.uuid4()}", "limits": {"max_bytes": 1_000_000}}))
                               ).fetchone()["id"])
    files = {**corpus(), **{n: d for n, (d, _) in bad_files().items()}}
    lineage = json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"]
    lineage_from = os.path.getsize(lineage) if os.path.exists(lineage) else 0
    for name, data in files.items():
        storage.s3_client().put_object(Bucket="user-files", Key=f"documents/e2e-user/{uuid.uuid4().hex}.{name.rsplit('.', 1)[1]}",
                                       Body=data, Metadata={"honey-jar-id": jar, "title": name})
    run = airflow.trigger(DAG, conf={"honey_jar_id": jar, "batch_size": 3})
    assert airflow.wait_run(DAG, run["dag_run_id"])["state"] == "success"
    _wait_idle(airflow, DAG)  # a scheduled run may have claimed some of them first: either is fine
    docs = _jar_docs(jar)
    assert set(docs) == set(files)
    for name in corpus():
        assert docs[name]["processing_status"] == "completed" and docs[name]["chunk_count"] > 0, name
    for name, (_, reason) in bad_files().items():
        assert docs[name]["processing_status"] == "failed" and reason in docs[name]["metadata"]["error"]["reason"]
    ids = set(vectorstore.ids_where(vectorstore.collection(), {"honey_jar_id": jar}))
    assert len(ids) == sum(d["chunk_count"] for d in docs.values())
    ups = _all_mapped(airflow, run["dag_run_id"], "process_batch.embed_upsert")
    assert all(u["model_preloaded"] for u in ups if u["upserted"])  # inherited from the scheduler
    # lineage (OpenLineage): each embedding batch reports its documents' objects -> the collection
    # and the full-text table -> the jar, with the data classification
    with open(lineage, "rb") as f:
        f.seek(lineage_from)
        events = [json.loads(x) for x in f.read().decode().splitlines() if x.startswith("{")]
    done = [e for e in events if e.get("eventType") == "COMPLETE" and e["job"]["name"] == f"{DAG}.process_batch.embed_upsert"]
    read = {i["name"] for e in done for i in e["inputs"] if i["namespace"] == "s3://user-files"}
    assert any(k.startswith("documents/e2e-user/") for k in read), read
    outs = {(o["namespace"], o["name"]) for e in done for o in e["outputs"]}
    assert ("chroma://127.0.0.1:8000", vectorstore.DOCUMENTS) in outs
    assert any(n.endswith(".public.document_chunks") for _, n in outs)
    assert any(ns == "sting://honey-jars" and n.startswith("e2e docs ") for ns, n in outs), outs
    assert all(o["facets"]["tags"]["tags"][0]["value"] == "confidential" for e in done for o in e["outputs"])

    # Rerun over every document of the jar: nothing is embedded, written or deleted.
    rerun = airflow.trigger(DAG, conf={"document_ids": [str(d["id"]) for d in docs.values()], "batch_size": 4})
    assert airflow.wait_run(DAG, rerun["dag_run_id"])["state"] == "success"
    done = _all_mapped(airflow, rerun["dag_run_id"], "process_batch.complete")
    assert sum(c["upserted"] for c in done) == 0 and sum(c["stale_deleted"] for c in done) == 0
    assert sum(c["unchanged"] for c in done) == len(corpus())
    assert set(vectorstore.ids_where(vectorstore.collection(), {"honey_jar_id": jar})) == ids
    after = _jar_docs(jar)
    assert {n: (d["processing_status"], d["chunk_count"]) for n, d in after.items()} == \
        {n: (d["processing_status"], d["chunk_count"]) for n, d in docs.items()}
    with connect() as conn:
        count = conn.execute("SELECT document_count FROM honey_jars WHERE id = %s", (jar,)).fetchone()["document_count"]
    assert count == len(files)


def test_comb_text_fields_flow_into_the_jar_through_the_asset(airflow):
    comb_dag = "honey_comb__sample_support_tickets"
    airflow.wait_for_dag(comb_dag)
    airflow.unpause(comb_dag)
    airflow.unpause(DAG)
    run = airflow.trigger(comb_dag, conf={})
    assert airflow.wait_run(comb_dag, run["dag_run_id"])["state"] == "success"
    with connect() as conn:
        ex = conn.execute("SELECT target_honey_jar_id FROM honey_comb_executions WHERE run_key = %s",
                          (run["dag_run_id"],)).fetchone()
    jar = str(ex["target_honey_jar_id"])
    deadline = time.time() + 300
    while time.time() < deadline:  # the comb's Asset event triggers document_ingestion
        doc = next(iter(_jar_docs(jar).values()))
        if doc["processing_status"] in ("completed", "failed"):
            break
        time.sleep(3)
    assert doc["processing_status"] == "completed", doc["metadata"]
    assert doc["chunk_count"] >= 1500 * 0.9  # one chunk per ticket subject
    got = vectorstore.collection().get(where={"document_id": str(doc["id"])}, limit=3, include=["metadatas", "documents"])
    assert got["metadatas"][0]["record_id"] and got["documents"][0].startswith("subject: ")

"""Embedding through Airflow: trigger `document_ingestion` on a corpus through the REST API,
as users do, and compare its wall time with a bare `SentenceTransformer.encode` of the same
chunks in this process, measured in the same run.

    python bench/document_dag.py [--docs 200]

The corpus is the PostgreSQL 15 documentation (Debian's postgresql-doc-15, as in
bench/documents.py), uploaded into a fresh jar as pending documents; the run is the DAG's own:
discover, claim, mapped batches of prepare -> embed_upsert (the `embedding` pool) -> complete.
Ratio = bare encode seconds / DAG run seconds (from the trigger to the run's success); 1.0
would mean Airflow, extraction, chunking, Chroma and PostgreSQL cost nothing on top of the model.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins"), str(REPO / "bench")]
DAG = "document_ingestion"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200)
    a = ap.parse_args()
    from documents import CORPUS, fresh_jar, pick_documents

    if not CORPUS.is_dir():
        print(f"{CORPUS} missing: apt-get install postgresql-doc-15 (make bench does it)")
        return 2
    from include import storage
    from include.db import connect
    from include.devstack import stack
    from include.devstack.airflow_api import AirflowAPI
    from include.documents import ingest

    stack.up()
    api = AirflowAPI()
    pages = pick_documents(a.docs)
    jar = fresh_jar(f"bench:dag:{a.docs}", "PostgreSQL 15 documentation (DAG bench)")
    run = uuid.uuid4().hex[:8]
    with connect() as conn:
        for p in pages:
            key = f"documents/bench-dag-{run}/{p.name}"
            put = storage.s3_client().put_object(Bucket="user-files", Key=key, Body=p.read_bytes())
            ingest.register_upload(conn, jar, storage.uri("user-files", key), title=p.name,
                                   etag=put["ETag"].strip('"'))  # as an upload's discovery records it
    # The run is triggered while the DAG is paused, so that it is first in line: unpausing also
    # lets the scheduler create the latest */15 run, which would otherwise claim these documents
    # (max_active_runs=1 keeps it waiting behind ours). The clock starts at the unpause.
    was_paused = api.wait_for_dag(DAG)["is_paused"]
    if not was_paused:
        api._req("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": True})
    for r in api.runs(DAG):
        if r["state"] in ("running", "queued"):
            print(f"waiting for {r['dag_run_id']} ({r['state']}) to finish first")
            api.unpause(DAG)
            api.wait_run(DAG, r["dag_run_id"], timeout=3600)
            api._req("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": True})
    try:
        run_id = f"bench__{datetime.now(UTC):%Y%m%dT%H%M%S}_{run}"
        api.trigger(DAG, conf={"honey_jar_id": jar}, run_id=run_id)
        t0 = time.perf_counter()
        api.unpause(DAG)
        deadline = time.time() + 3600
        while (r := api.run(DAG, run_id))["state"] not in ("success", "failed"):
            if time.time() > deadline:
                raise TimeoutError(run_id)
            time.sleep(0.5)
        dag_s = time.perf_counter() - t0
    finally:
        api._req("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": was_paused})
    tis = api.task_instances(DAG, run_id)
    with connect() as conn:
        states = {x["processing_status"]: x["n"] for x in conn.execute(
            "SELECT processing_status, count(*) AS n FROM documents WHERE honey_jar_id = %s GROUP BY 1", (jar,))}
        texts = [x["text"] for x in conn.execute(
            "SELECT text FROM document_chunks WHERE honey_jar_id = %s ORDER BY chunk_id", (jar,))]
    embeds = [t for t in tis if t["task_id"].endswith("embed_upsert")]

    from include.documents.embedding import model

    m = model()
    m.encode(["warm up the model"] * 8)
    t1 = time.perf_counter()
    m.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    bare_s = time.perf_counter() - t1

    busy = sum(float(t.get("duration") or 0) for t in embeds)
    print(f"document_ingestion through Airflow (REST trigger, LocalExecutor, parallelism 4): {len(pages)} pages, "
          f"{len(texts)} chunks, run {r['state']}, documents {states}")
    print(f"  mapped batches: {len(embeds)}; embed tasks busy {busy:.1f} s of the run's {dag_s:.1f} s")
    print(f"bare SentenceTransformer.encode of the same {len(texts)} chunks in this process: {bare_s:.1f} s")
    print(f"DAG-path embedding ratio (bare encode s / DAG run s): {bare_s / dag_s:.3f} (target >= 0.9)")
    return 0 if r["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())

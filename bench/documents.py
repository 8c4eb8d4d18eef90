"""Benchmark + retrieval evaluation of the document pipeline on a real corpus: the PostgreSQL 15
documentation (HTML) that Debian ships in `postgresql-doc-15` (`make bench` installs it).

    python bench/documents.py [--docs 300] [--batch 16]

1. Ingest --docs pages into a fresh jar through the pipeline's own steps (claim -> prepare ->
   embed_and_upsert -> complete, batches of --batch documents as the DAG maps them): documents/s,
   chunks/s, peak RSS, and the ratio of its chunk throughput to a bare
   `SentenceTransformer.encode` over the same chunks in the same process (target >= 0.9).
2. Search latency p50/p95 over the labelled queries, without and with the Redis cache.
3. Retrieval quality on bench/retrieval_queries.json (40 questions written against the docs,
   each with its relevant pages): recall@5 and MRR at document level.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
CORPUS = Path("/usr/share/doc/postgresql-doc-15/html")
QUERIES = json.loads((Path(__file__).parent / "retrieval_queries.json").read_text())


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pick_documents(n: int) -> list[Path]:
    """Every page the labelled queries need, plus an even spread of the others up to n."""
    pages = sorted(CORPUS.glob("*.html"))
    needed = {r for q in QUERIES for r in q["relevant"]}
    chosen = [p for p in pages if p.name in needed]
    rest = [p for p in pages if p.name not in needed]
    step = max(1, len(rest) // max(1, n - len(chosen)))
    chosen += rest[::step][: max(0, n - len(chosen))]
    return sorted(chosen)


def fresh_jar(key: str) -> str:
    from psycopg.types.json import Jsonb

    from include.db import connect
    from include.documents import vectorstore

    with connect() as conn:
        old = conn.execute("SELECT id FROM honey_jars WHERE config->>'jar_key' = %s", (key,)).fetchone()
        if old:
            coll = vectorstore.collection()
            vectorstore.delete_ids(coll, vectorstore.ids_where(coll, {"honey_jar_id": str(old["id"])}))
            conn.execute("DELETE FROM honey_jars WHERE id = %s", (old["id"],))
        return str(conn.execute(
            "INSERT INTO honey_jars (name, config) VALUES ('PostgreSQL 15 documentation (bench)', %s) RETURNING id",
            (Jsonb({"jar_key": key}),)).fetchone()["id"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"{CORPUS} missing: apt-get install postgresql-doc-15 (make bench does it)")
        return 2
    from include import storage
    from include.db import connect
    from include.documents import ingest, vectorstore
    from include.documents.embedding import model
    from include.documents.search import search

    pages = pick_documents(a.docs)
    jar = fresh_jar(f"bench:pgdocs:{a.docs}")
    run = uuid.uuid4().hex[:8]
    with connect() as conn:
        for p in pages:
            key = f"documents/bench-{run}/{p.name}"
            storage.s3_client().put_object(Bucket="user-files", Key=key, Body=p.read_bytes())
            ingest.register_upload(conn, jar, storage.uri("user-files", key), title=p.name)
    m = model()
    m.encode(["warm up the model"] * 8)  # both sides start from a loaded, warmed model
    rss_before = rss_mb()

    t0 = time.perf_counter()
    ids = ingest.claim(jar_id=jar)
    chunks = embed_s = 0
    for batch in ingest.batches(ids, a.batch):
        prepared = ingest.prepare(batch, run_key=f"bench-{run}")
        up = ingest.embed_and_upsert(prepared["chunks_ref"])
        ingest.complete(prepared, up)
        chunks += up["upserted"]
        embed_s += up.get("embed_seconds", 0.0)
    pipeline_s = time.perf_counter() - t0
    rss_pipeline = rss_mb()
    with connect() as conn:
        states = conn.execute("SELECT processing_status, count(*) AS n FROM documents WHERE honey_jar_id = %s "
                              "GROUP BY 1", (jar,)).fetchall()

    texts = vectorstore.collection().get(where={"honey_jar_id": jar}, include=["documents"])["documents"]
    t1 = time.perf_counter()
    m.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    bare_s = time.perf_counter() - t1
    assert len(texts) == chunks, (len(texts), chunks)

    def timed(use_cache: bool) -> list[float]:
        out = []
        for q in QUERIES:
            t = time.perf_counter()
            search(q["q"], [jar], k=5, use_cache=use_cache)
            out.append((time.perf_counter() - t) * 1000)
        return out

    uncached = timed(False)
    timed(True)  # fill the cache
    cached = timed(True)

    hits, rr = 0, []
    for q in QUERIES:
        res = search(q["q"], [jar], k=20, use_cache=False)["results"]
        docs = list(dict.fromkeys(x["title"] for x in res))
        ranks = [i for i, d in enumerate(docs, start=1) if d in q["relevant"]]
        hits += bool(ranks and ranks[0] <= 5)
        rr.append(1.0 / ranks[0] if ranks else 0.0)

    def pct(xs, p):
        return statistics.quantiles(xs, n=100)[p - 1]

    ndocs = len(ids)
    state_txt = ", ".join(f"{r['processing_status']}: {r['n']}" for r in states)
    print(f"corpus: {ndocs} PostgreSQL 15 doc pages (HTML, {sum(p.stat().st_size for p in pages) / 1e6:.1f} MB), "
          f"states: {state_txt}")
    print(f"pipeline: {pipeline_s:.1f} s, {ndocs / pipeline_s:.2f} documents/s, {chunks / pipeline_s:.1f} chunks/s "
          f"({chunks} chunks; encode inside the pipeline {embed_s:.1f} s)")
    print(f"bare SentenceTransformer.encode of the same {chunks} chunks: {bare_s:.1f} s, {chunks / bare_s:.1f} chunks/s")
    print(f"pipeline / bare encode throughput ratio: {bare_s / pipeline_s:.3f} (target >= 0.9)")
    print(f"peak RSS: {rss_before:.0f} MB with the model loaded, {rss_pipeline:.0f} MB after ingestion")
    print(f"search latency over {len(QUERIES)} queries: uncached p50 {pct(uncached, 50):.1f} ms, "
          f"p95 {pct(uncached, 95):.1f} ms; cached p50 {pct(cached, 50):.2f} ms, p95 {pct(cached, 95):.2f} ms")
    print(f"retrieval ({len(QUERIES)} labelled queries, document level): recall@5 {hits / len(QUERIES):.3f}, "
          f"MRR {statistics.mean(rr):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

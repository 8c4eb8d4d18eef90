"""Benchmark + retrieval evaluation of the document pipeline on a real corpus: the PostgreSQL 15
documentation (HTML) that Debian ships in `postgresql-doc-15` (`make bench` installs it).

    python bench/documents.py [--docs 300] [--batch 16]

1. Ingest --docs pages into a fresh jar through the pipeline's own steps (claim -> prepare ->
   embed_and_upsert -> complete, batches of --batch documents as the DAG maps them): documents/s,
   chunks/s, peak RSS, and the ratio of its chunk throughput to a bare
   `SentenceTransformer.encode` over the same chunks in the same process (target >= 0.9).
2. Search latency p50/p95 over the labelled queries, without and with the Redis cache.
3. Retrieval quality, hybrid (full text + vectors) against vector-only in the same run, at
   document level (recall@5, MRR over the first 20 documents), on two corpora of different kinds:
   bench/retrieval_queries.json (40 questions written against the PostgreSQL docs) and
   bench/retrieval_queries_manpages.json (60 questions about commands, written before any tuning,
   against Debian's man pages rendered to text by `man`: 300 pages, the 68 the questions need
   plus an even spread of the rest).

    python bench/documents.py --retrieval-only --reuse    # evaluate again on the jars already built
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
MAN_QUERIES = json.loads((Path(__file__).parent / "retrieval_queries_manpages.json").read_text())
MAN_DIR = Path("/usr/share/man")
MAN_CACHE = Path.home() / ".cache" / "sting-dp" / "corpus" / "manpages"


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


def man_pages(n: int) -> list[Path]:
    """The man pages the questions need plus an even spread of others (sections 1, 5, 8; small
    pages), rendered to plain text once (`man -l`, 100 columns) into ~/.cache."""
    import subprocess

    needed = {r for q in MAN_QUERIES for r in q["relevant"]}
    src = {}
    for sec in ("man1", "man5", "man8"):
        for f in sorted((MAN_DIR / sec).glob("*.gz")):
            src.setdefault(f.name[:-3], f)
    missing = sorted(needed - set(src))
    if missing:
        raise SystemExit(f"man pages missing on this machine: {', '.join(missing)}")
    rest = [name for name, f in src.items() if name not in needed and f.stat().st_size < 12_000]
    step = max(1, len(rest) // max(1, n - len(needed)))
    chosen = sorted(needed) + rest[::step][: max(0, n - len(needed))]
    MAN_CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for name in sorted(chosen):
        dst = MAN_CACHE / f"{name}.txt"
        if not dst.exists():
            text = subprocess.run(["man", "--no-hyphenation", "--no-justification", "-E", "UTF-8", "-l", str(src[name])],
                                  capture_output=True, env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                                  check=False).stdout
            text = subprocess.run(["col", "-bx"], input=text, capture_output=True, check=True).stdout
            dst.write_bytes(text)
        if dst.stat().st_size > 0:
            out.append(dst)
    return out


def build_jar(key: str, name: str, files: list[Path], batch: int, reuse: bool) -> tuple[str, list[str]]:
    """A jar holding these files, ingested through the pipeline's steps (or the one already built
    with --reuse). Returns (jar id, claimed document ids)."""
    from include import storage
    from include.db import connect
    from include.documents import ingest

    if reuse:
        with connect() as conn:
            row = conn.execute(
                "SELECT j.id, count(d.*) FILTER (WHERE d.processing_status = 'completed') AS done FROM honey_jars j "
                "JOIN documents d ON d.honey_jar_id = j.id WHERE j.config->>'jar_key' = %s GROUP BY j.id",
                (key,)).fetchone()
        if row and row["done"] == len(files):
            return str(row["id"]), []
    jar = fresh_jar(key, name)
    run = uuid.uuid4().hex[:8]
    with connect() as conn:
        for p in files:
            k = f"documents/bench-{run}/{p.name}"
            storage.s3_client().put_object(Bucket="user-files", Key=k, Body=p.read_bytes())
            ingest.register_upload(conn, jar, storage.uri("user-files", k), title=p.name.removesuffix(".txt"))
    ids = ingest.claim(jar_id=jar)
    for b in ingest.batches(ids, batch):
        prepared = ingest.prepare(b, run_key=f"bench-{run}")
        ingest.complete(prepared, ingest.embed_and_upsert(prepared["chunks_ref"]))
    return jar, ids


def evaluate(jar: str, queries: list[dict], mode: str) -> dict:
    """Document-level recall@5 and MRR (first relevant document within 20), and how many distinct
    documents five chunk-level results cover."""
    from include.documents.search import retrieve

    hits, rr, distinct = 0, [], []
    for q in queries:
        docs = [x["title"] for x in retrieve(q["q"], [jar], k=20, mode=mode)["results"]]
        ranks = [i for i, d in enumerate(docs, start=1) if d in q["relevant"]]
        hits += bool(ranks and ranks[0] <= 5)
        rr.append(1.0 / ranks[0] if ranks else 0.0)
        five = retrieve(q["q"], [jar], k=5, mode=mode, level="chunk")["results"]
        distinct.append(len({x["document_id"] for x in five}))
    return {"recall@5": hits / len(queries), "mrr": statistics.mean(rr), "distinct": statistics.mean(distinct),
            "misses": [q["q"] for q, r in zip(queries, rr, strict=True) if r < 0.2]}


def retrieval_table(corpora: list[tuple[str, str, list[dict]]], verbose: bool) -> None:
    print("\nretrieval, document level (recall@5 and MRR; targets >= 0.97 and >= 0.85), same run:")
    print("| corpus | questions | vector-only recall@5 | vector-only MRR | hybrid recall@5 | hybrid MRR | "
          "documents in 5 chunk results |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, jar, queries in corpora:
        v, h = evaluate(jar, queries, "vector"), evaluate(jar, queries, "hybrid")
        print(f"| {name} | {len(queries)} | {v['recall@5']:.3f} | {v['mrr']:.3f} | **{h['recall@5']:.3f}** | "
              f"**{h['mrr']:.3f}** | {v['distinct']:.1f} (5 with level=document) |")
        if verbose:
            print("   hybrid misses (MRR < 0.2):", h["misses"])


def fresh_jar(key: str, name: str = "PostgreSQL 15 documentation (bench)") -> str:
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
            "INSERT INTO honey_jars (name, config) VALUES (%s, %s) RETURNING id",
            (name, Jsonb({"jar_key": key}),)).fetchone()["id"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--retrieval-only", action="store_true", help="skip the throughput and latency part")
    ap.add_argument("--reuse", action="store_true", help="evaluate on the jars built by an earlier run")
    ap.add_argument("--verbose", action="store_true", help="list the questions hybrid ranks badly")
    a = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"{CORPUS} missing: apt-get install postgresql-doc-15 (make bench does it)")
        return 2
    from include.db import connect
    from include.documents import vectorstore
    from include.documents.embedding import model
    from include.documents.search import search

    pages = pick_documents(a.docs)
    m = model()
    m.encode(["warm up the model"] * 8)  # both sides start from a loaded, warmed model
    rss_before = rss_mb()
    t0 = time.perf_counter()
    jar, ids = build_jar(f"bench:pgdocs:{a.docs}", "PostgreSQL 15 documentation (bench)", pages, a.batch,
                         a.reuse or a.retrieval_only)
    pipeline_s = time.perf_counter() - t0
    rss_pipeline = rss_mb()
    man_jar, _ = build_jar(f"bench:manpages:{a.docs}", "Debian man pages (bench)", man_pages(a.docs), a.batch,
                           a.reuse or a.retrieval_only)
    if ids and not a.retrieval_only:
        with connect() as conn:
            states = conn.execute("SELECT processing_status, count(*) AS n FROM documents WHERE honey_jar_id = %s "
                                  "GROUP BY 1", (jar,)).fetchall()
        texts = vectorstore.collection().get(where={"honey_jar_id": jar}, include=["documents"])["documents"]
        chunks = len(texts)
        t1 = time.perf_counter()
        m.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        bare_s = time.perf_counter() - t1

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

        def pct(xs, p):
            return statistics.quantiles(xs, n=100)[p - 1]

        ndocs = len(ids)
        state_txt = ", ".join(f"{r['processing_status']}: {r['n']}" for r in states)
        print(f"corpus: {ndocs} PostgreSQL 15 doc pages (HTML, {sum(p.stat().st_size for p in pages) / 1e6:.1f} MB), "
              f"states: {state_txt}")
        print(f"pipeline: {pipeline_s:.1f} s, {ndocs / pipeline_s:.2f} documents/s, {chunks / pipeline_s:.1f} chunks/s "
              f"({chunks} chunks)")
        print(f"bare SentenceTransformer.encode of the same {chunks} chunks: {bare_s:.1f} s, "
              f"{chunks / bare_s:.1f} chunks/s")
        print(f"pipeline / bare encode throughput ratio (library path, one process): {bare_s / pipeline_s:.3f}")
        print(f"peak RSS: {rss_before:.0f} MB with the model loaded, {rss_pipeline:.0f} MB after ingestion")
        print(f"hybrid search latency over {len(QUERIES)} queries (k=5 documents): uncached p50 "
              f"{pct(uncached, 50):.1f} ms, p95 {pct(uncached, 95):.1f} ms; cached p50 {pct(cached, 50):.2f} ms, "
              f"p95 {pct(cached, 95):.2f} ms")
    retrieval_table([("PostgreSQL 15 docs (HTML)", jar, QUERIES), ("Debian man pages (text)", man_jar, MAN_QUERIES)],
                    a.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Search honey jars: embed the query, ask Chroma (one jar, several, or all; metadata filters),
return ranked chunks with their document titles and scores. Results are cached in Redis under the
seed's `ai:response:{query_hash}` keys; ingestion drops the cached answers of the jars it changes.

    python -m include.documents.search "how do I vacuum a table" [--jar ID ...] [-k 5] [--no-cache]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time

from include.settings import get_settings

CACHE_TTL = 3600
ALL_JARS = "*"


@functools.lru_cache(maxsize=2)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


def redis_client():
    return _redis(get_settings().redis_url)


def _jar_index(jar: str) -> str:
    return f"ai:response:jar:{jar}"


def query_hash(query: str, jar_ids: list[str] | None, k: int, where: dict | None) -> str:
    key = json.dumps({"q": query.strip(), "jars": sorted(jar_ids or []), "k": k, "where": where}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def invalidate_jars(jar_ids: list[str]) -> int:
    """Delete cached answers that involve these jars (and searches across all jars)."""
    r = redis_client()
    n = 0
    for jar in {*jar_ids, ALL_JARS}:
        idx = _jar_index(jar)
        keys = list(r.smembers(idx))
        if keys:
            n += r.delete(*keys)
        r.delete(idx)
    return n


def search(query: str, jar_ids: list[str] | None = None, k: int = 5, where: dict | None = None,
           use_cache: bool = True) -> dict:
    if not query or not query.strip():
        raise ValueError("empty query")
    t0 = time.perf_counter()
    h = query_hash(query, jar_ids, k, where)
    key = f"ai:response:{h}"
    r = redis_client()
    if use_cache:
        hit = r.get(key)
        if hit:
            cached = json.loads(hit)
            return {**cached["response"], "cached": True, "seconds": time.perf_counter() - t0}
    from include.documents import vectorstore
    from include.documents.embedding import embed

    clauses = []
    if jar_ids:
        clauses.append({"honey_jar_id": {"$in": list(jar_ids)}})
    if where:
        clauses.append(where)
    flt = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
    vec = embed([query])
    res = vectorstore.collection().query(query_embeddings=vec, n_results=k, where=flt,
                                         include=["metadatas", "documents", "distances"])
    results = []
    for rank, (cid, meta, text, dist) in enumerate(
            zip(res["ids"][0], res["metadatas"][0], res["documents"][0], res["distances"][0], strict=True), start=1):
        results.append({"rank": rank, "score": round(1.0 - float(dist), 6), "chunk_id": cid,
                        "document_id": meta.get("document_id"), "title": meta.get("title"),
                        "honey_jar_id": meta.get("honey_jar_id"), "chunk_index": meta.get("chunk_index"),
                        "text": text, "metadata": meta})
    response = {"query": query, "jar_ids": jar_ids, "k": k, "results": results}
    payload = {"response": response, "context": [x["chunk_id"] for x in results], "timestamp": int(time.time())}
    pipe = r.pipeline()
    pipe.set(key, json.dumps(payload), ex=CACHE_TTL)
    for jar in (jar_ids or [ALL_JARS]):
        pipe.sadd(_jar_index(jar), key)
        pipe.expire(_jar_index(jar), CACHE_TTL)
    pipe.execute()
    return {**response, "cached": False, "seconds": time.perf_counter() - t0}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Search honey jars")
    ap.add_argument("query")
    ap.add_argument("--jar", action="append", dest="jars", help="honey jar id (repeatable); default: all")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    out = search(a.query, a.jars, a.k, use_cache=not a.no_cache)
    if a.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"{len(out['results'])} results for {a.query!r} ({'cache' if out['cached'] else 'search'}, "
          f"{out['seconds'] * 1000:.0f} ms)")
    for x in out["results"]:
        snippet = " ".join(x["text"].split())[:160]
        print(f"{x['rank']}. [{x['score']:.3f}] {x['title']} (chunk {x['chunk_index']})\n   {snippet}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

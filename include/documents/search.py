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


MODES = ("hybrid", "vector", "lexical")
LEVELS = ("document", "chunk")
# Fusion (reciprocal rank fusion, Cormack et al. 2009): a chunk's score is the sum over the two
# rankings of weight / (RRF_K + rank); a document's score is its best chunk's plus a tenth of
# its next two (best evidence first; a second relevant passage breaks ties). Chosen on both
# labelled sets with a 54-point grid (k 10/30/60, full-text weight 0.5/0.7/1.0, max / best+0.1 /
# sum of two, depth 50/100): README "Document ingestion, search and retrieval quality".
RRF_K = 10
WEIGHTS = {"vector": 1.0, "lexical": 0.7}
DEPTH = 100


def query_hash(query: str, jar_ids: list[str] | None, k: int, where: dict | None, **options) -> str:
    key = json.dumps({"q": query.strip(), "jars": sorted(jar_ids or []), "k": k, "where": where, **options},
                     sort_keys=True)
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


def _chroma_filter(jar_ids: list[str] | None, where: dict | None) -> dict | None:
    clauses = []
    if jar_ids:
        clauses.append({"honey_jar_id": {"$in": list(jar_ids)}})
    if where:
        clauses.append(where)
    return None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _vector_candidates(query: str, jar_ids, where, n: int) -> list[dict]:
    from include.documents import vectorstore
    from include.documents.embedding import embed

    res = vectorstore.collection().query(query_embeddings=embed([query]), n_results=n,
                                         where=_chroma_filter(jar_ids, where),
                                         include=["metadatas", "documents", "distances"])
    return [{"chunk_id": cid, "text": text, "metadata": meta, "similarity": round(1.0 - float(dist), 6)}
            for cid, meta, text, dist in zip(res["ids"][0], res["metadatas"][0], res["documents"][0],
                                             res["distances"][0], strict=True)]


def retrieve(query: str, jar_ids: list[str] | None = None, k: int = 5, where: dict | None = None, *,
             mode: str = "hybrid", level: str = "document", chunks_per_document: int = 3,
             candidates: int | None = None) -> dict:
    """Rank without the cache. `mode`: hybrid (full text and vectors fused by reciprocal rank),
    vector or lexical. `level`: document (k distinct documents ranked by their best chunk, each
    with up to `chunks_per_document` of its best chunks) or chunk (k chunks)."""
    from include.db import connect
    from include.documents import lexical

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    if not 1 <= k <= 100:
        raise ValueError("k must be 1..100")
    # Deep enough lists that k distinct documents survive grouping (a long document fills many ranks).
    n = candidates or max(DEPTH, k * (10 if level == "document" else 4))
    lists: dict[str, list[str]] = {}
    chunks: dict[str, dict] = {}
    used = mode
    if mode in ("hybrid", "vector"):
        vec = _vector_candidates(query, jar_ids, where, n)
        if level == "document" and len(vec) == n:
            # Fewer than k documents among the candidates (a few long documents filled them): the
            # next best chunks of other documents, ranked after these.
            docs = list(dict.fromkeys(c["metadata"].get("document_id") for c in vec))
            if len(docs) < k:
                more = {"document_id": {"$nin": docs}}
                vec += _vector_candidates(query, jar_ids, {"$and": [where, more]} if where else more,
                                          (k - len(docs)) * 10)
        lists["vector"] = [c["chunk_id"] for c in vec]
        chunks.update({c["chunk_id"]: c for c in vec})
    if mode in ("hybrid", "lexical"):
        with connect() as conn:
            try:
                lex = lexical.search(conn, query, jar_ids, where, n)
                lists["lexical"] = [c["chunk_id"] for c in lex]
            except lexical.UnsupportedFilter:
                if mode == "lexical":
                    raise
                lex, used = [], "vector (the filter has operators full text does not support)"
            need = [c["chunk_id"] for c in lex if c["chunk_id"] not in chunks]
            for cid, row in lexical.texts(conn, need).items():
                chunks[cid] = {"chunk_id": cid, "text": row["text"], "metadata": row["metadata"], "similarity": None}
    fused: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ids in lists.items():
        for r, cid in enumerate(ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + WEIGHTS[name] / (RRF_K + r)
            ranks.setdefault(cid, {})[name] = r
    order = sorted((c for c in fused if c in chunks), key=lambda c: (-fused[c], c))

    def item(cid: str) -> dict:
        c, m = chunks[cid], chunks[cid]["metadata"] or {}
        return {"chunk_id": cid, "score": round(fused[cid], 6), "similarity": c["similarity"],
                "vector_rank": ranks[cid].get("vector"), "lexical_rank": ranks[cid].get("lexical"),
                "document_id": m.get("document_id"), "title": m.get("title"), "honey_jar_id": m.get("honey_jar_id"),
                "chunk_index": m.get("chunk_index"), "text": c["text"], "metadata": m}

    results: list[dict] = []
    if level == "chunk":
        results = [{"rank": i, **item(c)} for i, c in enumerate(order[:k], start=1)]
    else:
        by_doc: dict[str, list[str]] = {}
        for cid in order:
            by_doc.setdefault(chunks[cid]["metadata"].get("document_id") or cid, []).append(cid)
        doc_score = {d: fused[c[0]] + 0.1 * sum(fused[x] for x in c[1:3]) for d, c in by_doc.items()}
        ranked = sorted(by_doc, key=lambda d: (-doc_score[d], d))[:k]
        for i, cids in enumerate((by_doc[d] for d in ranked), start=1):
            best = item(cids[0])  # led by its best evidence
            best["score"] = round(doc_score[ranked[i - 1]], 6)
            best["chunks"] = [_evidence(item(c)) for c in cids[:chunks_per_document]]
            results.append({"rank": i, **best})
    return {"query": query, "jar_ids": jar_ids, "k": k, "mode": used, "level": level, "results": results}


_EVIDENCE = ("chunk_id", "chunk_index", "score", "similarity", "vector_rank", "lexical_rank", "text")


def _evidence(it: dict) -> dict:
    """A document result's supporting chunk: the chunk fields without the document's own."""
    return {x: it[x] for x in _EVIDENCE}


def search(query: str, jar_ids: list[str] | None = None, k: int = 5, where: dict | None = None,
           use_cache: bool = True, *, mode: str = "hybrid", level: str = "document",
           chunks_per_document: int = 3) -> dict:
    """`retrieve` through the seed's response cache (`ai:response:{query_hash}`, 1 h, dropped
    when ingestion changes one of the jars)."""
    if not query or not query.strip():
        raise ValueError("empty query")
    if len(query) > 2000:
        raise ValueError("query longer than 2,000 characters")
    t0 = time.perf_counter()
    h = query_hash(query, jar_ids, k, where, mode=mode, level=level, chunks_per_document=chunks_per_document)
    key = f"ai:response:{h}"
    r = redis_client()
    if use_cache:
        hit = r.get(key)
        if hit:
            cached = json.loads(hit)
            return {**cached["response"], "cached": True, "seconds": time.perf_counter() - t0}
    response = retrieve(query, jar_ids, k, where, mode=mode, level=level, chunks_per_document=chunks_per_document)
    payload = {"response": response, "context": [x["chunk_id"] for x in response["results"]],
               "timestamp": int(time.time())}
    pipe = r.pipeline()
    pipe.set(key, json.dumps(payload, default=str), ex=CACHE_TTL)
    for jar in (jar_ids or [ALL_JARS]):
        pipe.sadd(_jar_index(jar), key)
        pipe.expire(_jar_index(jar), CACHE_TTL)
    pipe.execute()
    return {**response, "cached": False, "seconds": time.perf_counter() - t0}


def via_api(query: str, jar_ids: list[str] | None, k: int, use_cache: bool, mode: str, level: str) -> dict | None:
    """Ask the running API server's search endpoint (its process holds the model); None when no
    API server answers. Credentials: STING_API_USER / STING_API_PASSWORD, else the local stack's."""
    import os
    import urllib.error

    from include.devstack.airflow_api import AirflowAPI

    try:
        api = AirflowAPI(username=os.environ.get("STING_API_USER", "admin"),
                         password=os.environ.get("STING_API_PASSWORD"))
        return api._req("POST", "/sting/api/v1/search", {"query": query, "jar_ids": jar_ids, "k": k,
                                                          "use_cache": use_cache, "mode": mode, "level": level})
    except (urllib.error.URLError, ConnectionError, OSError, KeyError, FileNotFoundError) as e:
        print(f"(no search endpoint at the API server: {type(e).__name__}; searching in this process)", file=sys.stderr)
        return None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Search honey jars")
    ap.add_argument("query")
    ap.add_argument("--jar", action="append", dest="jars", help="honey jar id (repeatable); default: all")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--mode", choices=MODES, default="hybrid")
    ap.add_argument("--level", choices=LEVELS, default="document")
    ap.add_argument("--local", action="store_true", help="search in this process (loads the model) instead of "
                                                         "asking the API server's endpoint")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    out = None if a.local else via_api(a.query, a.jars, a.k, not a.no_cache, a.mode, a.level)
    where = "api"
    if out is None:
        out, where = search(a.query, a.jars, a.k, use_cache=not a.no_cache, mode=a.mode, level=a.level), "local"
    if a.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    unit = "documents" if out["level"] == "document" else "chunks"
    print(f"{len(out['results'])} {unit} for {a.query!r} ({out['mode']}, {'cache' if out['cached'] else 'search'}, "
          f"{out['seconds'] * 1000:.0f} ms, {where})")
    for x in out["results"]:
        print(f"{x['rank']}. [{x['score']:.4f}] {x['title']}")
        for c in x.get("chunks") or [x]:
            snippet = " ".join(c["text"].split())[:150]
            print(f"   chunk {c['chunk_index']} (vector #{c['vector_rank'] or '-'}, full text #{c['lexical_rank'] or '-'}): "
                  f"{snippet}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

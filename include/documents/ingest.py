"""Documents into honey jars: claim -> prepare (fetch, dedupe, extract, chunk) -> embed + upsert
-> complete, with PostgreSQL as the record of every document's state.

- `documents` rows move pending -> processing -> completed | failed (the reason in
  metadata.error); `honey_jars.document_count` is kept by the database trigger, never here.
- Chunk ids are `<document id>:<chunk index>:<sha256(chunk)[:16]>`: a rerun produces the same ids.
  Only ids Chroma does not hold yet are embedded and written; ids a document no longer produces
  are deleted; an unchanged document (same bytes, same chunking) touches Chroma not at all.
- The same bytes twice in one jar are embedded once (the later row records `duplicate_of`).
- Between steps only references travel: document ids and the object key of a chunk file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import uuid
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from include import storage
from include.db import connect
from include.documents import lexical
from include.documents.chunking import ChunkingConfig, chunk_segments
from include.documents.extract import ExtractionError, Limits, extract_text, normalize_type
from include.settings import get_settings

log = logging.getLogger(__name__)
MODEL = "all-MiniLM-L6-v2"
UPLOAD_BUCKET = "user-files"
UPLOAD_PREFIX = "documents/"


def _split_uri(uri: str) -> tuple[str, str]:
    if not uri or not uri.startswith("s3://"):
        raise ExtractionError(f"upload_path '{uri}' is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def chunk_id(document_id: str, index: int, content_hash: str) -> str:
    return f"{document_id}:{index}:{content_hash[:16]}"


# ----------------------------------------------------------------------------- intake
def register_upload(conn, jar_id: str, uri: str, *, title: str | None = None, file_type: str | None = None,
                    size: int | None = None, tags: list[str] | None = None, etag: str | None = None) -> str:
    """Record an object as a pending document of a jar (idempotent on jar + path). Registering a
    path again (a re-upload) sets it pending again; its old vectors go once the new bytes are in."""
    key = uri.rsplit("/", 1)[-1]
    ftype = normalize_type(file_type or (key.rsplit(".", 1)[-1] if "." in key else "txt"))
    row = conn.execute(
        """
        INSERT INTO documents (honey_jar_id, title, file_type, file_size, upload_path, metadata, processing_status, tags)
        VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s)
        ON CONFLICT (honey_jar_id, upload_path) DO UPDATE
           -- a document being processed stays claimed (no second run may take it); it is marked to
           -- be processed again when its run finishes (`requeue`)
           SET processing_status = CASE WHEN documents.processing_status = 'processing' THEN 'processing'
                                        ELSE 'pending' END,
               file_size = EXCLUDED.file_size, title = EXCLUDED.title,
               metadata = COALESCE(documents.metadata, '{}'::jsonb) || EXCLUDED.metadata
                          || CASE WHEN documents.processing_status = 'processing'
                                  THEN '{"requeue": true}'::jsonb ELSE '{}'::jsonb END
        RETURNING id
        """,
        (jar_id, title or key, ftype, size, uri, Jsonb({"source": "upload", **({"etag": etag} if etag else {})}),
         tags or []),
    ).fetchone()
    return str(row["id"])


def discover_uploads(bucket: str = UPLOAD_BUCKET, prefix: str = UPLOAD_PREFIX) -> list[str]:
    """Register uploaded objects (`/documents/{user_id}/{file_id}.{ext}`) that name their jar in
    object metadata (`x-amz-meta-honey-jar-id`): new objects, and known ones whose bytes changed
    (their ETag differs from the one recorded), which become pending again."""
    with connect() as conn:
        known = {r["upload_path"]: (str(r["honey_jar_id"]), (r["metadata"] or {}).get("etag"), r["title"])
                 for r in conn.execute("SELECT upload_path, honey_jar_id, metadata, title FROM documents "
                                       "WHERE upload_path LIKE %s", (f"s3://{bucket}/{prefix}%",))}
    found = []
    record_etags: list[tuple[str, str]] = []
    c = storage.s3_client()
    for obj in storage.list_keys(bucket, prefix):
        uri = storage.uri(bucket, obj["Key"])
        etag = obj.get("ETag", "").strip('"') or None
        if uri in known:
            jar, seen_etag, title = known[uri]
            if seen_etag and seen_etag == etag:
                continue
            if not seen_etag:  # registered without an ETag: record it; its processing reads the bytes anyway
                record_etags.append((etag, uri))
                continue
            with connect() as conn:  # re-uploaded with new bytes
                found.append(register_upload(conn, jar, uri, title=title, size=obj["Size"], etag=etag))
            continue
        meta = c.head_object(Bucket=bucket, Key=obj["Key"]).get("Metadata", {})
        jar = meta.get("honey-jar-id")
        if not jar:
            continue
        with connect() as conn:
            found.append(register_upload(conn, jar, uri, title=meta.get("title"), size=obj["Size"], etag=etag,
                                         tags=[t for t in meta.get("tags", "").split(",") if t]))
    if record_etags:  # one connection, one statement per object (not a connection each)
        with connect() as conn, conn.cursor() as cur:
            cur.executemany("UPDATE documents SET metadata = COALESCE(metadata, '{}'::jsonb) || "
                            "jsonb_build_object('etag', %s::text) WHERE upload_path = %s", record_etags)
    return found


# A claim older than this whose run died (worker lost) is claimable again.
CLAIM_TIMEOUT_MINUTES = 60
_CLAIMED = "metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('claimed_at', NOW())"
_STALE = (f"(processing_status = 'processing' AND COALESCE((metadata->>'claimed_at')::timestamptz, '-infinity')"
          f" < NOW() - INTERVAL '{CLAIM_TIMEOUT_MINUTES} minutes')")


def claim(*, jar_id: str | None = None, document_ids: list[str] | None = None, limit: int = 1000) -> list[str]:
    """Move documents to `processing` and return their ids: pending ones (of a jar, or all), or the
    given ids whatever their state (an explicit reprocess). Concurrent claimers never share one."""
    with connect() as conn:
        if document_ids:
            rows = conn.execute(
                f"""UPDATE documents SET processing_status = 'processing', {_CLAIMED}
                    WHERE id = ANY(%s::uuid[]) AND (processing_status <> 'processing' OR {_STALE}) RETURNING id""",
                (document_ids,)).fetchall()
        else:
            rows = conn.execute(
                f"""UPDATE documents SET processing_status = 'processing', {_CLAIMED}
                    WHERE id IN (SELECT id FROM documents WHERE (processing_status = 'pending' OR {_STALE})
                                   AND (%(jar)s::uuid IS NULL OR honey_jar_id = %(jar)s::uuid)
                                 ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
                RETURNING id""", {"jar": jar_id, "limit": limit}).fetchall()
    return [str(r["id"]) for r in rows]


def batches(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


# ----------------------------------------------------------------------------- prepare
@dataclass
class Prepared:
    document_id: str
    jar_id: str
    content_hash: str
    file_size: int
    chunking: str
    chunk_ids: list[str]


def _fail(conn, doc_id: str, reason: str) -> None:
    conn.execute(
        """UPDATE documents SET processing_status = CASE WHEN metadata ? 'requeue' THEN 'pending' ELSE 'failed' END,
                  processed_at = NOW(), chunk_count = 0,
                  metadata = (COALESCE(metadata, '{}'::jsonb) - 'requeue') || jsonb_build_object('error', %s::jsonb)
            WHERE id = %s""",
        (json.dumps({"reason": reason, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}), doc_id))


_COMPLETE_SQL = """UPDATE documents SET processing_status = CASE WHEN metadata ? 'requeue' THEN 'pending' ELSE 'completed' END,
                  processed_at = NOW(), chunk_count = %s, content_hash = %s, file_size = %s,
                  -- re-registered while it was processed: pending again, for the new bytes
                  metadata = (COALESCE(metadata, '{}'::jsonb) - 'error' - 'duplicate_of' - 'requeue') || %s
            WHERE id = %s"""


def _complete(conn, doc_id: str, content_hash: str, size: int, chunk_count: int, embedding: dict) -> None:
    conn.execute(_COMPLETE_SQL, (chunk_count, content_hash, size, Jsonb(embedding), doc_id))


def _prepare_one(conn, coll, doc, existing: set[str], limits: Limits | None, summary: dict):
    """One document of a batch: (plan entry, chunk rows to embed) or None when it is finished here
    (failed, duplicate, unchanged)."""
    from include.documents import vectorstore

    doc_id, jar_id = str(doc["id"]), str(doc["honey_jar_id"])
    meta = doc["metadata"] or {}
    emb = meta.get("embedding") or {}
    try:
        cfg = ChunkingConfig.from_jar_config(doc["jar_config"])
        lim = Limits.from_jar_config(doc["jar_config"], limits)
        bucket, key = _split_uri(doc["upload_path"])
        try:
            obj = storage.s3_client().get_object(Bucket=bucket, Key=key)
        except Exception as e:
            raise ExtractionError(f"original not readable at {doc['upload_path']}: {type(e).__name__}") from None
        limit = lim.byte_limit(doc["file_type"])
        if obj["ContentLength"] > limit:  # never read an oversized object into memory
            obj["Body"].close()
            raise ExtractionError(f"{doc['file_type']} file of {obj['ContentLength']:,} bytes exceeds the limit of "
                                  f"{limit:,} bytes")
        data = obj["Body"].read()
        sha = hashlib.sha256(data).hexdigest()
        dup = conn.execute(
            """SELECT id FROM documents WHERE honey_jar_id = %s AND content_hash = %s AND id <> %s
                 AND processing_status = 'completed' AND NOT (metadata ? 'duplicate_of')
               ORDER BY created_at LIMIT 1""", (jar_id, sha, doc_id)).fetchone()
        if dup:  # the same bytes are already in this jar: embedded once
            vectorstore.delete_ids(coll, sorted(existing))
            lexical.prune(conn, doc_id)
            _complete(conn, doc_id, sha, len(data), 0, {"embedding": {"status": "duplicate"}})
            conn.execute("UPDATE documents SET metadata = metadata || jsonb_build_object('duplicate_of', %s::text) "
                         "WHERE id = %s", (str(dup["id"]), doc_id))
            summary["duplicates"].append(doc_id)
            return None
        if (emb.get("content_hash") == sha and emb.get("chunking") == cfg.key and emb.get("model") == MODEL
                and emb.get("status") == "embedded" and len(existing) == emb.get("chunk_count", -1)):
            # Same bytes, same chunking, and the vector store still holds all its chunks (a restored
            # or replaced Chroma would not): nothing to embed; the full-text rows are completed from
            # the store if some are missing (documents embedded before that table existed).
            lexical.backfill(conn, coll, doc_id, sorted(existing))
            _complete(conn, doc_id, sha, len(data), emb.get("chunk_count", doc["chunk_count"] or 0), {"embedding": emb})
            summary["unchanged"].append(doc_id)
            return None
        segments = extract_text(data, doc["file_type"], lim, text_fields=emb.get("text_fields"),
                                key_fields=emb.get("key_fields"))
        chunks = chunk_segments(segments, cfg)
    except Exception as e:  # noqa: BLE001 - any error (MemoryError, RecursionError, a library's bug) fails
        # this document, never its batch
        reason = str(e) if isinstance(e, (ExtractionError, ValueError)) else f"{type(e).__name__}: {str(e)[:500]}"
        del e
        _fail(conn, doc_id, reason)
        vectorstore.delete_ids(coll, sorted(existing))  # an earlier version's vectors no longer match
        lexical.prune(conn, doc_id)
        summary["failed"][doc_id] = reason
        log.warning("document %s (%s) failed: %s", doc_id, doc["title"], reason)
        return None
    ids = [chunk_id(doc_id, c.index, c.content_hash) for c in chunks]
    rows: dict[str, list] = {"id": [], "document_id": [], "text": [], "metadata": []}
    ts = int(time.time())
    for c, cid in zip(chunks, ids, strict=True):
        if cid in existing:
            continue
        m = {"honey_jar_id": jar_id, "document_id": doc_id, "document_type": meta.get("source", "upload"),
             "file_type": doc["file_type"], "timestamp": ts, "chunk_index": c.index, "title": doc["title"][:500],
             **{k: v for k, v in c.meta.items() if isinstance(v, (str, int, float, bool))}}
        rows["id"].append(cid)
        rows["document_id"].append(doc_id)
        rows["text"].append(c.text)
        rows["metadata"].append(json.dumps(m))
    summary["prepared"].append(doc_id)
    entry = {"document_id": doc_id, "jar_id": jar_id, "content_hash": sha, "file_size": len(data),
             "chunking": cfg.key, "chunk_ids": ids, "text_fields": emb.get("text_fields"),
             "key_fields": emb.get("key_fields")}
    return entry, rows


def prepare(document_ids: list[str], limits: Limits | None = None, run_key: str | None = None) -> dict:
    """Fetch, dedupe, extract and chunk a batch. Documents that fail, are duplicates or are
    unchanged are finished here. The chunks that need vectors go to one Parquet object in the
    staging area; returns its reference and the plan (ids only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.documents import vectorstore

    coll = vectorstore.collection()
    out_rows: dict[str, list] = {"id": [], "document_id": [], "text": [], "metadata": []}
    plan: list[dict] = []
    summary = {"failed": {}, "duplicates": [], "unchanged": [], "prepared": []}
    # One connection for the batch, each statement its own transaction (a failure stays local);
    # one vector-store request for the ids the batch's documents already have.
    with connect(autocommit=True) as conn:
        docs = conn.execute(
            """SELECT d.*, j.config AS jar_config FROM documents d JOIN honey_jars j ON j.id = d.honey_jar_id
                WHERE d.id = ANY(%s::uuid[])""", (document_ids,)).fetchall()
        existing_by_doc = vectorstore.ids_by_document(coll, [str(d["id"]) for d in docs])
        for doc in docs:
            item = _prepare_one(conn, coll, doc, existing_by_doc[str(doc["id"])], limits, summary)
            if item is None:
                continue
            entry, rows = item
            plan.append(entry)
            for k in out_rows:
                out_rows[k].extend(rows[k])
    ref = None
    if out_rows["id"]:
        s = get_settings()
        key = f"_staging/chunks/{run_key or 'adhoc'}/{uuid.uuid4().hex}.parquet"
        buf = io.BytesIO()
        pq.write_table(pa.table(out_rows), buf, compression="zstd")
        storage.s3_client().put_object(Bucket=s.comb_output_bucket, Key=key, Body=buf.getvalue())
        ref = {"bucket": s.comb_output_bucket, "key": key, "chunks": len(out_rows["id"])}
    jars = sorted({str(d["honey_jar_id"]) for d in docs})
    return {"chunks_ref": ref, "plan": plan, "summary": summary, "jars": jars}


# ----------------------------------------------------------------------------- embed + upsert
def embed_and_upsert(chunks_ref: dict | None, collection_name: str = "honey_jar_documents",
                     batch_size: int = 32, lineage: dict | None = None) -> dict:
    """Chunks in (a Parquet object), vectors into Chroma; returns ids and counts. `lineage`, when
    given, is filled with the batch's documents -> collection -> jars (include/lineage.py)."""
    if not chunks_ref:
        return {"upserted": 0, "ids": [], "seconds": 0.0}
    import pyarrow.parquet as pq

    from include.documents import vectorstore
    from include.documents.embedding import embed, model_loaded

    preloaded = model_loaded()
    body = storage.s3_client().get_object(Bucket=chunks_ref["bucket"], Key=chunks_ref["key"])["Body"].read()
    t = pq.read_table(io.BytesIO(body))
    ids, texts = t.column("id").to_pylist(), t.column("text").to_pylist()
    metas = [json.loads(m) for m in t.column("metadata").to_pylist()]
    t0 = time.perf_counter()
    vectors = embed(texts, batch_size=batch_size)
    embed_s = time.perf_counter() - t0
    vectorstore.upsert(vectorstore.collection(collection_name), ids, vectors, texts, metas)
    with connect(autocommit=True) as conn:  # the same chunks for full-text search
        lexical.write(conn, lexical.rows_from(ids, texts, metas))
        if lineage is not None:
            from include.lineage import document_batch

            doc_ids = sorted({m["document_id"] for m in metas if m.get("document_id")})
            rows = conn.execute("""SELECT d.upload_path, j.name FROM documents d JOIN honey_jars j ON j.id = d.honey_jar_id
                                    WHERE d.id = ANY(%s::uuid[])""", (doc_ids,)).fetchall()
            lineage.update(document_batch([(r["upload_path"], r["name"]) for r in rows], collection_name, len(ids)))
    storage.delete(chunks_ref["bucket"], chunks_ref["key"])
    return {"upserted": len(ids), "ids": ids, "embed_seconds": embed_s, "seconds": time.perf_counter() - t0,
            "model_preloaded": preloaded}


# ----------------------------------------------------------------------------- complete
def complete(prepared: dict, upserted: dict | None = None, collection_name: str = "honey_jar_documents") -> dict:
    """After the vectors are in: delete chunk ids documents no longer produce, mark documents
    completed with their chunk counts, and drop cached answers of the jars that changed."""
    from include.documents import vectorstore
    from include.documents.search import invalidate_jars

    coll = vectorstore.collection(collection_name)
    plan = prepared["plan"]
    keep = {p["document_id"]: p["chunk_ids"] for p in plan}
    have = vectorstore.ids_by_document(coll, list(keep))
    stale = sorted(c for d, ids in have.items() for c in ids - set(keep.get(d, ())))
    stale_total = vectorstore.delete_ids(coll, stale)
    with connect(autocommit=True) as conn:
        # Set-based over the batch: one DELETE of rows no document produces any more, one lookup
        # (and one vector-store read) for kept chunks of an earlier run this table lacks.
        lexical.prune_many(conn, keep)
        lexical.backfill_many(conn, coll, keep)
        done = []
        for p in plan:
            emb = {"status": "embedded", "content_hash": p["content_hash"], "chunking": p["chunking"], "model": MODEL,
                   "chunk_count": len(p["chunk_ids"])}
            if p.get("text_fields"):
                emb.update(text_fields=p["text_fields"], key_fields=p.get("key_fields") or [])
            done.append((len(p["chunk_ids"]), p["content_hash"], p["file_size"], Jsonb({"embedding": emb}),
                         p["document_id"]))
        with conn.cursor() as cur:
            cur.executemany(_COMPLETE_SQL, done)  # pipelined: one round trip for the batch
    changed = prepared["jars"]
    invalidated = invalidate_jars(changed)
    return {"completed": len(prepared["plan"]), "stale_deleted": stale_total,
            "upserted": (upserted or {}).get("upserted", 0), "cache_keys_invalidated": invalidated,
            **{k: len(v) for k, v in prepared["summary"].items()}}


def process(document_ids: list[str], limits: Limits | None = None, run_key: str | None = None) -> dict:
    """prepare -> embed_and_upsert -> complete in one process (tests, benchmarks, the CLI)."""
    p = prepare(document_ids, limits, run_key)
    u = embed_and_upsert(p["chunks_ref"])
    return {**complete(p, u), "failed_reasons": p["summary"]["failed"]}


# ----------------------------------------------------------------------------- deletion
def delete_document(document_id: str, delete_original: bool = False) -> int:
    """Delete a document: its vectors, its row (the jar's count follows), optionally its object."""
    from include.documents import vectorstore
    from include.documents.search import invalidate_jars

    coll = vectorstore.collection()
    n = vectorstore.delete_ids(coll, vectorstore.ids_where(coll, {"document_id": document_id}))
    with connect() as conn:
        row = conn.execute("DELETE FROM documents WHERE id = %s RETURNING honey_jar_id, upload_path",
                           (document_id,)).fetchone()
    if row:
        invalidate_jars([str(row["honey_jar_id"])])
        if delete_original and row["upload_path"]:
            storage.delete(*_split_uri(row["upload_path"]))
    return n


def delete_vectors_of_deleted_documents(limit: int = 10_000) -> int:
    """Delete the vectors of documents deleted since the last sweep (noted by a trigger, however
    the rows went: the API, a jar's cascade, plain SQL). Cheap: no scan of the vector store."""
    from include.documents import vectorstore
    from include.documents.search import invalidate_jars

    coll = vectorstore.collection()
    with connect() as conn:
        rows = conn.execute("SELECT document_id, honey_jar_id FROM document_deletions ORDER BY deleted_at LIMIT %s",
                            (limit,)).fetchall()
    n = 0
    for r in rows:
        n += vectorstore.delete_ids(coll, vectorstore.ids_where(coll, {"document_id": str(r["document_id"])}))
    if rows:
        with connect() as conn:
            conn.execute("DELETE FROM document_deletions WHERE document_id = ANY(%s)", ([r["document_id"] for r in rows],))
        invalidate_jars(sorted({str(r["honey_jar_id"]) for r in rows if r["honey_jar_id"]}))
    return n


def sweep_orphans(jar_ids: list[str] | None = None) -> int:
    """Repair: scan the vector store (of some jars, or all) for vectors whose document row is
    gone. Not needed in normal operation (see delete_vectors_of_deleted_documents)."""
    from include.documents import vectorstore

    coll = vectorstore.collection()
    where = {"honey_jar_id": {"$in": jar_ids}} if jar_ids else None
    got = coll.get(where=where, include=["metadatas"])
    by_doc: dict[str, list[str]] = {}
    for i, m in zip(got["ids"], got["metadatas"], strict=True):
        by_doc.setdefault(m.get("document_id", ""), []).append(i)
    if not by_doc:
        return 0
    with connect() as conn:
        alive = {str(r["id"]) for r in conn.execute(
            "SELECT id FROM documents WHERE id = ANY(%s::uuid[])",
            ([d for d in by_doc if _is_uuid(d)],)).fetchall()}
    orphans = [i for d, ids in by_doc.items() if d not in alive for i in ids]
    return vectorstore.delete_ids(coll, orphans)


def _is_uuid(s: str) -> bool:
    try:
        uuid.UUID(s)
        return True
    except ValueError:
        return False

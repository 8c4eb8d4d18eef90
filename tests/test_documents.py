"""Documents into honey jars against the real services (S3, PostgreSQL, Chroma, Redis) with the
real model: every format, bad files failing alone, dedupe, changed and deleted documents,
exact counts, search and its cache."""

from __future__ import annotations

import uuid

import pytest
from psycopg.types.json import Jsonb

from include import storage
from include.db import connect
from include.documents import ingest, vectorstore
from include.documents.chunking import ChunkingConfig, chunk_segments, count_tokens
from include.documents.extract import ExtractionError, Segment, extract_text
from include.documents.search import redis_client, search
from tests.doctools import LONG_LINE, bad_files, corpus


@pytest.fixture
def jar(stack):
    with connect() as conn:
        jar_id = str(conn.execute(
            "INSERT INTO honey_jars (name, config) VALUES (%s, %s) RETURNING id",
            (f"docs test {uuid.uuid4().hex[:6]}", Jsonb({"jar_key": f"test:{uuid.uuid4()}", "limits": {"max_bytes": 1_000_000}})),
        ).fetchone()["id"])
    yield jar_id
    coll = vectorstore.collection()
    vectorstore.delete_ids(coll, vectorstore.ids_where(coll, {"honey_jar_id": jar_id}))
    with connect() as conn:
        conn.execute("DELETE FROM honey_jars WHERE id = %s", (jar_id,))
    for o in storage.list_keys("user-files", f"documents/{jar_id}/"):
        storage.delete("user-files", o["Key"])


def upload(jar_id: str, name: str, data: bytes) -> str:
    key = f"documents/{jar_id}/{name}"
    storage.s3_client().put_object(Bucket="user-files", Key=key, Body=data)
    with connect() as conn:
        return ingest.register_upload(conn, jar_id, storage.uri("user-files", key))


def docs(jar_id: str) -> dict[str, dict]:
    with connect() as conn:
        return {r["title"]: r for r in conn.execute("SELECT * FROM documents WHERE honey_jar_id = %s", (jar_id,))}


def vector_ids(**where) -> set[str]:
    return set(vectorstore.ids_where(vectorstore.collection(), where))


def assert_count_exact(jar_id: str) -> None:
    with connect() as conn:
        row = conn.execute("SELECT document_count, (SELECT count(*) FROM documents WHERE honey_jar_id = %s) AS real "
                           "FROM honey_jars WHERE id = %s", (jar_id, jar_id)).fetchone()
    assert row["document_count"] == row["real"]


def test_every_format_extracts():
    for name, data in corpus().items():
        segments = extract_text(data, name.rsplit(".", 1)[1])
        text = "\n".join(s.text for s in segments)
        assert text.strip(), name
    assert "page two covers rotating credentials" in extract_text(corpus()["guide.pdf"], "pdf")[1].text.lower()
    assert extract_text(corpus()["guide.pdf"], "pdf")[1].meta == {"page": 2}
    assert "critical | on-call analyst" in extract_text(corpus()["policy.docx"], "docx")[0].text
    html = extract_text(corpus()["page.html"], "html")[0]
    assert "Mirai scans telnet" in html.text and "var x" not in html.text and html.meta["html_title"] == "Telnet traps"
    assert "à Göteborg" in extract_text(corpus()["latin1.txt"], "txt")[0].text
    assert "Zürich" in extract_text(corpus()["utf16.txt"], "txt")[0].text
    assert "alert.source.ip: 203.0.113.9" in extract_text(corpus()["alert.json"], "json")[0].text
    assert "indicator: 198.51.100.7; type: ip" in extract_text(corpus()["iocs.csv"], "csv")[0].text


def test_bad_files_fail_with_their_reason():
    from include.documents.extract import Limits

    for name, (data, reason) in bad_files().items():
        with pytest.raises(ExtractionError, match=reason):
            extract_text(data, name.rsplit(".", 1)[1], Limits(max_bytes=1_000_000))


def test_chunks_fit_the_model_and_no_text_is_lost():
    cfg = ChunkingConfig(max_tokens=120, overlap_tokens=20)
    chunks = chunk_segments([Segment("# Retention\n\n" + LONG_LINE, {"page": 3})], cfg)
    assert len(chunks) > 5
    assert max(count_tokens(c.text) for c in chunks) <= 120
    joined = " ".join(c.text for c in chunks)
    assert all(f"token{i}" in joined for i in range(1200))  # the 11,000-character line survives whole
    assert chunks[0].meta == {"page": 3} and [c.index for c in chunks] == list(range(len(chunks)))
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkingConfig.from_jar_config({"chunking": {"max_tokens": 400}})


def test_batch_with_bad_files_completes_and_reruns_change_nothing(jar):
    good = {name: upload(jar, name, data) for name, data in corpus().items()}
    bad = {name: upload(jar, name, data) for name, (data, _) in bad_files().items()}
    result = ingest.process(ingest.claim(jar_id=jar))
    assert result["completed"] == len(good) and result["failed"] == len(bad)
    state = docs(jar)
    for name, (_, reason) in bad_files().items():
        assert state[name]["processing_status"] == "failed"
        assert reason in state[name]["metadata"]["error"]["reason"], name
    for name in good:
        assert state[name]["processing_status"] == "completed" and state[name]["chunk_count"] > 0, name
        assert len(state[name]["content_hash"]) == 64 and state[name]["processed_at"]
    ids_before = vector_ids(honey_jar_id=jar)
    assert len(ids_before) == sum(state[n]["chunk_count"] for n in good)
    assert_count_exact(jar)

    # Rerun over the same documents: nothing is embedded or written.
    again = ingest.process(ingest.claim(document_ids=list(good.values())))
    assert again["unchanged"] == len(good) and again["upserted"] == 0 and again["stale_deleted"] == 0
    assert vector_ids(honey_jar_id=jar) == ids_before

    # The same bytes uploaded again under another name: embedded once.
    dup = upload(jar, "guide-copy.pdf", corpus()["guide.pdf"])
    r = ingest.process(ingest.claim(jar_id=jar))
    assert r["duplicates"] == 1 and r["upserted"] == 0
    assert docs(jar)["guide-copy.pdf"]["metadata"]["duplicate_of"] == good["guide.pdf"]
    assert vector_ids(document_id=dup) == set()
    assert vector_ids(honey_jar_id=jar) == ids_before
    assert_count_exact(jar)


def test_changed_file_leaves_no_stale_chunks_and_deleted_document_no_vectors(jar):
    doc = upload(jar, "notes.md", corpus()["notes.md"])
    other = upload(jar, "page.html", corpus()["page.html"])
    ingest.process(ingest.claim(jar_id=jar))
    old = vector_ids(document_id=doc)
    assert old
    # Same object key, new bytes (a re-upload): re-registered, re-processed.
    changed = b"# Retention\n\nEvents now stay hot for fourteen days, then move to S3.\n"
    upload(jar, "notes.md", changed)
    r = ingest.process(ingest.claim(jar_id=jar))
    new = vector_ids(document_id=doc)
    assert new and not (new & old) and r["stale_deleted"] == len(old)
    got = vectorstore.collection().get(ids=sorted(new), include=["documents"])
    assert all("fourteen days" in t for t in got["documents"])
    # Deleting a document deletes its vectors, and the jar's count follows.
    assert ingest.delete_document(doc) == len(new)
    assert vector_ids(document_id=doc) == set() and vector_ids(document_id=other)
    # Rows deleted behind the pipeline's back: noted by the trigger, the DAG's sweep removes their vectors.
    with connect() as conn:
        conn.execute("DELETE FROM documents WHERE id = %s", (other,))
    assert ingest.delete_vectors_of_deleted_documents() > 0 and vector_ids(document_id=other) == set()
    assert_count_exact(jar)


def test_search_ranks_with_titles_and_the_cache_is_invalidated_by_ingestion(jar):
    for name in ("guide.pdf", "page.html", "policy.docx", "iocs.csv"):
        upload(jar, name, corpus()[name])
    ingest.process(ingest.claim(jar_id=jar))
    first = search("which port does the Mirai botnet scan for telnet", [jar], k=3)
    assert not first["cached"] and first["results"][0]["title"] == "page.html"
    assert first["results"][0]["score"] > first["results"][-1]["score"]
    again = search("which port does the Mirai botnet scan for telnet", [jar], k=3)
    assert again["cached"] and again["results"] == first["results"]
    filtered = search("rotating credentials", [jar], k=3, where={"file_type": "pdf"})
    assert {x["title"] for x in filtered["results"]} == {"guide.pdf"}
    upload(jar, "notes.md", corpus()["notes.md"])
    ingest.process(ingest.claim(jar_id=jar))  # the jar changed: its cached answers are gone
    assert not search("which port does the Mirai botnet scan for telnet", [jar], k=3)["cached"]
    assert redis_client().exists(f"ai:response:jar:{jar}")


def test_comb_output_text_fields_become_chunks_with_record_keys(jar, tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "subject": ["VPN outage in Leeds", None, "Phishing wave on payroll"],
                             "email": ["h1", "h2", "h3"]}), buf)
    storage.s3_client().put_object(Bucket="user-files", Key=f"documents/{jar}/out.parquet", Body=buf.getvalue())
    with connect() as conn:
        conn.execute("""INSERT INTO documents (honey_jar_id, title, file_type, upload_path, metadata, processing_status)
                        VALUES (%s, 'out.parquet', 'parquet', %s, %s, 'pending')""",
                     (jar, f"s3://user-files/documents/{jar}/out.parquet",
                      Jsonb({"source": "honey_comb", "embedding": {"status": "pending", "text_fields": ["subject"],
                                                                   "key_fields": ["id"]}})))
    r = ingest.process(ingest.claim(jar_id=jar))
    assert r["completed"] == 1
    hit = search("phishing emails targeting payroll", [jar], k=1)["results"][0]
    assert hit["metadata"]["record_id"] == "3" and "Phishing wave" in hit["text"] and "h3" not in hit["text"]


def test_vectors_lost_from_the_store_are_rebuilt_not_assumed(jar):
    """PostgreSQL says 'embedded' but the vector store lost the chunks (restored from an older
    snapshot, or replaced): reprocessing writes them again instead of trusting the record."""
    doc = upload(jar, "page.html", corpus()["page.html"])
    ingest.process(ingest.claim(jar_id=jar))
    ids = vector_ids(document_id=doc)
    vectorstore.delete_ids(vectorstore.collection(), sorted(ids))
    r = ingest.process(ingest.claim(document_ids=[doc]))
    assert r["unchanged"] == 0 and r["upserted"] == len(ids) and vector_ids(document_id=doc) == ids


def test_discover_registers_new_uploads_and_changed_bytes(jar):
    key = f"documents/{jar}/feed.csv"
    storage.s3_client().put_object(Bucket="user-files", Key=key, Body=corpus()["iocs.csv"],
                                   Metadata={"honey-jar-id": jar, "title": "feed.csv"})
    storage.s3_client().put_object(Bucket="user-files", Key=f"documents/{jar}/orphan.txt", Body=b"no jar named")
    new = ingest.discover_uploads(prefix=f"documents/{jar}/")
    assert len(new) == 1 and docs(jar)["feed.csv"]["processing_status"] == "pending"
    ingest.process(ingest.claim(jar_id=jar))
    assert ingest.discover_uploads(prefix=f"documents/{jar}/") == []  # same bytes: nothing to do
    storage.s3_client().put_object(Bucket="user-files", Key=key, Body=b"indicator;type\nnew.example;domain\n",
                                   Metadata={"honey-jar-id": jar, "title": "feed.csv"})
    assert ingest.discover_uploads(prefix=f"documents/{jar}/") == new  # re-uploaded: pending again
    assert docs(jar)["feed.csv"]["processing_status"] == "pending"


def _rows(document_id: str) -> set[str]:
    with connect() as conn:
        return {r["chunk_id"] for r in conn.execute(
            "SELECT chunk_id FROM document_chunks WHERE document_id = %s", (document_id,))}


def _sections(n: int, topic: str) -> bytes:
    words = "sensor attacker session credential password scanner payload dropper telnet ssh port".split()
    return "\n\n".join(f"## {topic} section {i}\n\n" + " ".join(words[(i + j) % len(words)] for j in range(160))
                       for i in range(n)).encode()


def test_full_text_rows_follow_the_vectors_across_a_batch(jar):
    """complete() prunes and backfills the full-text rows of a whole batch at once: after changed,
    extended and shrunk documents (one whose rows predate the table), every document's rows are
    exactly its vectors."""
    a = upload(jar, "a.md", _sections(6, "alpha"))
    b = upload(jar, "b.md", _sections(6, "beta"))
    c = upload(jar, "c.md", _sections(3, "gamma"))
    ingest.process(ingest.claim(jar_id=jar))
    assert all(_rows(d) == vector_ids(document_id=d) and _rows(d) for d in (a, b, c))
    with connect() as conn:  # a's chunks embedded before the table existed
        conn.execute("DELETE FROM document_chunks WHERE document_id = %s", (a,))
    upload(jar, "a.md", _sections(8, "alpha"))  # extended: its first chunks keep their ids
    upload(jar, "b.md", _sections(2, "beta"))  # shrunk: rows of its dropped chunks go
    upload(jar, "c.md", _sections(3, "delta"))  # rewritten
    before_a = vector_ids(document_id=a)
    r = ingest.process(ingest.claim(jar_id=jar))
    assert r["completed"] == 3
    for d in (a, b, c):
        assert _rows(d) == vector_ids(document_id=d) != set()
    assert before_a & vector_ids(document_id=a)  # kept chunks were backfilled, not re-embedded away
    assert search("gamma", [jar], k=3, mode="lexical", use_cache=False)["results"] == []  # old words gone
    assert search("delta", [jar], k=3, mode="lexical", use_cache=False)["results"][0]["title"] == "c.md"

"""Hybrid search at document level, and the search endpoint Airflow's API server hosts (the
plugin's FastAPI app): authenticated, cached in Redis, the cache dropped by ingestion."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest
from psycopg.types.json import Jsonb

from include import storage
from include.db import connect
from include.documents import ingest, vectorstore
from include.documents.search import redis_client, search

# Three documents about the same subject, each long enough for several chunks, and one that is
# the only place an identifier appears.
DOCS = {
    f"ssh-{i}.md": ("\n\n".join(f"## Part {p}\n\nSSH brute force attempts against the honeypot on port 22: attackers "
                                f"cycle through usernames and passwords, variant {i}.{p}, "
                                + " ".join(f"word{i}{p}{w}" for w in range(60)) for p in range(6))).encode()
    for i in range(3)
}
DOCS["cve.md"] = (b"# Advisory\n\nThe appliance is affected by CVE-2024-3400-XQ7 in its GlobalProtect portal; "
                  b"patch to 11.1.2-h3.\n")
DOCS["table.txt"] = ("Honeypot sensors by region.\n\n+----------+-------------+--------+\n"
                     "| sensor   | region      | events |\n+----------+-------------+--------+\n"
                     + "\n".join(f"| hp-{i:04d}  | region-{i % 7}    | {i * 13} |" for i in range(120))
                     + "\n+----------+-------------+--------+\n").encode()


@pytest.fixture
def jar(stack):
    with connect() as conn:
        jar_id = str(conn.execute("INSERT INTO honey_jars (name, config) VALUES (%s, %s) RETURNING id",
                                  (f"search test {uuid.uuid4().hex[:6]}", Jsonb({"jar_key": f"test:{uuid.uuid4()}"}))
                                  ).fetchone()["id"])
    for name, data in DOCS.items():
        key = f"documents/{jar_id}/{name}"
        storage.s3_client().put_object(Bucket="user-files", Key=key, Body=data)
        with connect() as conn:
            ingest.register_upload(conn, jar_id, storage.uri("user-files", key), title=name)
    ingest.process(ingest.claim(jar_id=jar_id))
    yield jar_id
    coll = vectorstore.collection()
    vectorstore.delete_ids(coll, vectorstore.ids_where(coll, {"honey_jar_id": jar_id}))
    with connect() as conn:
        conn.execute("DELETE FROM honey_jars WHERE id = %s", (jar_id,))


def test_search_returns_k_distinct_documents_each_with_its_best_chunks(jar):
    chunks = search("SSH brute force usernames and passwords on port 22", [jar], k=5, level="chunk", use_cache=False)
    assert len(chunks["results"]) == 5
    assert len({x["document_id"] for x in chunks["results"]}) < 5  # chunk level: one document fills several ranks
    docs = search("SSH brute force usernames and passwords on port 22", [jar], k=5, use_cache=False)["results"]
    assert len(docs) == 5 and len({x["document_id"] for x in docs}) == 5
    assert {x["title"] for x in docs[:3]} == {"ssh-0.md", "ssh-1.md", "ssh-2.md"}
    for d in docs:
        assert 1 <= len(d["chunks"]) <= 3
        assert d["chunks"][0]["chunk_id"] == d["chunk_id"]  # ranked by its best evidence
        assert all(c["score"] <= d["score"] for c in d["chunks"])
    assert [d["score"] for d in docs] == sorted((d["score"] for d in docs), reverse=True)


def test_an_exact_identifier_is_found_by_full_text(jar):
    hit = search("CVE-2024-3400-XQ7", [jar], k=1, use_cache=False)["results"][0]
    assert hit["title"] == "cve.md" and hit["lexical_rank"] == 1
    with connect() as conn:  # the chunks are in PostgreSQL beside the vectors, and leave with them
        n = conn.execute("SELECT count(*) AS n FROM document_chunks WHERE honey_jar_id = %s", (jar,)).fetchone()["n"]
        assert n == len(vectorstore.ids_where(vectorstore.collection(), {"honey_jar_id": jar}))
        doc = conn.execute("SELECT id FROM documents WHERE honey_jar_id = %s AND title = 'cve.md'", (jar,)).fetchone()
    ingest.delete_document(str(doc["id"]))
    assert not [x for x in search("CVE-2024-3400-XQ7", [jar], k=3, use_cache=False)["results"] if x["title"] == "cve.md"]


def test_a_table_keeps_its_header_in_every_chunk(jar):
    coll = vectorstore.collection()
    got = coll.get(where={"$and": [{"honey_jar_id": jar}, {"title": "table.txt"}]}, include=["documents", "metadatas"])
    table = [t for t, m in zip(got["documents"], got["metadatas"], strict=True) if m.get("content") == "table"]
    assert len(table) >= 3
    rows = set()
    for t in table:
        lines = t.splitlines()
        assert "| sensor   | region      | events |" in lines[:3]
        rows |= {ln for ln in lines if ln.startswith("| hp-")}
    assert len(rows) == 120  # every row in some chunk, none cut in half


def _http(api, method: str, path: str, body: dict | None = None, token: str | None = None):
    req = urllib.request.Request(api.base + path, data=json.dumps(body).encode() if body else None, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_the_endpoint_needs_credentials_and_its_cache_is_dropped_by_ingestion(airflow, jar):
    path = f"/sting/api/v1/search?q=CVE-2024-3400-XQ7+GlobalProtect&jar={jar}&k=2"
    assert _http(airflow, "GET", path)[0] == 401
    assert _http(airflow, "GET", path, token="not-a-jwt")[0] == 403
    assert _http(airflow, "POST", "/sting/api/v1/search", {"query": "x", "jar_ids": [jar]})[0] == 401
    status, first = _http(airflow, "GET", path, token=airflow.token())
    assert status == 200, first
    assert not first["cached"] and first["results"][0]["title"] == "cve.md" and first["level"] == "document"
    key = [k for k in redis_client().smembers(f"ai:response:jar:{jar}")]
    assert key and json.loads(redis_client().get(key[0]))["context"]  # the seed's cache entry shape
    status, again = _http(airflow, "GET", path, token=airflow.token())
    assert status == 200 and again["cached"] and again["results"] == first["results"]
    status, body = _http(airflow, "POST", "/sting/api/v1/search",
                         {"query": "CVE-2024-3400-XQ7 GlobalProtect", "jar_ids": [jar], "k": 2}, airflow.token())
    assert status == 200 and body["results"][0]["title"] == "cve.md"
    assert _http(airflow, "POST", "/sting/api/v1/search", {"query": "", "jar_ids": [jar]}, airflow.token())[0] == 422
    # Ingestion into the jar drops its cached answers: the next call searches again and sees the new document.
    key2 = f"documents/{jar}/cve-update.md"
    storage.s3_client().put_object(Bucket="user-files", Key=key2,
                                   Body=b"# Update\n\nCVE-2024-3400-XQ7 GlobalProtect: hotfix 11.1.2-h4 supersedes h3.\n")
    with connect() as conn:
        ingest.register_upload(conn, jar, storage.uri("user-files", key2), title="cve-update.md")
    assert ingest.process(ingest.claim(jar_id=jar))["cache_keys_invalidated"] >= 1
    status, after = _http(airflow, "GET", path, token=airflow.token())
    assert status == 200 and not after["cached"]
    assert {x["title"] for x in after["results"]} == {"cve.md", "cve-update.md"}

"""ChromaDB through its server (several Airflow workers must never share a local persist dir).
Vectors are always supplied by us: collections have no embedding function, so Chroma never tries
to download a model."""

from __future__ import annotations

import functools

from include.settings import get_settings

DOCUMENTS = "honey_jar_documents"
KNOWLEDGE = "knowledge_base"


@functools.lru_cache(maxsize=2)
def _client(host: str, port: int):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.HttpClient(host=host, port=port, settings=ChromaSettings(anonymized_telemetry=False))


def client():
    s = get_settings()
    return _client(s.chroma_host, s.chroma_port)


def collection(name: str = DOCUMENTS):
    """The collection, looked up (or created) once per process and server, not on every call."""
    s = get_settings()
    return _collection(s.chroma_host, s.chroma_port, name)


@functools.lru_cache(maxsize=8)
def _collection(host: str, port: int, name: str):
    return _client(host, port).get_or_create_collection(
        name=name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}},
        metadata={"owner": "sting-data-pipelines", "model": "all-MiniLM-L6-v2"},
    )


def max_batch() -> int:
    return client().get_max_batch_size()


def upsert(coll, ids: list[str], embeddings, documents: list[str], metadatas: list[dict]) -> int:
    """Upsert in batches within the server's max batch size; returns the number written."""
    step = max_batch()
    for i in range(0, len(ids), step):
        coll.upsert(ids=ids[i:i + step], embeddings=embeddings[i:i + step], documents=documents[i:i + step],
                    metadatas=metadatas[i:i + step])
    return len(ids)


def ids_where(coll, where: dict) -> list[str]:
    return coll.get(where=where, include=[])["ids"]


def ids_by_document(coll, document_ids: list[str]) -> dict[str, set[str]]:
    """Chunk ids per document for a batch of documents, in one request."""
    out: dict[str, set[str]] = {d: set() for d in document_ids}
    if not document_ids:
        return out
    got = coll.get(where={"document_id": {"$in": list(document_ids)}}, include=["metadatas"])
    for i, m in zip(got["ids"], got["metadatas"], strict=True):
        out.setdefault(m["document_id"], set()).add(i)
    return out


def delete_ids(coll, ids: list[str]) -> int:
    step = max_batch()
    for i in range(0, len(ids), step):
        coll.delete(ids=ids[i:i + step])
    return len(ids)

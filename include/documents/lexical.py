"""Full-text search over chunk text in PostgreSQL: the lexical half of hybrid retrieval.

Every chunk Chroma holds has a row in `document_chunks` (text, title, the same metadata) with a
stored `tsvector` (title weight A, body weight D, the 'english' configuration) under a GIN index.
Vectors find paraphrases; exact terms, option names and identifiers are where they miss, and
where full text does not.

Ranking is Okapi BM25 (k1 1.2, b 0.75), computed in SQL: PostgreSQL's own `ts_rank` has no
inverse document frequency, so a question's common words outweigh its rare, telling ones (on the
labelled PostgreSQL-docs questions, ts_rank-based ranking reached recall@5 0.70 where BM25 reaches
0.975). The query's lexemes are counted in the searched scope first (one GIN lookup each); the
chunks matching any of them are scored from their tsvector's positions (term frequency) and
length.
"""

from __future__ import annotations

import json
import math

from psycopg.types.json import Jsonb

# Filter keys of Chroma's `where` this side understands; others make the lexical side stand
# aside (the search says so in its `mode`).
_OPS = {"$eq", "$in"}


class UnsupportedFilter(ValueError):
    pass


def write(conn, rows: list[dict]) -> int:
    """Insert chunk rows (chunk_id, document_id, honey_jar_id, chunk_index, title, text, metadata);
    ids are content-addressed, so a row already there is the same chunk. A document deleted
    meanwhile gets no rows."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO document_chunks (chunk_id, document_id, honey_jar_id, chunk_index, title, text, metadata)
               SELECT %(chunk_id)s, %(document_id)s, %(honey_jar_id)s, %(chunk_index)s, %(title)s, %(text)s, %(metadata)s
                WHERE EXISTS (SELECT 1 FROM documents WHERE id = %(document_id)s)
               ON CONFLICT (chunk_id) DO UPDATE SET metadata = EXCLUDED.metadata""",
            [{**r, "text": r["text"].replace("\x00", ""), "metadata": Jsonb(r.get("metadata") or {})} for r in rows])
    return len(rows)


def rows_from(ids: list[str], texts: list[str], metas: list[dict]) -> list[dict]:
    return [{"chunk_id": i, "document_id": m["document_id"], "honey_jar_id": m["honey_jar_id"],
             "chunk_index": int(m.get("chunk_index", 0)), "title": m.get("html_title") or m.get("title"),
             "text": t, "metadata": m} for i, t, m in zip(ids, texts, metas, strict=True)]


def prune(conn, document_id: str, keep: list[str] | None = None) -> int:
    """Delete a document's rows except `keep` (all of them when keep is None)."""
    if keep is None:
        return conn.execute("DELETE FROM document_chunks WHERE document_id = %s", (document_id,)).rowcount
    return conn.execute("DELETE FROM document_chunks WHERE document_id = %s AND chunk_id <> ALL(%s)",
                        (document_id, keep)).rowcount


def missing(conn, document_id: str, chunk_ids: list[str]) -> list[str]:
    have = {r["chunk_id"] for r in conn.execute(
        "SELECT chunk_id FROM document_chunks WHERE document_id = %s", (document_id,))}
    return [c for c in chunk_ids if c not in have]


def backfill(conn, coll, document_id: str, chunk_ids: list[str]) -> int:
    """Rows for chunks the vector store holds but this table lacks (documents embedded before the
    table existed), copied from the store: no re-embedding."""
    return backfill_many(conn, coll, {document_id: chunk_ids})


def prune_many(conn, keep: dict[str, list[str]]) -> int:
    """`prune` for a batch of documents in one statement: each document keeps its own ids."""
    if not keep:
        return 0
    docs = list(keep)
    kept = [c for ids in keep.values() for c in ids]
    return conn.execute(
        "DELETE FROM document_chunks WHERE document_id = ANY(%s::uuid[]) AND chunk_id <> ALL(%s::text[])",
        (docs, kept)).rowcount


def backfill_many(conn, coll, keep: dict[str, list[str]]) -> int:
    """`backfill` for a batch of documents: one query for the ids this table lacks, one read of
    the vector store for all of them."""
    want = [c for ids in keep.values() for c in ids]
    if not want:
        return 0
    have = {r["chunk_id"] for r in conn.execute(
        "SELECT chunk_id FROM document_chunks WHERE chunk_id = ANY(%s::text[])", (want,))}
    need = list(dict.fromkeys(c for c in want if c not in have))
    if not need:
        return 0
    n, step = 0, 5000  # bounded requests to the store however many are missing
    for i in range(0, len(need), step):
        got = coll.get(ids=need[i:i + step], include=["documents", "metadatas"])
        n += write(conn, rows_from(got["ids"], got["documents"], got["metadatas"]))
    return n


def _tsq(lexeme: str) -> str:
    """A lexeme as a tsquery operand, quoted (no second stemming of an already stemmed lexeme)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _filter_sql(where: dict | None) -> tuple[str, list]:
    """Chroma's simple metadata filters as SQL over the metadata column ($and of equalities and
    $in lists); anything else raises UnsupportedFilter."""
    if not where:
        return "TRUE", []
    if set(where) == {"$and"}:
        parts = [_filter_sql(w) for w in where["$and"]]
        return " AND ".join(f"({p})" for p, _ in parts), [x for _, ps in parts for x in ps]
    clauses, params = [], []
    for field, cond in where.items():
        if field.startswith("$"):
            raise UnsupportedFilter(field)
        if isinstance(cond, dict):
            if len(cond) != 1 or next(iter(cond)) not in _OPS:
                raise UnsupportedFilter(json.dumps(cond))
            op, val = next(iter(cond.items()))
            vals = val if op == "$in" else [val]
        else:
            vals = [cond]
        clauses.append("c.metadata -> %s = ANY(%s::jsonb[])")
        params += [field, [json.dumps(v) for v in vals]]
    return " AND ".join(clauses), params


BM25_K1 = 1.2
BM25_B = 0.75


def search(conn, query: str, jar_ids: list[str] | None = None, where: dict | None = None,
           limit: int = 100) -> list[dict]:
    """Chunks ranked by Okapi BM25 over the query's lexemes: [{chunk_id, document_id, score}]."""
    flt, fparams = _filter_sql(where)
    scope = "(%s::uuid[] IS NULL OR c.honey_jar_id = ANY(%s::uuid[])) AND " + flt
    sparams = [jar_ids, jar_ids, *fparams]
    lexemes = [r["lexeme"] for r in conn.execute(
        "SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", (query,))]
    if not lexemes:
        return []
    quoted = [_tsq(lx) for lx in lexemes]
    # Corpus statistics of the searched scope: chunks, mean length (distinct lexemes), and each
    # lexeme's document frequency (a GIN lookup each).
    st = conn.execute(
        f"""SELECT count(*) AS n, COALESCE(avg(length(c.tsv)), 1) AS avgdl,
                   ARRAY(SELECT (SELECT count(*) FROM document_chunks c WHERE {scope} AND c.tsv @@ l::tsquery)
                           FROM unnest(%s::text[]) WITH ORDINALITY AS u(l, o) ORDER BY o) AS df
              FROM document_chunks c WHERE {scope}""",
        [*sparams, quoted, *sparams]).fetchone()
    n = st["n"]
    terms = [(lx, q, math.log(1 + (n - df + 0.5) / (df + 0.5)))
             for lx, q, df in zip(lexemes, quoted, st["df"], strict=True) if df > 0]
    if not terms:
        return []
    any_q = " | ".join(q for _, q, _ in terms)
    rows = conn.execute(
        f"""WITH q AS (SELECT * FROM unnest(%s::text[], %s::float8[]) AS q(lexeme, idf))
            SELECT c.chunk_id, c.document_id::text AS document_id,
                   sum(q.idf * x.tf * ({BM25_K1} + 1)
                       / (x.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * length(c.tsv) / %s::float8))) AS score
              FROM document_chunks c
              CROSS JOIN LATERAL (SELECT u.lexeme, cardinality(u.positions) AS tf FROM unnest(c.tsv) u) x
              JOIN q ON q.lexeme = x.lexeme
             WHERE {scope} AND c.tsv @@ %s::tsquery
             GROUP BY c.chunk_id, c.document_id
             ORDER BY score DESC, c.chunk_id LIMIT %s""",
        [[lx for lx, _, _ in terms], [w for _, _, w in terms], float(st["avgdl"]), *sparams, any_q, limit]).fetchall()
    return [dict(r) for r in rows]


def texts(conn, chunk_ids: list[str]) -> dict[str, dict]:
    """chunk id -> {text, title, metadata} for these chunks."""
    if not chunk_ids:
        return {}
    return {r["chunk_id"]: dict(r) for r in conn.execute(
        "SELECT chunk_id, document_id::text AS document_id, honey_jar_id::text AS honey_jar_id, chunk_index, "
        "title, text, metadata FROM document_chunks WHERE chunk_id = ANY(%s)", (chunk_ids,))}

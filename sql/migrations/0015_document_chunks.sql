-- depends: 0014_lifecycle
-- The text of every chunk in Chroma, beside it in PostgreSQL for full-text search: retrieval is
-- hybrid (lexical ranking fused with the vector ranking). Rows follow their document (cascade)
-- and are written and pruned by ingestion in the same steps as the vectors.
CREATE TABLE document_chunks (
    chunk_id      TEXT PRIMARY KEY,
    document_id   UUID NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    honey_jar_id  UUID NOT NULL,
    chunk_index   INTEGER NOT NULL,
    title         TEXT,
    text          TEXT NOT NULL,
    metadata      JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- the title weighs more than the body (setweight A); 'english' stems and drops stop words
    tsv           TSVECTOR GENERATED ALWAYS AS (
                      setweight(to_tsvector('english', COALESCE(title, '')), 'A')
                      || setweight(to_tsvector('english', text), 'D')) STORED,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_document_chunks_tsv ON document_chunks USING GIN (tsv);
CREATE INDEX idx_document_chunks_doc ON document_chunks (document_id);
CREATE INDEX idx_document_chunks_jar ON document_chunks (honey_jar_id);

-- depends: 0001_core_tables
-- Every deleted document is noted here (by a trigger, however it was deleted: the API, a jar's
-- cascade, plain SQL) so the ingestion DAG can delete its vectors precisely instead of scanning
-- the vector store. Rows are removed once their vectors are gone.
CREATE TABLE document_deletions (
    document_id  UUID PRIMARY KEY,
    honey_jar_id UUID,
    deleted_at   TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE FUNCTION sting_note_document_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO document_deletions (document_id, honey_jar_id)
    SELECT id, honey_jar_id FROM old_rows
    ON CONFLICT (document_id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER trg_documents_deleted
    AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sting_note_document_deletion();

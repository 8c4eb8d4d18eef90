-- Core entities of the seed design (users, honey jars, documents, threat intel).
-- Timestamps are TIMESTAMPTZ (the seed says TIMESTAMP): pipelines run across time zones and
-- Airflow's data intervals are UTC instants.

CREATE TABLE users (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email        VARCHAR(255) UNIQUE NOT NULL,
    display_name VARCHAR(255),
    role         VARCHAR(50) NOT NULL DEFAULT 'viewer',
    created_at   TIMESTAMPTZ DEFAULT NOW(),
    updated_at   TIMESTAMPTZ DEFAULT NOW(),
    last_login   TIMESTAMPTZ,
    is_active    BOOLEAN DEFAULT TRUE
);

CREATE TABLE honey_jars (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name           VARCHAR(255) NOT NULL,
    type           VARCHAR(50) NOT NULL DEFAULT 'private',
    description    TEXT,
    config         JSONB NOT NULL,
    status         VARCHAR(50) NOT NULL DEFAULT 'active',
    owner_id       UUID REFERENCES users(id),
    created_at     TIMESTAMPTZ DEFAULT NOW(),
    updated_at     TIMESTAMPTZ DEFAULT NOW(),
    last_accessed  TIMESTAMPTZ,
    document_count INTEGER NOT NULL DEFAULT 0 CHECK (document_count >= 0),
    CONSTRAINT honey_jar_types CHECK (type IN ('public', 'private', 'premium', 'marketplace'))
);
-- Jars created by pipelines carry a stable key in config, so a rerun finds its jar instead of
-- creating another one.
CREATE UNIQUE INDEX uq_honey_jars_jar_key ON honey_jars ((config->>'jar_key'))
    WHERE config ? 'jar_key';
CREATE INDEX idx_honey_jar_config ON honey_jars USING GIN (config);

CREATE TABLE documents (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    honey_jar_id      UUID REFERENCES honey_jars(id) ON DELETE CASCADE,
    title             VARCHAR(500) NOT NULL,
    file_type         VARCHAR(50) NOT NULL,
    file_size         BIGINT,
    content_hash      VARCHAR(64),
    upload_path       TEXT,
    metadata          JSONB,
    processing_status VARCHAR(50) DEFAULT 'pending',
    chunk_count       INTEGER DEFAULT 0,
    tags              TEXT[],
    created_at        TIMESTAMPTZ DEFAULT NOW(),
    processed_at      TIMESTAMPTZ,
    CONSTRAINT processing_status_values
        CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed'))
);
CREATE INDEX idx_docs_honey_jar_time ON documents (honey_jar_id, created_at DESC);
CREATE INDEX idx_docs_file_type ON documents (file_type);
CREATE INDEX idx_docs_processing_status ON documents (processing_status)
    WHERE processing_status = 'pending';
CREATE INDEX idx_docs_processed ON documents (processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX idx_docs_metadata ON documents USING GIN (metadata);
CREATE INDEX idx_docs_title_search ON documents USING GIN (to_tsvector('english', title));
-- One document per stored object in a jar: loads upsert on this key.
CREATE UNIQUE INDEX uq_docs_jar_upload_path ON documents (honey_jar_id, upload_path);

-- honey_jars.document_count is maintained by exactly one mechanism: these row triggers.
-- Deltas (not recounts) so concurrent writers serialise on the jar row and never drift.
CREATE FUNCTION sting_documents_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.honey_jar_id IS NOT NULL THEN
        IF TG_OP = 'INSERT' OR NEW.honey_jar_id IS DISTINCT FROM OLD.honey_jar_id THEN
            UPDATE honey_jars SET document_count = document_count + 1, updated_at = NOW()
             WHERE id = NEW.honey_jar_id;
        END IF;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.honey_jar_id IS NOT NULL THEN
        IF TG_OP = 'DELETE' OR NEW.honey_jar_id IS DISTINCT FROM OLD.honey_jar_id THEN
            UPDATE honey_jars SET document_count = document_count - 1, updated_at = NOW()
             WHERE id = OLD.honey_jar_id;
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_documents_count
    AFTER INSERT OR DELETE OR UPDATE OF honey_jar_id ON documents
    FOR EACH ROW EXECUTE FUNCTION sting_documents_count();

CREATE TABLE threat_intel (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    ioc_type    VARCHAR(50) NOT NULL,
    ioc_value   TEXT NOT NULL,
    threat_type VARCHAR(100),
    confidence  FLOAT CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    source      VARCHAR(255),
    first_seen  TIMESTAMPTZ DEFAULT NOW(),
    last_seen   TIMESTAMPTZ DEFAULT NOW(),
    metadata    JSONB,
    UNIQUE (ioc_type, ioc_value)
);
CREATE INDEX idx_threat_intel_last_seen ON threat_intel (last_seen DESC);

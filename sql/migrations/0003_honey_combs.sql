-- depends: 0001_core_tables
CREATE TABLE honey_combs (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name             VARCHAR(255) NOT NULL,
    description      TEXT,
    type             VARCHAR(50) NOT NULL,
    subtype          VARCHAR(50) NOT NULL,
    configuration    JSONB NOT NULL,
    scrubbing_config JSONB,
    is_template      BOOLEAN DEFAULT FALSE,
    is_public        BOOLEAN DEFAULT FALSE,
    owner_id         UUID REFERENCES users(id),
    created_at       TIMESTAMPTZ DEFAULT NOW(),
    updated_at       TIMESTAMPTZ DEFAULT NOW(),
    usage_count      INTEGER DEFAULT 0,
    CONSTRAINT comb_types CHECK (type IN ('database', 'api', 'file_system', 'stream'))
);
-- A deployed comb is addressed by name (its DAG id derives from it); templates may repeat names.
CREATE UNIQUE INDEX uq_honey_combs_name ON honey_combs (name) WHERE NOT is_template;

CREATE TABLE honey_comb_executions (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    comb_id            UUID REFERENCES honey_combs(id),
    execution_type     VARCHAR(50) NOT NULL,
    target_honey_jar_id UUID REFERENCES honey_jars(id) ON DELETE SET NULL,
    started_at         TIMESTAMPTZ DEFAULT NOW(),
    completed_at       TIMESTAMPTZ,
    status             VARCHAR(50) DEFAULT 'running',
    records_processed  BIGINT DEFAULT 0,
    records_scrubbed   BIGINT DEFAULT 0,
    error_message      TEXT,
    metadata           JSONB,
    -- One row per execution: the Airflow DAG run it is (a cleared and rerun DAG run is the same
    -- execution, its attempts are counted in metadata).
    run_key            TEXT NOT NULL,
    CONSTRAINT execution_types CHECK (execution_type IN ('continuous_flow', 'snapshot_generation')),
    CONSTRAINT execution_status CHECK (status IN ('running', 'completed', 'failed')),
    CONSTRAINT uq_comb_execution_run UNIQUE (comb_id, run_key)
);
CREATE INDEX idx_comb_executions_comb_time ON honey_comb_executions (comb_id, started_at DESC);
CREATE INDEX idx_comb_executions_status ON honey_comb_executions (status) WHERE status <> 'completed';

CREATE TABLE scrubbing_profiles (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name                VARCHAR(255) NOT NULL UNIQUE,
    description         TEXT,
    compliance_standard VARCHAR(50),
    rules               JSONB NOT NULL,
    is_system_default   BOOLEAN DEFAULT FALSE,
    created_at          TIMESTAMPTZ DEFAULT NOW()
);

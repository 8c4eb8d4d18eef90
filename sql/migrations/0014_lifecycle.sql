-- depends: 0013_security_analytics
-- Data lifecycle: legal holds, the retention audit, archives (events partitions, jar vectors), user
-- deactivation / soft deletion, the backup catalog and the restore drills.

-- A jar, a user or a time range of events on hold is never deleted by a sweep (archiving is
-- allowed: it copies). Released holds stay for the record.
CREATE TABLE legal_holds (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    scope        VARCHAR(20) NOT NULL,
    honeyjar_id  UUID,
    user_id      UUID,
    range_start  TIMESTAMPTZ,
    range_end    TIMESTAMPTZ,
    reason       TEXT NOT NULL,
    created_by   TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    released_at  TIMESTAMPTZ,
    CONSTRAINT legal_hold_scope CHECK (
        (scope = 'jar' AND honeyjar_id IS NOT NULL) OR (scope = 'user' AND user_id IS NOT NULL)
        OR (scope = 'event_range' AND range_start IS NOT NULL AND range_end IS NOT NULL AND range_start < range_end))
);
CREATE INDEX idx_legal_holds_active ON legal_holds (scope) WHERE released_at IS NULL;

-- One row per sweep run, policy, tier and action: what it did (or, dry run, would do).
CREATE TABLE retention_runs (
    id         BIGSERIAL PRIMARY KEY,
    run_id     TEXT NOT NULL,
    policy     TEXT NOT NULL,
    tier       TEXT NOT NULL,
    action     TEXT NOT NULL,
    cutoff     TIMESTAMPTZ,
    dry_run    BOOLEAN NOT NULL,
    rows       BIGINT NOT NULL DEFAULT 0,
    objects    BIGINT NOT NULL DEFAULT 0,
    bytes      BIGINT NOT NULL DEFAULT 0,
    held       BIGINT NOT NULL DEFAULT 0,
    detail     JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_retention_runs_run ON retention_runs (run_id);

-- A month of events archived to S3 (Parquet), verified by reading it back, then dropped.
CREATE TABLE event_archives (
    partition_name TEXT PRIMARY KEY,
    range_start    TIMESTAMPTZ NOT NULL,
    range_end      TIMESTAMPTZ NOT NULL,
    bucket         TEXT NOT NULL,
    key            TEXT NOT NULL,
    rows           BIGINT NOT NULL,
    bytes          BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    row_checksum   TEXT NOT NULL,
    archived_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    verified_at    TIMESTAMPTZ,
    dropped_at     TIMESTAMPTZ,
    held_rows      BIGINT NOT NULL DEFAULT 0,
    deleted_at     TIMESTAMPTZ
);

-- A jar's vectors archived out of Chroma (restorable on demand until the archive expires).
CREATE TABLE embedding_archives (
    id           BIGSERIAL PRIMARY KEY,
    honeyjar_id  UUID NOT NULL,
    collection   TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    key          TEXT NOT NULL,
    vectors      BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    embedding_checksum TEXT NOT NULL,
    archived_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    restored_at  TIMESTAMPTZ,
    deleted_at   TIMESTAMPTZ
);
CREATE INDEX idx_embedding_archives_jar ON embedding_archives (honeyjar_id, archived_at DESC);
ALTER TABLE honey_jars ADD COLUMN vectors_archived_at TIMESTAMPTZ;

ALTER TABLE users
    ADD COLUMN deactivated_at TIMESTAMPTZ,
    ADD COLUMN deleted_at     TIMESTAMPTZ;

-- What was backed up, when, where, size, checksum and the tool's output.
CREATE TABLE backup_catalog (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,          -- postgres, chroma, redis, s3
    backup_type  TEXT NOT NULL,          -- full, incr, diff, snapshot, rdb, replication
    label        TEXT NOT NULL,
    run_id       TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    data_until   TIMESTAMPTZ,            -- the newest data the backup holds
    location     TEXT NOT NULL,
    size_bytes   BIGINT,
    checksum     TEXT,
    status       TEXT NOT NULL DEFAULT 'ok',   -- ok, expired
    detail       JSONB,
    tool_output  TEXT,
    CONSTRAINT backup_catalog_label UNIQUE (kind, label)
);
CREATE INDEX idx_backup_catalog_kind_time ON backup_catalog (kind, finished_at DESC);

CREATE TABLE restore_drills (
    id             BIGSERIAL PRIMARY KEY,
    run_id         TEXT,
    kind           TEXT NOT NULL,
    tier           TEXT NOT NULL,
    backup_id      BIGINT REFERENCES backup_catalog(id) ON DELETE SET NULL,
    target_time    TIMESTAMPTZ,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL,
    rto_seconds    DOUBLE PRECISION,
    rpo_seconds    DOUBLE PRECISION,
    rto_objective_seconds DOUBLE PRECISION NOT NULL,
    rpo_objective_seconds DOUBLE PRECISION NOT NULL,
    status         TEXT NOT NULL,        -- passed, failed
    checks         JSONB,
    error          TEXT
);

-- Rows the drills write before and after a target time (a restore must hold exactly the first).
CREATE TABLE restore_markers (
    id         BIGSERIAL PRIMARY KEY,
    drill      TEXT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- The jars whose events an archive holds (a hold on a jar keeps its archives).
ALTER TABLE event_archives ADD COLUMN jar_ids UUID[] NOT NULL DEFAULT '{}';

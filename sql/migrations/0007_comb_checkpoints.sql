-- depends: 0006_privacy_tokens
-- Checkpointed combs (api, file_system, stream) resume where the last completed run stopped.
-- The checkpoint moves in the same transaction that completes the execution, so a run that
-- fails or is killed leaves it where it was: its rerun reads the same data again.

CREATE TABLE honey_comb_checkpoints (
    comb_id       UUID PRIMARY KEY REFERENCES honey_combs(id) ON DELETE CASCADE,
    state         JSONB NOT NULL,
    execution_id  UUID REFERENCES honey_comb_executions(id) ON DELETE SET NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- file_system combs take a file once: by path, size and checksum. A changed file (new size or
-- checksum) is taken again; a malformed one is recorded as rejected with its error.
CREATE TABLE honey_comb_files (
    comb_id       UUID NOT NULL REFERENCES honey_combs(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    size          BIGINT NOT NULL,
    checksum      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('taken', 'rejected')),
    records       INTEGER,
    error         TEXT,
    execution_id  UUID REFERENCES honey_comb_executions(id) ON DELETE SET NULL,
    taken_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (comb_id, path, size, checksum)
);
CREATE INDEX idx_comb_files_path ON honey_comb_files (comb_id, path);

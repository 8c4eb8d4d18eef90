-- depends: 0009_comb_files_mtime
-- Every attempt of every step of a comb run (Airflow retries, clears, killed processes): the
-- execution row keeps the outcome, this table keeps the history.
CREATE TABLE honey_comb_execution_attempts (
    id           BIGSERIAL PRIMARY KEY,
    execution_id UUID NOT NULL REFERENCES honey_comb_executions(id) ON DELETE CASCADE,
    step         TEXT NOT NULL,
    try_number   INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'running',
    hostname     TEXT,
    pid          INTEGER,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    ended_at     TIMESTAMPTZ,
    error        TEXT,
    CONSTRAINT attempt_states CHECK (state IN ('running', 'success', 'failed', 'killed')),
    CONSTRAINT uq_comb_attempt UNIQUE (execution_id, step, try_number)
);
CREATE INDEX idx_comb_attempts_execution ON honey_comb_execution_attempts (execution_id, started_at);

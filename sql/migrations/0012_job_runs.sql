-- depends: 0011_comb_leases
-- Scheduled jobs (hourly aggregation, daily intelligence, event ingestion, and the lifecycle and
-- training jobs after them) record every run like comb executions: its interval, status, the
-- counts each step reported, and the error that failed it. One row per Airflow run (run_key).

CREATE TABLE job_runs (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    job            VARCHAR(100) NOT NULL,
    run_key        TEXT NOT NULL,
    dag_id         TEXT,
    interval_start TIMESTAMPTZ NOT NULL,
    interval_end   TIMESTAMPTZ NOT NULL,
    status         VARCHAR(20) NOT NULL DEFAULT 'running',
    params         JSONB NOT NULL DEFAULT '{}',
    counts         JSONB NOT NULL DEFAULT '{}',
    failed_step    TEXT,
    error          TEXT,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    ended_at       TIMESTAMPTZ,
    CONSTRAINT job_runs_status CHECK (status IN ('running', 'success', 'failed')),
    CONSTRAINT job_runs_interval CHECK (interval_start < interval_end),
    UNIQUE (job, run_key)
);
CREATE INDEX idx_job_runs_job_interval ON job_runs (job, interval_start DESC);

-- Every attempt of every step (a retry is a new row): started, ended, its counts or its error.
CREATE TABLE job_run_steps (
    run_id      UUID NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    step        VARCHAR(100) NOT NULL,
    try_number  INTEGER NOT NULL,
    status      VARCHAR(20) NOT NULL DEFAULT 'running',
    counts      JSONB,
    error       TEXT,
    host        TEXT,
    pid         INTEGER,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    ended_at    TIMESTAMPTZ,
    PRIMARY KEY (run_id, step, try_number),
    CONSTRAINT job_run_steps_status CHECK (status IN ('running', 'success', 'failed'))
);

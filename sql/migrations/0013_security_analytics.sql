-- depends: 0012_job_runs
-- Security analytics: enriched honeypot events, the ingestion ledger (exactly once), de-duplication,
-- alerts that aggregate instead of flooding, threat intelligence with sources, scores and
-- sightings, hourly rollups, and the daily reports.

-- Events: the ECS document stays in `payload`; the columns below are what rollups, scoring and
-- retention filter on. `occurrences` counts identical events folded into this one.
ALTER TABLE events
    ADD COLUMN event_kind       VARCHAR(50),
    ADD COLUMN country          CHAR(2),
    ADD COLUMN asn_org          TEXT,
    ADD COLUMN destination_port INTEGER,
    ADD COLUMN username         TEXT,
    ADD COLUMN fingerprint      TEXT,
    ADD COLUMN occurrences      INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN anomaly_score    REAL,
    ADD COLUMN scored_by        TEXT,
    ADD COLUMN ingested_at      TIMESTAMPTZ NOT NULL DEFAULT NOW();
CREATE INDEX idx_events_time ON events (created_at);
-- repetition by a source (scoring) reads a source's recent events: by source and time, with the
-- count folded in, so it never visits the table
DROP INDEX idx_events_source_ip;
CREATE INDEX idx_events_source_time ON events (source_ip, created_at) INCLUDE (occurrences);

-- Creating a month's partition moves rows that landed in the default partition into it first
-- (otherwise CREATE ... PARTITION OF fails on them), so a month created late never fails.
CREATE OR REPLACE FUNCTION sting_ensure_event_partitions(from_month DATE, to_month DATE)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    m DATE := date_trunc('month', from_month)::date;
    created INTEGER := 0;
    part TEXT;
BEGIN
    WHILE m <= date_trunc('month', to_month)::date LOOP
        part := format('events_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('sting_event_partitions'));
            IF to_regclass(part) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
                EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE created_at >= %L AND created_at < %L RETURNING *)'
                               ' INSERT INTO %I SELECT * FROM moved', m, (m + INTERVAL '1 month')::date, part);
                EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               part, m, (m + INTERVAL '1 month')::date);
                created := created + 1;
            END IF;
        END IF;
        m := (m + INTERVAL '1 month')::date;
    END LOOP;
    RETURN created;
END $$;

-- The ingestion ledger. A stored event is its own receipt: its id is the producer's event id (or a
-- hash of the raw message), so a redelivered message finds its row in `events` (by id and time).
-- Messages that did not become an event get a row here: folded duplicates (naming the event they
-- were folded into) and rejected messages (with the reason and the start of the raw text).
-- Written in the transaction that stores the batch: a redelivery changes nothing.
CREATE TABLE event_receipts (
    receipt_id       TEXT PRIMARY KEY,
    source           VARCHAR(30) NOT NULL,
    source_ref       TEXT,
    status           VARCHAR(20) NOT NULL,
    event_id         UUID,
    event_created_at TIMESTAMPTZ,
    reason           TEXT,
    raw_excerpt      TEXT,
    received_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT event_receipts_status CHECK (status IN ('duplicate', 'rejected'))
);
CREATE INDEX idx_event_receipts_status_time ON event_receipts (status, received_at);

-- De-duplication: identical events (same jar, kind, source, target and content: the fingerprint)
-- less than the window apart are stored once; a stored event represents its fingerprint at its time.
CREATE INDEX idx_events_fingerprint ON events (fingerprint, created_at);

-- Stream combs' output objects already read by event ingestion (their rows are decided by the
-- ledger above; this only saves reading an object twice).
CREATE TABLE event_source_objects (
    object_key  TEXT PRIMARY KEY,
    etag        TEXT,
    rows_read   INTEGER NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Hours whose rollup must be recomputed because events of that hour arrived (late or not).
CREATE TABLE event_dirty_hours (
    hour      TIMESTAMPTZ PRIMARY KEY,
    marked_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Hourly rollups: hour x jar x kind x country x ASN x destination port.
CREATE TABLE event_stats_hourly (
    hour             TIMESTAMPTZ NOT NULL,
    honeyjar_id      UUID NOT NULL,
    event_kind       VARCHAR(50) NOT NULL,
    country          CHAR(2),
    asn_org          TEXT,
    destination_port INTEGER,
    event_count      BIGINT NOT NULL,
    occurrences      BIGINT NOT NULL,
    unique_sources   BIGINT NOT NULL,
    max_threat_level SMALLINT NOT NULL,
    computed_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT uq_event_stats_hourly UNIQUE NULLS NOT DISTINCT
        (hour, honeyjar_id, event_kind, country, asn_org, destination_port)
);
CREATE INDEX idx_event_stats_hourly_hour ON event_stats_hourly (hour);

-- Alerts: one row per (rule, source, window); repeats add their events to it.
ALTER TABLE alerts
    ADD COLUMN honeyjar_id   UUID,
    ADD COLUMN source_ip     INET,
    ADD COLUMN threat_level  SMALLINT,
    ADD COLUMN dedup_key     TEXT,
    ADD COLUMN occurrences   INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN first_seen_at TIMESTAMPTZ,
    ADD COLUMN last_seen_at  TIMESTAMPTZ,
    ADD COLUMN metadata      JSONB,
    ADD COLUMN queued_at     TIMESTAMPTZ;  -- pushed to queue:alerts:high_priority (after the commit)
CREATE UNIQUE INDEX uq_alerts_dedup_key ON alerts (dedup_key);
CREATE TABLE alert_events (
    alert_id         UUID NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    event_id         UUID NOT NULL,
    event_created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (alert_id, event_id)
);

-- Threat intelligence: one row per (ioc_type, ioc_value) in canonical form; `sources` holds each
-- contributing feed's confidence and dates, `confidence` their combination, `score` the decayed
-- and sighting-raised value maintained by the hourly job.
ALTER TABLE threat_intel
    ADD COLUMN sources        JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN status         VARCHAR(20) NOT NULL DEFAULT 'active',
    ADD COLUMN valid_until    TIMESTAMPTZ,
    ADD COLUMN score          REAL,
    ADD COLUMN score_at       TIMESTAMPTZ,
    ADD COLUMN sightings      INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN last_sighted_at TIMESTAMPTZ,
    ADD CONSTRAINT threat_intel_status CHECK (status IN ('active', 'expired', 'revoked'));
CREATE INDEX idx_threat_intel_value ON threat_intel (ioc_value);

CREATE TABLE ioc_sightings (
    ioc_id           UUID NOT NULL REFERENCES threat_intel(id) ON DELETE CASCADE,
    event_id         UUID NOT NULL,
    event_created_at TIMESTAMPTZ NOT NULL,
    sighted_at       TIMESTAMPTZ NOT NULL,
    honeyjar_id      UUID,
    PRIMARY KEY (ioc_id, event_id)
);
CREATE INDEX idx_ioc_sightings_time ON ioc_sightings (sighted_at);

-- Feed imports: what each feed delivered on a day, and where the raw feed is kept.
CREATE TABLE threat_feed_imports (
    source      VARCHAR(100) NOT NULL,
    feed_date   DATE NOT NULL,
    object_key  TEXT NOT NULL,
    sha256      CHAR(64) NOT NULL,
    indicators  INTEGER NOT NULL,
    rejected    INTEGER NOT NULL DEFAULT 0,
    imported_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (source, feed_date)
);

CREATE TABLE daily_reports (
    report_date  DATE PRIMARY KEY,
    object_key   TEXT NOT NULL,
    sha256       CHAR(64) NOT NULL,
    pages        INTEGER NOT NULL,
    summary      JSONB NOT NULL,
    generated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

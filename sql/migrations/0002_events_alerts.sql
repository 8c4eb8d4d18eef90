-- depends: 0001_core_tables
-- Security events from honey jars: range-partitioned by month on created_at.
-- The primary key must include the partition key, so alerts reference (id, created_at).

CREATE TABLE events (
    id           UUID NOT NULL DEFAULT gen_random_uuid(),
    honeyjar_id  UUID NOT NULL REFERENCES honey_jars(id) ON DELETE CASCADE,
    event_type   VARCHAR(100) NOT NULL,
    source_ip    INET,
    threat_level SMALLINT NOT NULL DEFAULT 0 CHECK (threat_level BETWEEN 0 AND 10),
    payload      JSONB,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX idx_events_jar_time ON events (honeyjar_id, created_at DESC);
CREATE INDEX idx_events_source_ip ON events (source_ip);

-- Rows outside every monthly partition land here instead of failing the insert.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Creates the monthly partitions covering [from_month, to_month]; safe to call again.
CREATE FUNCTION sting_ensure_event_partitions(from_month DATE, to_month DATE)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    m DATE := date_trunc('month', from_month)::date;
    created INTEGER := 0;
    part TEXT;
BEGIN
    WHILE m <= date_trunc('month', to_month)::date LOOP
        part := format('events_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                           part, m, (m + INTERVAL '1 month')::date);
            created := created + 1;
        END IF;
        m := (m + INTERVAL '1 month')::date;
    END LOOP;
    RETURN created;
END $$;

DO $$ BEGIN
    PERFORM sting_ensure_event_partitions((date_trunc('month', NOW()) - INTERVAL '12 months')::date,
                                          (date_trunc('month', NOW()) + INTERVAL '3 months')::date);
END $$;

CREATE TABLE alerts (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id         UUID,
    event_created_at TIMESTAMPTZ,
    alert_type       VARCHAR(100) NOT NULL,
    severity         VARCHAR(20) NOT NULL,
    title            VARCHAR(500) NOT NULL,
    description      TEXT,
    status           VARCHAR(50) DEFAULT 'new',
    assigned_to      UUID REFERENCES users(id),
    created_at       TIMESTAMPTZ DEFAULT NOW(),
    resolved_at      TIMESTAMPTZ,
    CONSTRAINT severity_values CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT alerts_event_fk FOREIGN KEY (event_id, event_created_at)
        REFERENCES events (id, created_at) ON DELETE SET NULL (event_id, event_created_at)
);
CREATE INDEX idx_alerts_status_severity ON alerts (status, severity);
CREATE INDEX idx_alerts_event ON alerts (event_id);

-- Dashboards: last 7 days by hour and jar. The unique index makes REFRESH ... CONCURRENTLY work.
CREATE MATERIALIZED VIEW hourly_stats AS
SELECT date_trunc('hour', created_at)  AS hour,
       honeyjar_id,
       COUNT(*)                        AS event_count,
       COUNT(DISTINCT source_ip)       AS unique_sources,
       AVG(threat_level)::float8       AS avg_threat_level
  FROM events
 WHERE created_at > NOW() - INTERVAL '7 days'
 GROUP BY 1, 2;
CREATE UNIQUE INDEX uq_hourly_stats_hour_jar ON hourly_stats (hour, honeyjar_id);

"""Migrations: every seed table with constraints, rerun-safe, partitions and the stats view."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from include.db import migrate
from include.settings import get_settings


@pytest.fixture
def scratch_db(stack):
    s = get_settings()
    name = f"sting_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(s.dsn("postgres"), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield s.dsn(name)
    with psycopg.connect(s.dsn("postgres"), autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_migrations_apply_once_and_rerun_safely(scratch_db):
    first = migrate(scratch_db)
    assert first == ["0001_core_tables", "0002_events_alerts", "0003_honey_combs", "0004_file_assets",
                     "0005_document_deletions", "0006_privacy_tokens",
                     "0007_comb_checkpoints", "0008_comb_templates",
                     "0009_comb_files_mtime", "0010_comb_attempts", "0011_comb_leases", "0012_job_runs",
                     "0013_security_analytics", "0014_lifecycle", "0015_document_chunks", "0016_ml_models",
                     "0017_data_classification", "0018_comb_output_windows"]
    assert migrate(scratch_db) == []
    with psycopg.connect(scratch_db) as c:
        tables = {r[0] for r in c.execute(
            "SELECT relname FROM pg_class WHERE relkind IN ('r','p','m') AND relnamespace = 'public'::regnamespace")}
        assert {"users", "honey_jars", "documents", "threat_intel", "alerts", "honey_combs",
                "honey_comb_executions", "scrubbing_profiles", "file_assets", "file_permissions",
                "events", "hourly_stats", "job_runs", "job_run_steps", "event_receipts", "event_dirty_hours",
                "event_stats_hourly", "event_source_objects", "alert_events", "ioc_sightings", "threat_feed_imports",
                "daily_reports", "legal_holds", "retention_runs", "event_archives", "embedding_archives",
                "backup_catalog", "restore_drills", "restore_markers", "document_chunks", "ml_labels", "ml_models",
                "ml_model_events"} <= tables
        assert c.execute("SELECT gen_random_uuid()").fetchone()[0]
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute("INSERT INTO honey_combs (name, type, subtype, configuration) VALUES ('x', 'ftp', 'y', '{}')")


def test_events_partitions_and_hourly_stats_refresh_concurrently(scratch_db):
    migrate(scratch_db)
    with psycopg.connect(scratch_db, autocommit=True) as c:
        jar = c.execute("INSERT INTO honey_jars (name, config) VALUES ('ssh honeypot', '{}') RETURNING id").fetchone()[0]
        c.execute("""INSERT INTO events (honeyjar_id, event_type, source_ip, threat_level, created_at)
                     SELECT %s, 'ssh_login', ('10.0.0.' || (g %% 7))::inet, g %% 10, NOW() - (g || ' minutes')::interval
                       FROM generate_series(1, 500) g""", (jar,))
        parts = c.execute("""SELECT count(*) FROM events_default""").fetchone()[0]
        assert parts == 0  # every row found its monthly partition
        c.execute("REFRESH MATERIALIZED VIEW hourly_stats")
        c.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY hourly_stats")
        total = c.execute("SELECT sum(event_count) FROM hourly_stats").fetchone()[0]
        assert total == 500
        assert c.execute("SELECT sting_ensure_event_partitions('2030-01-01', '2030-03-01')").fetchone()[0] == 3
        assert c.execute("SELECT sting_ensure_event_partitions('2030-01-01', '2030-03-01')").fetchone()[0] == 0
        # a row that landed in DEFAULT (no partition for its month yet) moves into the month created later
        c.execute("INSERT INTO events (honeyjar_id, event_type, created_at) VALUES (%s, 'x', '2031-06-05')", (jar,))
        assert c.execute("SELECT count(*) FROM events_default").fetchone()[0] == 1
        assert c.execute("SELECT sting_ensure_event_partitions('2031-06-01', '2031-06-01')").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM events_default").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM events_2031_06").fetchone()[0] == 1

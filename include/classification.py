"""The seed's data classification (public < internal < confidential < restricted), carried by the
data wherever it lands: every table (its comment), every bucket (its tags) and every object the
pipelines write (its metadata `data-classification`), and every lineage event's datasets (a
`tags` facet). A comb declares the class of what it delivers (default: confidential, the seed's
class of user data and raw events).
"""

from __future__ import annotations

LEVELS = ("public", "internal", "confidential", "restricted")
META_KEY = "data-classification"  # S3 object metadata (x-amz-meta-data-classification) and bucket tag

# The seed's lists: public (honeyjar types, documentation, api specs), internal (aggregated
# statistics, threat trends, system metrics), confidential (user data, raw events, threat
# intelligence), restricted (authentication tokens, encryption keys, api credentials).
TABLES: dict[str, str] = {
    "users": "confidential", "honey_jars": "internal", "documents": "confidential",
    "document_chunks": "confidential", "document_deletions": "internal", "file_assets": "confidential",
    "file_permissions": "internal", "events": "confidential", "event_receipts": "confidential",
    "event_dirty_hours": "internal", "event_stats_hourly": "internal", "event_source_objects": "internal",
    "hourly_stats": "internal", "alerts": "confidential", "alert_events": "confidential",
    "threat_intel": "confidential", "ioc_sightings": "confidential", "threat_feed_imports": "internal",
    "daily_reports": "internal", "honey_combs": "internal", "honey_comb_executions": "internal",
    "honey_comb_execution_attempts": "internal", "honey_comb_checkpoints": "internal",
    "honey_comb_files": "internal", "honey_comb_leases": "internal", "honey_comb_output_windows": "internal",
    "honey_comb_output_prefixes": "internal", "scrubbing_profiles": "internal",
    "privacy_tokens": "restricted", "privacy_token_audit": "restricted", "job_runs": "internal",
    "job_run_steps": "internal", "legal_holds": "confidential", "retention_runs": "internal",
    "event_archives": "internal", "embedding_archives": "internal", "backup_catalog": "internal",
    "restore_drills": "internal", "restore_markers": "internal", "ml_labels": "confidential",
    "ml_models": "internal", "ml_model_events": "internal",
}
BUCKETS: dict[str, str] = {
    "honeyjar-logs": "confidential", "event-payloads": "confidential", "threat-intel": "confidential",
    "ai-models": "internal", "user-files": "confidential", "sting-comb-outputs": "confidential",
    # backups hold every table, the token vault included
    "sting-backups": "restricted", "sting-archive": "confidential",
}


def check(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"data classification '{level}' is not one of {', '.join(LEVELS)}")
    return level


def highest(*levels: str) -> str:
    return max((check(x) for x in levels), key=LEVELS.index)


MATERIALIZED_VIEWS = {"hourly_stats"}


def table_comment_sql(table: str) -> str:
    kind = "MATERIALIZED VIEW" if table in MATERIALIZED_VIEWS else "TABLE"
    return f"COMMENT ON {kind} {table} IS 'data-classification: {check(TABLES[table])}';"

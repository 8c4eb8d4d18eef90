"""retention_sweep (`30 4 * * *`): the seed's retention policies, one step per policy.

Cut-offs count back from the run's interval end (the same logical date always means the same
cut-offs). `dry_run` reports per policy and tier what would be archived and deleted (rows,
objects, bytes, held) and changes nothing; the real sweep removes exactly that. Every step writes
its lines to `retention_runs`. Policies: include/lifecycle/retention.yaml (the seed's values), a
deployment's file (STING_RETENTION_CONFIG) and the run's `overrides`.
"""

from __future__ import annotations

from datetime import timedelta

from include.jobs.base import Job, JobContext, Param, Step
from include.lifecycle import retention as r


def _run(ctx: JobContext, policy: str, func, **kw) -> dict:
    if ctx.params["policies"] and policy not in ctx.params["policies"]:
        return {"skipped": f"policy {policy} not selected"}
    pol = r.load_policies(overrides=ctx.params["overrides"] or None)
    batch = int(ctx.params["batch_size"] or pol["sweep"]["batch_size"])
    lock_ms = int(ctx.params["lock_timeout_ms"] or pol["sweep"]["lock_timeout_ms"])
    dry = bool(ctx.params["dry_run"])
    actions = func(ctx.clients, pol, ctx.interval.end, dry, batch, lock_ms, **kw)
    r.record(ctx.clients, ctx.run_id, actions, dry)
    for a in actions:
        ctx.log.info("%s%s.%s %s: rows=%d objects=%d bytes=%d held=%d (cut-off %s)", "[dry run] " if dry else "",
                     a.policy, a.tier, a.action, a.rows, a.objects, a.bytes, a.held, a.cutoff)
    return {"dry_run": dry, **r.summary(actions)}


def sweep_events(ctx: JobContext) -> dict:
    """events: Redis hot keys trimmed past 7 days; months past 90 days archived to S3 Parquet,
    read back and verified, then detached and dropped; archives past 2 years deleted."""
    return _run(ctx, "events", r.sweep_events)


def sweep_user_data(ctx: JobContext) -> dict:
    """users: deactivated 90 days after last login; soft-deleted users purged after 30 days."""
    return _run(ctx, "user_data", r.sweep_user_data)


def sweep_ai_embeddings(ctx: JobContext) -> dict:
    """vectors of jars idle 30 days archived to S3 and removed from Chroma; archives kept 6 months."""
    return _run(ctx, "ai_embeddings", r.sweep_embeddings)


def sweep_buckets(ctx: JobContext) -> dict:
    """lifecycle rules set on the buckets and enforced (honeyjar-logs 90 d, event-payloads 180 d)."""
    return _run(ctx, "buckets", r.sweep_buckets)


def sweep_system(ctx: JobContext) -> dict:
    """comb executions, job runs, receipts, token audit, staging leftovers, Airflow's metadata."""
    from include.settings import get_settings

    s = get_settings()
    return _run(ctx, "system", r.sweep_system, staging_bucket=s.comb_output_bucket, staging_max_age=s.staging_max_age,
                airflow_clean=bool(ctx.params["airflow_metadata"]))


JOB = Job(
    name="retention_sweep",
    schedule="30 4 * * *",
    description="The seed's retention policies: events (hot/warm/cold/delete), user data, AI embeddings, bucket "
                "lifecycles, and what the system accumulates; dry run, legal holds, an audit row per action.",
    steps=(
        Step("sweep_events", sweep_events, "events: Redis trim, monthly archive -> verify -> drop, old archives",
             timeout=timedelta(hours=3)),
        Step("sweep_user_data", sweep_user_data, "deactivate inactive users, purge soft-deleted ones",
             trigger_rule="all_done"),
        Step("sweep_ai_embeddings", sweep_ai_embeddings, "archive idle jars' vectors, expire old archives",
             trigger_rule="all_done", timeout=timedelta(hours=2)),
        Step("sweep_buckets", sweep_buckets, "bucket lifecycle rules, set and enforced", trigger_rule="all_done"),
        Step("sweep_system", sweep_system, "executions, job runs, receipts, audit, staging, airflow db clean",
             trigger_rule="all_done"),
    ),
    params={
        "dry_run": Param(False, "boolean", "report what would be archived and deleted; change nothing"),
        "policies": Param([], "array", "only these policies; empty: all",
                          {"items": {"type": "string", "enum": list(r.POLICIES)}}),
        "overrides": Param({}, "object", "policy values for this run, e.g. {\"events\": {\"warm_days\": 60}}"),
        "batch_size": Param(0, "integer", "rows per transaction (0: the configured 5000)", {"minimum": 0}),
        "lock_timeout_ms": Param(0, "integer", "lock wait per batch before giving up (0: the configured 2000)",
                                 {"minimum": 0}),
        "airflow_metadata": Param(True, "boolean", "also run `airflow db clean` on Airflow's metadata database"),
    },
    default_span=timedelta(days=1),
    retries=1,
    tags=("lifecycle", "retention"),
)

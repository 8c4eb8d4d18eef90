"""backup_chroma (`0 3 * * *`): a logical snapshot of every Chroma collection (Parquet + manifest
with counts and embedding checksums) in s3://sting-backups/chroma/; 14 days retention.
Why logical: include/lifecycle/backup.py."""

from __future__ import annotations

from datetime import timedelta

from include.jobs.base import Job, JobContext, Param, Step


def snapshot(ctx: JobContext) -> dict:
    from include.documents import vectorstore
    from include.lifecycle import backup as b
    from include.settings import get_settings

    if ctx.params["dry_run"]:
        client = vectorstore.client()
        return {"dry_run": True, "collections": {c.name: client.get_collection(c.name).count()
                                                 for c in client.list_collections()}}
    return b.snapshot_chroma(ctx.clients, vectorstore.client(), get_settings().backup_bucket, ctx.run_id)


def expire(ctx: JobContext) -> dict:
    from datetime import UTC, datetime

    from include.lifecycle import backup as b
    from include.settings import get_settings

    n = b.expire_snapshots(ctx.clients, "chroma", get_settings().backup_bucket,
                           timedelta(days=int(ctx.params["retention_days"])), datetime.now(UTC), ctx.params["dry_run"])
    return {"dry_run": ctx.params["dry_run"], "expired": n}


JOB = Job(
    name="backup_chroma",
    paused_at_creation=False,  # on from day one
    schedule="0 3 * * *",
    description="Chroma: daily logical snapshot of every collection to S3, 14 days retention, in backup_catalog.",
    steps=(Step("snapshot", snapshot, "every collection's ids, embeddings, documents, metadata", timeout=timedelta(hours=2)),
           Step("expire", expire, "snapshots older than the retention deleted")),
    params={
        "retention_days": Param(14, "integer", "days a snapshot is kept", {"minimum": 1}),
        "dry_run": Param(False, "boolean", "report what the run would back up and expire; change nothing"),
    },
    default_span=timedelta(days=1),
    retries=1,
    tags=("lifecycle", "backup"),
)

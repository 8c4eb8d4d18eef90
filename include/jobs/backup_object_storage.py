"""backup_object_storage (`15 * * * *`): versioning on the versioned buckets and replication to
`<bucket>-replica` (standing in for the other region): the rule is set for S3/MinIO and enforced
by copying what the replica lacks (the local S3 endpoint never replicates)."""

from __future__ import annotations

from datetime import timedelta

from include.jobs.base import Job, JobContext, Param, Step


def replicate(ctx: JobContext) -> dict:
    from include.lifecycle import backup as b

    buckets = tuple(ctx.params["buckets"] or b.VERSIONED_BUCKETS)
    return b.replicate_buckets(ctx.clients, buckets, ctx.run_id, dry_run=ctx.params["dry_run"])


JOB = Job(
    name="backup_object_storage",
    paused_at_creation=False,  # on from day one
    schedule="15 * * * *",
    description="S3: versioning and cross-region replication (to <bucket>-replica) of the versioned buckets.",
    steps=(Step("replicate", replicate, "versioning on, replication rule set, missing objects copied"),),
    params={
        "buckets": Param([], "array", "only these buckets; empty: ai-models, threat-intel, user-files, sting-archive",
                         {"items": {"type": "string"}}),
        "dry_run": Param(False, "boolean", "report what the replicas lack; copy nothing"),
    },
    default_span=timedelta(hours=1),
    retries=1,
    tags=("lifecycle", "backup"),
)

"""backup_redis (`0 * * * *`): an RDB snapshot streamed from the running Redis (`redis-cli --rdb`),
checked with `redis-check-rdb`, in s3://sting-backups/redis/; 24 hours retention."""

from __future__ import annotations

from datetime import timedelta

from include.jobs.base import Job, JobContext, Param, Step


def snapshot(ctx: JobContext) -> dict:
    from include.lifecycle import backup as b
    from include.settings import get_settings

    if ctx.params["dry_run"]:
        return {"dry_run": True, "keys": int(ctx.clients.redis.dbsize())}
    kw = ctx.clients.redis.connection_pool.connection_kwargs
    return b.snapshot_redis(ctx.clients, kw.get("host", "127.0.0.1"), int(kw.get("port", 6379)),
                            get_settings().backup_bucket, ctx.run_id)


def expire(ctx: JobContext) -> dict:
    from datetime import UTC, datetime

    from include.lifecycle import backup as b
    from include.settings import get_settings

    return {"expired": b.expire_snapshots(ctx.clients, "redis", get_settings().backup_bucket,
                                          timedelta(hours=int(ctx.params["retention_hours"])), datetime.now(UTC),
                                          ctx.params["dry_run"]), "dry_run": ctx.params["dry_run"]}


JOB = Job(
    name="backup_redis",
    paused_at_creation=False,  # on from day one
    schedule="0 * * * *",
    description="Redis: hourly RDB snapshot checked with redis-check-rdb, 24 hours retention, in backup_catalog.",
    steps=(Step("snapshot", snapshot, "redis-cli --rdb, redis-check-rdb, upload"),
           Step("expire", expire, "snapshots older than the retention deleted")),
    params={
        "retention_hours": Param(24, "integer", "hours a snapshot is kept", {"minimum": 1}),
        "dry_run": Param(False, "boolean", "report what the run would back up and expire; change nothing"),
    },
    default_span=timedelta(hours=1),
    retries=1,
    tags=("lifecycle", "backup"),
)

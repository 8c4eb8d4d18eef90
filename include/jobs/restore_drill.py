"""restore_drill (`0 5 * * 0`, weekly; also on demand): every kind of backup restored into a
scratch server on a loopback port and verified (include/lifecycle/drills.py): PostgreSQL to a point
in time (markers before/after the target, table counts and checksums), Chroma (ids and embedding
checksums), Redis (key counts). Each drill records RTO and RPO in `restore_drills` and fails when
they miss the seed's objectives for its tier, or when a backup is damaged or missing.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

from include.jobs._backup_common import pgbackrest, scratch_dir
from include.jobs.base import Job, JobContext, Param, Step


def _finish(ctx: JobContext, d) -> dict:
    from include.lifecycle import drills

    out = drills.record(ctx.clients, d)
    ctx.log.info("drill %s (%s tier): %s, RTO %s s, RPO %s s", d.kind, d.tier, out["status"],
                 None if d.rto_seconds is None else round(d.rto_seconds, 1),
                 None if d.rpo_seconds is None else round(d.rpo_seconds, 1))
    if not d.passed:
        raise drills.DrillFailed(f"restore drill {d.kind} failed: {d.failure()}")
    return out


def _drill(ctx: JobContext, kind: str, take_backup, run_drill) -> dict:
    """One drill: skipped unless selected, a fresh backup first when asked, a private scratch
    directory removed afterwards."""
    if ctx.params["kinds"] and kind not in ctx.params["kinds"]:
        return {"skipped": True}
    if ctx.params["backup_first"]:
        take_backup()
    wd = scratch_dir()
    try:
        return _finish(ctx, run_drill(wd))
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def drill_postgres(ctx: JobContext) -> dict:
    """Point-in-time restore of the application database into a scratch cluster."""
    from include.lifecycle import backup as b
    from include.lifecycle import drills
    from include.settings import get_settings

    br = pgbackrest()
    return _drill(ctx, "postgres",
                  lambda: b.backup_postgres(ctx.clients, br, "incr", get_settings().backup_bucket, ctx.run_id),
                  lambda wd: drills.drill_postgres(ctx.clients, br, ctx.clients.dsn, wd, ctx.run_id))


def drill_redis(ctx: JobContext) -> dict:
    from include.lifecycle import backup as b
    from include.lifecycle import drills
    from include.settings import get_settings

    bucket = get_settings().backup_bucket

    def take_backup():
        kw = ctx.clients.redis.connection_pool.connection_kwargs
        b.snapshot_redis(ctx.clients, kw.get("host", "127.0.0.1"), int(kw.get("port", 6379)), bucket, ctx.run_id)

    return _drill(ctx, "redis", take_backup, lambda wd: drills.drill_redis(ctx.clients, bucket, wd, ctx.run_id))


def drill_chroma(ctx: JobContext) -> dict:
    from include.documents import vectorstore
    from include.lifecycle import backup as b
    from include.lifecycle import drills
    from include.settings import get_settings

    bucket = get_settings().backup_bucket
    return _drill(ctx, "chroma",
                  lambda: b.snapshot_chroma(ctx.clients, vectorstore.client(), bucket, ctx.run_id),
                  lambda wd: drills.drill_chroma(ctx.clients, bucket, wd, ctx.run_id))


JOB = Job(
    name="restore_drill",
    schedule="0 5 * * 0",
    description="Restore drills: PostgreSQL point in time, Chroma and Redis restored into scratch servers on loopback "
                "ports and verified; RTO/RPO per tier against the seed's objectives, in restore_drills.",
    steps=(
        Step("drill_postgres", drill_postgres, "pgBackRest point-in-time restore, markers and table checksums",
             timeout=timedelta(hours=1)),
        Step("drill_redis", drill_redis, "RDB into a scratch redis-server, key counts", trigger_rule="all_done"),
        Step("drill_chroma", drill_chroma, "snapshot into a scratch Chroma server, ids and embedding checksums",
             trigger_rule="all_done", timeout=timedelta(hours=2)),
    ),
    params={
        "kinds": Param([], "array", "only these drills; empty: all",
                       {"items": {"type": "string", "enum": ["postgres", "redis", "chroma"]}}),
        "backup_first": Param(False, "boolean", "take a fresh backup of each kind before its drill"),
    },
    default_span=timedelta(days=7),
    retries=0,
    tags=("lifecycle", "backup", "drill"),
)

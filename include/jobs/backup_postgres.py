"""backup_postgres (`0 2,8,14,20 * * *`, the seed's schedule): pgBackRest into the S3 repository.

The 02:00 run takes a full backup, the other runs incremental ones (`backup_type` overrides).
WAL is archived continuously by the server itself (`archive_command`, `archive_timeout` 60 s in the
local stack), which is what gives the critical tier its 15-minute RPO; backups bound the replay
time (RTO). Retention: 30 days, pgBackRest's time-based `repo1-retention-full` (it expires after
each backup); catalog rows of expired backups are marked `expired`.
"""

from __future__ import annotations

from datetime import timedelta

from include.jobs._backup_common import pgbackrest
from include.jobs.base import Job, JobContext, Param, Step


def backup(ctx: JobContext) -> dict:
    from include.lifecycle import backup as b
    from include.settings import get_settings

    kind = ctx.params["backup_type"]
    if kind == "auto":
        kind = b.scheduled_pg_type(ctx.interval.end)
    if ctx.params["dry_run"]:
        with ctx.clients.db() as conn:
            size = conn.execute("SELECT sum(pg_database_size(datname))::bigint AS b FROM pg_database").fetchone()["b"]
        backups = pgbackrest().backups()
        return {"dry_run": True, "would_take": kind, "cluster_bytes": int(size), "backups_in_repository": len(backups),
                "newest": backups[-1]["label"] if backups else None}
    return b.backup_postgres(ctx.clients, pgbackrest(), kind, get_settings().backup_bucket, ctx.run_id)


def check_archive(ctx: JobContext) -> dict:
    """`pgbackrest check`: the archive_command works and WAL reaches the repository."""
    p = pgbackrest().cmd("check", timeout=600)
    return {"check": "ok", "output": p.stdout.strip().splitlines()[-1][-200:] if p.stdout.strip() else ""}


JOB = Job(
    name="backup_postgres",
    paused_at_creation=False,  # on from day one
    schedule="0 2,8,14,20 * * *",
    priority=50,  # the critical tier's RPO: first of the jobs waiting for a slot
    description="PostgreSQL (application database) backups with pgBackRest: full daily at 02:00, incremental every "
                "6 hours, WAL archived continuously, 30 days retention, recorded in backup_catalog.",
    steps=(
        Step("check_archive", check_archive, "pgbackrest check: WAL archiving reaches the repository"),
        Step("backup", backup, "pgbackrest backup (full at 02:00, else incremental)", timeout=timedelta(hours=4)),
    ),
    params={
        "backup_type": Param("auto", "string", "auto: full at 02:00, incremental otherwise",
                             {"enum": ["auto", "full", "diff", "incr"]}),
        "dry_run": Param(False, "boolean", "report what the run would back up and expire; change nothing"),
    },
    default_span=timedelta(hours=6),
    retries=1,
    tags=("lifecycle", "backup"),
)

"""hourly_aggregation (`0 * * * *`, the seed's ETL job): rollups, threat scores, views, archives.

The run with logical date X owns the hour [X-1h, X). Late events are counted because ingestion
marks every hour it stores events for (`event_dirty_hours`, in the transaction that stores them),
and this job recomputes its own hours plus every marked hour before X from `events` (delete and
insert in one transaction): the rollup is always what a full recompute would give. A rerun or a
backfill of any hour rewrites that hour's outputs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.jobs.base import Job, JobContext, Param, Step

ROLLUP_LOCK = "sting_event_rollup"
LOG_BUCKET = "honeyjar-logs"

ROLLUP_SELECT = """
SELECT date_trunc('hour', created_at) AS hour, honeyjar_id, event_kind, country, asn_org, destination_port,
       count(*) AS event_count, sum(occurrences) AS occurrences, count(DISTINCT source_ip) AS unique_sources,
       max(threat_level) AS max_threat_level
  FROM events
 WHERE created_at >= %(lo)s AND created_at < %(hi)s AND event_kind IS NOT NULL
 GROUP BY 1, 2, 3, 4, 5, 6"""


def _hours(start: datetime, end: datetime) -> list[datetime]:
    h = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while h < end:
        out.append(h)
        h += timedelta(hours=1)
    return out


def ensure_event_partitions(ctx: JobContext) -> dict:
    """Monthly partitions of `events` from the interval's month to `partitions_ahead` months after
    the current one (ingestion also creates a missing month before it inserts)."""
    ahead = int(ctx.params["partitions_ahead"])
    now = max(ctx.interval.end, datetime.now(UTC))
    to = (now.replace(day=1) + timedelta(days=32 * ahead)).replace(day=1)
    with ctx.clients.db() as conn:
        created = conn.execute("SELECT sting_ensure_event_partitions(%s, %s) AS n",
                               (ctx.interval.start.date().replace(day=1), to.date())).fetchone()["n"]
    return {"partitions_created": int(created), "through": f"{to:%Y-%m}"}


def recompute_hours(conn, hours: list[datetime]) -> int:
    rows = 0
    for h in hours:
        conn.execute("DELETE FROM event_stats_hourly WHERE hour = %s", (h,))
        rows += conn.execute(
            "INSERT INTO event_stats_hourly (hour, honeyjar_id, event_kind, country, asn_org, destination_port,"
            " event_count, occurrences, unique_sources, max_threat_level) " + ROLLUP_SELECT,
            {"lo": h, "hi": h + timedelta(hours=1)}).rowcount
    return rows


def aggregate_event_statistics(ctx: JobContext) -> dict:
    """Rollups per hour x jar x kind x country x AS organisation x destination port for the run's
    hours and every hour marked by late events before the interval's end."""
    own = _hours(ctx.interval.start, ctx.interval.end)
    with ctx.clients.db() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (ROLLUP_LOCK,))
        # ascending, locked: an ingestion marking the same hour waits for us (or we for it), so
        # every event is counted either here or by the next run
        late = [r["hour"] for r in conn.execute(
            """DELETE FROM event_dirty_hours WHERE hour IN (
                   SELECT hour FROM event_dirty_hours WHERE hour < %s ORDER BY hour FOR UPDATE)
               RETURNING hour""", (ctx.interval.end,))]
        hours = sorted(set(own) | set(late))
        rows = recompute_hours(conn, hours)
    return {"hours_recomputed": len(hours), "late_hours": len(set(late) - set(own)), "rollup_rows": rows}


def update_threat_scores(ctx: JobContext) -> dict:
    """Decay every indicator's score with age and raise it with sightings (formula in
    include.security.intel.decayed_score), as of the interval's end; never moves a score back to
    an earlier time (a backfill of an old hour leaves newer scores alone)."""
    from include.security.intel import SCORE_FLOOR, decayed_score

    at = ctx.interval.end
    with ctx.clients.db() as conn:
        rows = conn.execute(
            """WITH s AS (
                   SELECT ioc_id, count(*) FILTER (WHERE sighted_at >= %(at)s - INTERVAL '30 days') AS recent,
                          count(*) AS total, max(sighted_at) AS last
                     FROM ioc_sightings WHERE sighted_at < %(at)s GROUP BY 1)
               SELECT t.id, t.ioc_type, t.confidence, t.last_seen, t.valid_until, t.status,
                      coalesce(s.recent, 0) AS recent, coalesce(s.total, 0) AS total, s.last
                 FROM threat_intel t LEFT JOIN s ON s.ioc_id = t.id
                WHERE t.status <> 'revoked' AND (t.score_at IS NULL OR t.score_at <= %(at)s)""",
            {"at": at}).fetchall()
        updates, expired = [], 0
        for r in rows:
            seen = max(x for x in (r["last_seen"], r["last"]) if x is not None)
            score = decayed_score(r["ioc_type"], float(r["confidence"] or 0.0), seen, at, int(r["recent"]))
            status = "expired" if score < SCORE_FLOOR or (r["valid_until"] and r["valid_until"] <= at) else "active"
            expired += status == "expired" and r["status"] != "expired"
            updates.append((score, at, int(r["total"]), r["last"], status, r["id"]))
        with conn.cursor() as cur:
            cur.executemany(
                """UPDATE threat_intel SET score = %s, score_at = %s, sightings = %s, last_sighted_at = %s, status = %s
                    WHERE id = %s""", updates)
    return {"indicators_scored": len(updates), "newly_expired": expired}


def refresh_materialized_views(ctx: JobContext) -> dict:
    """`hourly_stats` (CONCURRENTLY once populated) and the Redis hourly statistics of the hours
    this run recomputed; hour fields past the hot tier are trimmed."""
    from include.db import connect
    from include.security.store import refresh_redis_stats, trim_redis_stats

    with connect(ctx.clients.dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        populated = conn.execute("SELECT ispopulated FROM pg_matviews WHERE matviewname = 'hourly_stats'").fetchone()
        concurrently = bool(populated and populated["ispopulated"])
        conn.execute("REFRESH MATERIALIZED VIEW " + ("CONCURRENTLY " if concurrently else "") + "hourly_stats")
    hours = _recomputed_hours(ctx)
    written = refresh_redis_stats(ctx.clients, hours)
    return {"hourly_stats": "concurrently" if concurrently else "full (first population)",
            "redis_hour_fields": written, "redis_fields_trimmed": trim_redis_stats(ctx.clients)}


def _recomputed_hours(ctx: JobContext) -> list[datetime]:
    """The run's hours and the late hours its aggregation recomputed (rollup rows computed since
    the run began: durable, so a retried step sees the same hours)."""
    with ctx.clients.db() as conn:
        began = conn.execute("SELECT started_at FROM job_runs WHERE id = %s", (ctx.run_id,)).fetchone()["started_at"]
        late = [r["hour"] for r in conn.execute(
            "SELECT DISTINCT hour FROM event_stats_hourly WHERE computed_at >= %s AND hour < %s",
            (began, ctx.interval.end))]
    return sorted(set(_hours(ctx.interval.start, ctx.interval.end)) | set(late))


def archive_hourly_logs(ctx: JobContext) -> dict:
    """Each recomputed hour's raw events per honey jar to
    honeyjar-logs/{year}/{month}/{day}/{honeyjar_id}/{hour}.log.gz (byte-identical on a rerun)."""
    from include.security.store import hour_log

    s3, written, nbytes = ctx.clients.s3, 0, 0
    with ctx.clients.db() as conn:
        for h in _recomputed_hours(ctx):
            jars = [r["j"] for r in conn.execute(
                "SELECT DISTINCT honeyjar_id::text AS j FROM events WHERE created_at >= %s AND created_at < %s ORDER BY 1",
                (h, h + timedelta(hours=1)))]
            for jar in jars:
                body = hour_log(conn, jar, h)
                s3.put_object(Bucket=LOG_BUCKET, Key=f"{h:%Y/%m/%d}/{jar}/{h:%H}.log.gz", Body=body,
                              ContentType="application/gzip")
                written += 1
                nbytes += len(body)
    return {"objects": written, "bytes": nbytes}


JOB = Job(
    name="hourly_aggregation",
    schedule="0 * * * *",
    description="Hourly rollups of honeypot events (late events included), IOC score decay and sightings, "
                "hourly_stats and the Redis live statistics, and the hour's raw events archived per honey jar.",
    steps=(
        Step("ensure_event_partitions", ensure_event_partitions, "monthly partitions of `events`, months ahead"),
        Step("aggregate_event_statistics", aggregate_event_statistics,
             "rollups of the hour and of every hour late events arrived for"),
        Step("update_threat_scores", update_threat_scores, "IOC scores: decay by type, raised by sightings"),
        Step("refresh_materialized_views", refresh_materialized_views, "hourly_stats and stats:honeyjar:{id}:hourly"),
        Step("archive_hourly_logs", archive_hourly_logs, "honeyjar-logs/{y}/{m}/{d}/{jar}/{hour}.log.gz"),
    ),
    params={
        "partitions_ahead": Param(3, "integer", "months of `events` partitions created ahead", {"minimum": 1, "maximum": 24}),
    },
    tags=("security", "events"),
)

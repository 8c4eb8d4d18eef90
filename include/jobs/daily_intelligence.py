"""daily_intelligence (`0 2 * * *`, the seed's ETL job): threat feeds, correlation, the report.

The run with logical date X owns the 24 hours [X-1d, X) (02:00 to 02:00 UTC: two hours after
midnight so late events of the day are in). Its feed snapshot is the raw feed kept at
threat-intel/feeds/{source}/{X:%Y-%m-%d}/intel.json: the first run of a date fetches it, a rerun or
backfill of that date re-reads the kept snapshot (`refetch` to fetch again), so the same logical
date gives the same indicators, the same correlations and the same report.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from include.jobs.base import Job, JobContext, Param, Step

INTEL_BUCKET = "threat-intel"


def feed_key(source: str, ctx: JobContext) -> str:
    return f"feeds/{source}/{ctx.interval.end:%Y-%m-%d}/intel.json"


def feed_endpoints(params: dict) -> list[str]:
    """What import_threat_feeds reads (lineage): the selected feeds' endpoints."""
    from include.security.feeds import lineage_sources

    return lineage_sources(params)


def import_threat_feeds(ctx: JobContext) -> dict:
    """Every configured feed (include/feeds/*.yaml): snapshot kept in S3, parsed, merged into
    threat_intel. A feed that fails (unreachable, malformed, invalid file) fails alone: the others
    are imported, then the step fails naming it."""
    from include.security import feeds as F
    from include.security.intel import upsert_indicators

    configs, errors = F.load_feeds()
    only = set(ctx.params.get("feeds") or [])
    s3, out, failed = ctx.clients.s3, {}, list(errors)
    for feed in configs:
        if only and feed.name not in only:
            continue
        key = feed_key(feed.name, ctx)
        try:
            doc = None
            if not ctx.params.get("refetch"):
                try:
                    doc = json.loads(s3.get_object(Bucket=INTEL_BUCKET, Key=key)["Body"].read())
                except s3.exceptions.NoSuchKey:
                    doc = None
            fetched = doc is None
            if fetched:
                doc = F.fetch(feed, ctx.clients.secret(feed.vault_path) if feed.vault_path else None)
            body = json.dumps(doc, sort_keys=True).encode()
            if fetched:
                s3.put_object(Bucket=INTEL_BUCKET, Key=key, ContentType="application/json", Body=body)
            parsed = F.parse(doc, feed)
            with ctx.clients.db() as conn:
                counts = upsert_indicators(conn, feed.name, parsed.indicators, ctx.interval.end)
                conn.execute(
                    """INSERT INTO threat_feed_imports (source, feed_date, object_key, sha256, indicators, rejected)
                       VALUES (%s, %s, %s, %s, %s, %s)
                       ON CONFLICT (source, feed_date) DO UPDATE SET object_key = EXCLUDED.object_key,
                           sha256 = EXCLUDED.sha256, indicators = EXCLUDED.indicators, rejected = EXCLUDED.rejected,
                           imported_at = NOW()""",
                    (feed.name, ctx.interval.end.date(), key, hashlib.sha256(body).hexdigest(), counts["indicators"],
                     parsed.rejected))
            counts.update(rejected=parsed.rejected, snapshot="fetched" if fetched else "kept", object=f"s3://{INTEL_BUCKET}/{key}")
            if feed.kind == "taxii":
                counts["pages"] = doc["content"].get("pages")
            out[feed.name] = counts
        except Exception as e:  # noqa: BLE001 - one feed's failure never stops the others
            failed.append(f"{feed.name}: {str(e)[:300]}")
    if failed:
        from include.security.feeds import FeedError

        raise FeedError(f"feeds imported: {sorted(out)}; failed: " + " | ".join(failed))
    return {"feeds": out}


def correlate_events(ctx: JobContext) -> dict:
    """Events of the interval and the lookback before it against the active indicators: each match
    recorded once as a sighting, and an `ioc_match` alert per source, jar and alert window."""
    from include.security.store import AlertEvent, alert_key, push_alerts, upsert_alerts

    lo = ctx.interval.start - timedelta(days=int(ctx.params["lookback_days"]))
    window = int(ctx.params["alert_window_seconds"])
    with ctx.clients.db() as conn:
        matches = conn.execute(
            """SELECT e.id, e.created_at, host(e.source_ip) AS ip, e.honeyjar_id, e.threat_level, e.event_kind,
                      t.id AS ioc_id, t.ioc_type, t.ioc_value, coalesce(t.score, t.confidence, 0)::float8 AS strength
                 FROM events e
                 CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(e.payload->'sting'->'iocs', '[]'::jsonb)) AS x(k)
                 JOIN threat_intel t ON t.ioc_type = split_part(x.k, ':', 1) AND t.ioc_value = substr(x.k, strpos(x.k, ':') + 1)
                WHERE e.created_at >= %s AND e.created_at < %s AND t.status = 'active'
                ORDER BY e.created_at, e.id""", (lo, ctx.interval.end)).fetchall()
        with conn.cursor() as cur:
            new = 0
            for m in matches:
                new += cur.execute(
                    """INSERT INTO ioc_sightings (ioc_id, event_id, event_created_at, sighted_at, honeyjar_id)
                       VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                    (m["ioc_id"], m["id"], m["created_at"], m["created_at"], m["honeyjar_id"])).rowcount
            groups: dict[str, dict] = {}
            for m in matches:
                level = min(10, int(m["threat_level"]) + round(4 * min(max(m["strength"], 0.0), 1.0)))
                key = alert_key("ioc_match", m["ip"], m["honeyjar_id"], m["created_at"], window)
                g = groups.setdefault(key, {"kind": m["event_kind"], "events": {}, "iocs": set()})
                g["events"][m["id"]] = AlertEvent(m["id"], m["created_at"], m["ip"], m["honeyjar_id"], level)
                g["iocs"].add(f"{m['ioc_type']}:{m['ioc_value']}")
            created = upsert_alerts(cur, [(k, "ioc_match", g["kind"], list(g["events"].values()), sorted(g["iocs"]))
                                          for k, g in sorted(groups.items())])
    queued = push_alerts(ctx.clients)
    return {"matches": len(matches), "new_sightings": new, "alerts": len(groups), "alerts_new": int(created),
            "alerts_queued": len(queued), "from": lo.isoformat()}


def generate_daily_report(ctx: JobContext) -> dict:
    """The day's PDF at threat-intel/reports/{year}/{month}/report_{date}.pdf (replaced by a rerun)."""
    from include.security.report import collect, render_pdf, report_key

    report_id = f"{ctx.interval.start:%Y-%m-%d}"
    with ctx.clients.db() as conn:
        summary = collect(conn, ctx.interval.start, ctx.interval.end)
    pdf, pages = render_pdf(summary, report_id, ctx.interval.end)
    key = report_key(report_id, ctx.interval.start)
    sha = hashlib.sha256(pdf).hexdigest()
    ctx.clients.s3.put_object(Bucket=INTEL_BUCKET, Key=key, Body=pdf, ContentType="application/pdf",
                              Metadata={"sha256": sha, "interval-start": ctx.interval.start.isoformat()})
    with ctx.clients.db() as conn:
        conn.execute(
            """INSERT INTO daily_reports (report_date, object_key, sha256, pages, summary) VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (report_date) DO UPDATE SET object_key = EXCLUDED.object_key, sha256 = EXCLUDED.sha256,
                   pages = EXCLUDED.pages, summary = EXCLUDED.summary, generated_at = NOW()""",
            (ctx.interval.start.date(), key, sha, pages, json.dumps(summary, default=str)))
    t = summary["totals"]
    return {"object": f"s3://{INTEL_BUCKET}/{key}", "sha256": sha, "pages": pages, "bytes": len(pdf),
            "events": t["occurrences"], "alerts": t["alerts"], "ioc_hits": len(summary["ioc_hits"])}


JOB = Job(
    name="daily_intelligence",
    schedule="0 2 * * *",
    description="Threat feeds (STIX 2.1 over TAXII 2.1, MISP feed, abuse.ch-style CSV) into threat_intel, events "
                "correlated with them (sightings, alerts), and the day's PDF report.",
    steps=(
        Step("import_threat_feeds", import_threat_feeds, "fetch or re-read each feed's snapshot, merge into threat_intel",
             timeout=timedelta(minutes=30), reads=(feed_endpoints,),
             writes=("table:threat_intel", "table:threat_feed_imports")),
        Step("correlate_events", correlate_events, "the day's events (and a lookback) against the active indicators",
             trigger_rule="all_done", reads=("table:events", "table:threat_intel"),
             writes=("table:ioc_sightings", "table:alerts")),
        Step("generate_daily_report", generate_daily_report, "the PDF report with charts", trigger_rule="all_done",
             reads=("table:events", "table:alerts", "table:threat_intel", "table:ioc_sightings")),
    ),
    params={
        "feeds": Param([], "array", "only these feeds (names); empty: every configured feed", {"items": {"type": "string"}}),
        "refetch": Param(False, "boolean", "fetch the feeds again even if this date's snapshot is kept"),
        "lookback_days": Param(7, "integer", "also correlate the events of this many days before the interval",
                               {"minimum": 0, "maximum": 90}),
        "alert_window_seconds": Param(3600, "integer", "IOC-match alerts of one source and jar within this window "
                                      "are one alert", {"minimum": 60}),
    },
    default_span=timedelta(days=1),
    tags=("security", "threat-intel"),
)

"""Ingest a batch of honeypot messages exactly once: validate, enrich, de-duplicate, score, store,
alert, and refresh the live statistics.

One PostgreSQL transaction per batch holds everything a batch changes: the events (an event's id
is its message's receipt: the producer's event id, or a hash of the raw message), the ledger of
messages that did not become events (`event_receipts`: folded duplicates, rejected messages with
their reason), the hours to re-aggregate, and the alerts. Batches are serialised by an
advisory lock, so concurrent runs never decide the same message twice. A message whose receipt
exists changes nothing: the caller acknowledges a message only after this returns, so a kill at
any point loses nothing (unacknowledged messages are delivered again) and doubles nothing (their
events or receipts exist). Processed payload objects are written before the commit (idempotent overwrites
keyed by the event id); alerts are pushed to Redis after it (`queued_at` records the push, and a
later batch pushes what a killed one did not).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from include.clients import Clients
from include.security import enrich, scoring
from include.security.events import Event, Rejected, parse, receipt_id_for

log = logging.getLogger(__name__)

LOCK_KEY = "sting_event_ingest"
PAYLOAD_BUCKET = "event-payloads"
ALERT_QUEUE = "queue:alerts:high_priority"
STATS_KEY = "stats:honeyjar:{id}:hourly"
HOT_TIER = timedelta(days=7)  # the seed's hot tier: Redis keeps 7 days of hourly statistics


@dataclass
class Message:
    ref: str  # stream entry id or object key (the ledger's source_ref)
    source: str  # redis | raw_object | comb_output
    raw: bytes | str
    event_id: str | None = None  # the producer's id when the transport names it (raw objects)
    error: tuple[str, str] | None = None  # (reason, code): the transport already knows it is bad


@dataclass
class IngestConfig:
    dedup_window_seconds: int = 60
    alert_threshold: int = 7
    alert_window_seconds: int = 3600
    write_payloads: bool = True
    payload_threads: int = 16
    anomaly: scoring.AnomalyScorer | None = None  # the weekly model, when one is promoted


@dataclass
class BatchResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    already: int = 0  # receipts found: redelivered messages
    alerts_new: int = 0
    alerts_updated: int = 0
    payloads_written: int = 0
    reasons: Counter = field(default_factory=Counter)
    hours: set = field(default_factory=set)  # hours events were stored for (live statistics)

    COUNTS = ("received", "stored", "duplicates", "rejected", "already", "alerts_new", "alerts_updated",
              "payloads_written")

    def add(self, other: BatchResult) -> None:
        for k in self.COUNTS:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.reasons.update(other.reasons)
        self.hours |= other.hours

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.COUNTS}
        d["rejected_reasons"] = dict(self.reasons.most_common(5))
        return d


def _bucket(t: datetime, seconds: int) -> int:
    return int(t.timestamp()) // seconds


def fingerprint(ev: Event) -> str:
    """The content key of an event: two events with the same key are identical but for time."""
    import hashlib

    key = f"{ev.honeyjar_id}|{ev.kind}|{ev.source_ip}|{ev.destination_port}|{ev.content_key}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def payload_key(ev: Event) -> str:
    return f"processed/{ev.created_at:%Y/%m/%d}/{ev.id}.json"


def resolve_jars(conn, events: list[Event]) -> dict[str, uuid.UUID]:
    """Sensor name -> honey jar (created on first sight, keyed by `jar_key` = honeypot:<sensor>)."""
    sensors = sorted({e.sensor for e in events if e.honeyjar_id is None and e.sensor})
    out = {r["sensor"]: r["id"] for r in conn.execute(
        "SELECT id, config->>'sensor' AS sensor FROM honey_jars WHERE config->>'jar_key' = ANY(%s)",
        ([f"honeypot:{s}" for s in sensors],))} if sensors else {}
    for sensor in sensors:
        if sensor in out:
            continue
        row = conn.execute(
            """INSERT INTO honey_jars (name, type, description, config)
               VALUES (%s, 'private', %s, jsonb_build_object('jar_key', %s::text, 'kind', 'honeypot', 'sensor', %s::text))
               ON CONFLICT ((config->>'jar_key')) WHERE config ? 'jar_key' DO UPDATE SET updated_at = honey_jars.updated_at
               RETURNING id""",
            (f"Honeypot {sensor}"[:255], f"Events of the honeypot sensor {sensor}", f"honeypot:{sensor}", sensor),
        ).fetchone()
        out[sensor] = row["id"]
    return out


def ingest_batch(clients: Clients, messages: list[Message], cfg: IngestConfig | None = None,
                 now: datetime | None = None, finalize: bool = True) -> BatchResult:
    """One batch in one transaction. `finalize` runs the after-commit actions (alert queue, live
    statistics) for this batch; a step ingesting many batches passes False and calls
    `after_commit` once at its end."""
    cfg = cfg or IngestConfig()
    now = now or datetime.now(UTC)
    res = BatchResult(received=len(messages))
    events: list[tuple[Message, Event]] = []
    rejects: list[tuple[Message, str, str, str]] = []  # (message, receipt id, reason, code)
    for m in messages:
        if m.error:
            rejects.append((m, receipt_id_for(m.raw, m.event_id), *m.error))
            continue
        try:
            ev = parse(m.raw, now=now, event_id=m.event_id)
            events.append((m, ev))
        except Rejected as e:
            rejects.append((m, receipt_id_for(m.raw, m.event_id), str(e), e.code))
    # receipts are unique per batch (a message delivered twice in one batch counts once)
    seen: set[str] = set()
    n = len(events) + len(rejects)
    events = [(m, e) for m, e in events if not (e.receipt_id in seen or seen.add(e.receipt_id))]
    rejects = [x for x in rejects if not (x[1] in seen or seen.add(x[1]))]
    redelivered_in_batch = n - len(events) - len(rejects)

    with clients.db() as conn:
        jars = resolve_jars(conn, [e for _, e in events])
        known = set()
        ids = list({e.honeyjar_id for _, e in events if e.honeyjar_id})
        if ids:
            known = {r["id"] for r in conn.execute("SELECT id FROM honey_jars WHERE id = ANY(%s)", (ids,))}
    ok: list[tuple[Message, Event]] = []
    for m, e in events:
        if e.honeyjar_id is None:
            e.honeyjar_id = jars[e.sensor]
        elif e.honeyjar_id not in known:
            rejects.append((m, e.receipt_id, f"honeyjar_id: no honey jar {e.honeyjar_id}", "unknown_honeyjar"))
            continue
        e.ecs.setdefault("sting", {})["honeyjar_id"] = str(e.honeyjar_id)
        enrich.geo_enrich(e)
        e.fingerprint = fingerprint(e)
        ok.append((m, e))
    events = ok

    if events:
        months = sorted({e.created_at.date().replace(day=1) for _, e in events})
        with clients.db() as conn:
            conn.execute("SELECT sting_ensure_event_partitions(%s, %s)", (months[0], months[-1]))

    touched: set[datetime] = set()
    with clients.db() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK_KEY,))
        receipts = [e.receipt_id for _, e in events] + [x[1] for x in rejects]
        existing = {r["receipt_id"] for r in conn.execute(
            "SELECT receipt_id FROM event_receipts WHERE receipt_id = ANY(%s)", (receipts,))} if receipts else set()
        if events:  # stored events: found by (id, time), which prunes to their partitions
            stored = {(r["id"], r["created_at"]) for r in conn.execute(
                """SELECT e.id, e.created_at FROM events e
                     JOIN unnest(%s::uuid[], %s::timestamptz[]) AS k(id, t) ON e.id = k.id AND e.created_at = k.t
                    WHERE e.created_at >= %s AND e.created_at <= %s""",
                ([e.id for _, e in events], [e.created_at for _, e in events],
                 min(e.created_at for _, e in events), max(e.created_at for _, e in events)))}
            existing |= {e.receipt_id for _, e in events if (e.id, e.created_at) in stored}
        res.already = len(existing) + redelivered_in_batch
        events = [(m, e) for m, e in events if e.receipt_id not in existing]
        rejects = [x for x in rejects if x[1] not in existing]
        events.sort(key=lambda me: (me[1].created_at, str(me[1].id)))

        # de-duplication (a sliding window): an event less than the window away from a stored or
        # earlier event with the same content key folds into that one
        window = timedelta(seconds=cfg.dedup_window_seconds)
        reps: dict[str, list[tuple[datetime, uuid.UUID]]] = defaultdict(list)
        if events:
            fps = list({e.fingerprint for _, e in events})
            for r in conn.execute(
                """SELECT fingerprint, created_at, id FROM events
                    WHERE fingerprint = ANY(%s) AND created_at > %s AND created_at < %s""",
                    (fps, events[0][1].created_at - window, events[-1][1].created_at + window)):
                reps[r["fingerprint"]].append((r["created_at"], r["id"]))
        new: list[tuple[Message, Event]] = []
        dups: list[tuple[Message, Event, uuid.UUID, datetime]] = []
        for m, e in events:
            near = [(abs(t - e.created_at), t, i) for t, i in reps[e.fingerprint] if abs(t - e.created_at) < window]
            if near:
                _, t, i = min(near)
                dups.append((m, e, i, t))
            else:
                reps[e.fingerprint].append((e.created_at, e.id))
                new.append((m, e))

        indicators = _indicators(conn, {k for _, e in new for k in e.iocs})
        past = _past_hour_counts(conn, [e for _, e in new])
        running: Counter = Counter()
        hits_of: dict[uuid.UUID, list[dict]] = {}
        for _, e in new:
            hits_of[e.id] = enrich.ioc_enrich(e, indicators)
        # the promoted detector scores each event's source over the trailing hour (stored events
        # and this batch's), after enrichment (IOC hits are one of its features)
        scores = cfg.anomaly.score_batch(conn, [e for _, e in new]) if cfg.anomaly is not None and new else {}
        for _, e in new:
            hits = hits_of[e.id]
            anomaly = scores.get(e.id)
            if anomaly is not None:
                e.anomaly_score, e.scored_by = anomaly, cfg.anomaly.label
            e.threat_level = scoring.threat_level(e, hits, past.get(e.source_ip, 0) + running[e.source_ip], anomaly)
            running[e.source_ip] += 1
            e.ecs["event"]["severity"] = e.threat_level
            e.ecs["event"]["risk_score"] = e.threat_level * 10

        if cfg.write_payloads and new:
            res.payloads_written = _write_payloads(clients, [e for _, e in new], cfg.payload_threads)

        with conn.cursor() as cur:
            if new:
                with cur.copy(
                    "COPY events (id, honeyjar_id, event_type, source_ip, threat_level, payload, created_at, event_kind,"
                    " country, asn_org, destination_port, username, fingerprint, occurrences, anomaly_score, scored_by)"
                    " FROM STDIN"
                ) as cp:
                    for _, e in new:
                        cp.write_row((e.id, e.honeyjar_id, e.ecs["event"]["dataset"], e.source_ip, e.threat_level,
                                      orjson.dumps(e.ecs).decode(), e.created_at, e.kind, e.country,
                                      e.asn_org, e.destination_port, e.username, e.fingerprint, 1,
                                      e.anomaly_score, e.scored_by))
            if dups:
                folded = Counter((eid, ets) for _, _, eid, ets in dups)
                cur.executemany("UPDATE events SET occurrences = occurrences + %s WHERE id = %s AND created_at = %s",
                                [(n, eid, ets) for (eid, ets), n in folded.items()])
            with cur.copy("COPY event_receipts (receipt_id, source, source_ref, status, event_id, event_created_at,"
                          " reason, raw_excerpt) FROM STDIN") as cp:
                for m, e, eid, ets in dups:
                    cp.write_row((e.receipt_id, m.source, m.ref[:500], "duplicate", eid, ets, None, None))
                for m, r, why, _ in rejects:
                    raw = m.raw.decode("utf-8", "replace") if isinstance(m.raw, bytes) else m.raw
                    cp.write_row((r, m.source, m.ref[:500], "rejected", None, None, why[:1000], raw[:300]))
            touched = {e.hour for _, e in new} | {ets.replace(minute=0, second=0, microsecond=0) for *_, ets in dups}
            if touched:  # ascending order: the aggregation deletes in the same order (no deadlock)
                cur.executemany(
                    "INSERT INTO event_dirty_hours (hour) VALUES (%s) ON CONFLICT (hour) DO UPDATE SET marked_at = NOW()",
                    [(h,) for h in sorted(touched)])
            sightings = [(h["id"], e.id, e.created_at, e.created_at, e.honeyjar_id)
                         for _, e in new for h in hits_of.get(e.id) or []]
            if sightings:  # one statement for the batch
                cur.execute("""INSERT INTO ioc_sightings (ioc_id, event_id, event_created_at, sighted_at, honeyjar_id)
                               SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::timestamptz[], %s::timestamptz[], %s::uuid[])
                               ON CONFLICT DO NOTHING""", [list(col) for col in zip(*sightings, strict=True)])
            res.alerts_new, res.alerts_updated = _alerts(cur, new, hits_of, cfg)
        res.stored, res.duplicates, res.rejected = len(new), len(dups), len(rejects)
        res.reasons.update(code for *_, code in rejects)
    res.hours = touched
    if finalize:
        after_commit(clients, res.hours, now)
    return res


def after_commit(clients: Clients, hours: Iterable[datetime], now: datetime | None = None) -> dict:
    """What follows durable events: the high-priority alert queue and the live statistics."""
    queued = push_alerts(clients)
    if queued:
        log.info("queued %d alerts on %s", len(queued), ALERT_QUEUE)
    return {"alerts_queued": len(queued), "stats_fields": refresh_redis_stats(clients, hours, now=now)}


def _indicators(conn, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    if not keys:
        return {}
    rows = conn.execute(
        """SELECT id, ioc_type, ioc_value, threat_type, confidence, score, sources FROM threat_intel
            WHERE status = 'active' AND ioc_value = ANY(%s)""", (list({v for _, v in keys}),)).fetchall()
    return {(r["ioc_type"], r["ioc_value"]): r for r in rows if (r["ioc_type"], r["ioc_value"]) in keys}


def _past_hour_counts(conn, events: list[Event]) -> dict[str, int]:
    if not events:
        return {}
    lo = min(e.created_at for e in events) - timedelta(hours=1)
    hi = max(e.created_at for e in events)
    # the rule only distinguishes 0-9, 10-99 and 100+: read at most 100 rows per source, so a
    # source with a million events this hour costs what one with a hundred does
    rows = conn.execute(
        """SELECT x.ip, (SELECT coalesce(sum(s.occurrences), 0) FROM (
                    SELECT occurrences FROM events WHERE source_ip = x.ip::inet AND created_at >= %s AND created_at <= %s
                     LIMIT %s) s)::bigint AS n
             FROM unnest(%s::text[]) AS x(ip)""",
        (lo, hi, scoring.REPETITION_CAP, list({e.source_ip for e in events}))).fetchall()
    return {r["ip"]: int(r["n"]) for r in rows}


def _write_payloads(clients: Clients, events: list[Event], threads: int) -> int:
    s3 = clients.s3

    def put(e: Event) -> None:
        s3.put_object(Bucket=PAYLOAD_BUCKET, Key=payload_key(e), ContentType="application/json",
                      Body=orjson.dumps(e.ecs, option=orjson.OPT_SORT_KEYS))

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(put, events))
    return len(events)


def _alerts(cur, new: list[tuple[Message, Event]], hits_of: dict, cfg: IngestConfig) -> tuple[int, int]:
    groups: dict[str, dict] = {}
    for _, e in new:
        if e.threat_level < cfg.alert_threshold:
            continue
        hits = hits_of.get(e.id) or []
        atype = scoring.alert_type(e, hits)
        key = alert_key(atype, e.source_ip, e.honeyjar_id, e.created_at, cfg.alert_window_seconds)
        g = groups.setdefault(key, {"type": atype, "kind": e.kind, "events": [], "iocs": set()})
        g["events"].append(AlertEvent(e.id, e.created_at, e.source_ip, e.honeyjar_id, e.threat_level))
        g["iocs"].update(f"{h['ioc_type']}:{h['ioc_value']}" for h in hits)
    inserted = upsert_alerts(cur, [(k, g["type"], g["kind"], g["events"], sorted(g["iocs"]))
                                   for k, g in sorted(groups.items())])
    return inserted, len(groups) - inserted


@dataclass(frozen=True)
class AlertEvent:
    id: uuid.UUID
    created_at: datetime
    source_ip: str
    honeyjar_id: uuid.UUID
    level: int


def alert_key(atype: str, source_ip: str, honeyjar_id, at: datetime, window_seconds: int) -> str:
    """Repeats of one rule by one source on one jar within a window are one alert."""
    return f"{atype}|{source_ip}|{honeyjar_id}|{_bucket(at, window_seconds)}"


_UPSERT_ALERT = """
INSERT INTO alerts (event_id, event_created_at, alert_type, severity, title, description, honeyjar_id, source_ip,
                    threat_level, dedup_key, occurrences, first_seen_at, last_seen_at, metadata)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s)
ON CONFLICT (dedup_key) DO UPDATE SET
    first_seen_at = LEAST(alerts.first_seen_at, EXCLUDED.first_seen_at),
    last_seen_at = GREATEST(alerts.last_seen_at, EXCLUDED.last_seen_at),
    threat_level = GREATEST(alerts.threat_level, EXCLUDED.threat_level),
    severity = CASE WHEN GREATEST(alerts.threat_level, EXCLUDED.threat_level) >= 9 THEN 'critical'
                    WHEN GREATEST(alerts.threat_level, EXCLUDED.threat_level) >= 7 THEN 'high'
                    WHEN GREATEST(alerts.threat_level, EXCLUDED.threat_level) >= 5 THEN 'medium'
                    ELSE 'low' END,
    metadata = alerts.metadata || jsonb_build_object('iocs',
        (SELECT coalesce(jsonb_agg(DISTINCT x ORDER BY x), '[]'::jsonb) FROM jsonb_array_elements(
            coalesce(alerts.metadata->'iocs', '[]'::jsonb) || coalesce(EXCLUDED.metadata->'iocs', '[]'::jsonb)) x))
RETURNING (xmax = 0) AS inserted"""


def upsert_alerts(cur, groups: list[tuple[str, str, str, list[AlertEvent], list[str]]]) -> int:
    """Create each group's alert (key, type, event kind, events, IOCs) or fold its events into it;
    idempotent: an alert's events are a set and `occurrences` is their count. Three round trips
    for any number of alerts. Returns how many alerts are new."""
    if not groups:
        return 0
    rows, links = [], []
    for key, atype, kind, events, iocs in groups:
        e0 = min(events, key=lambda e: (e.created_at, str(e.id)))
        level = max(e.level for e in events)
        rows.append((e0.id, e0.created_at, atype, scoring.severity(level),
                     f"{atype.replace('_', ' ')} from {e0.source_ip} on honey jar {e0.honeyjar_id}"[:500],
                     f"events of kind {kind} from {e0.source_ip}, threat level up to {level}", e0.honeyjar_id,
                     e0.source_ip, level, key, min(e.created_at for e in events), max(e.created_at for e in events),
                     json.dumps({"iocs": iocs, "kind": kind})))
        links += [(key, e.id, e.created_at) for e in events]
    cur.executemany(_UPSERT_ALERT, rows, returning=True)
    inserted = 0
    while True:
        inserted += sum(bool(r["inserted"]) for r in cur.fetchall())
        if not cur.nextset():
            break
    keys = [g[0] for g in groups]
    cur.execute(
        """INSERT INTO alert_events (alert_id, event_id, event_created_at)
           SELECT a.id, x.event_id, x.created_at FROM unnest(%s::text[], %s::uuid[], %s::timestamptz[])
                  AS x(k, event_id, created_at) JOIN alerts a ON a.dedup_key = x.k
           ON CONFLICT DO NOTHING""",
        ([k for k, _, _ in links], [i for _, i, _ in links], [t for _, _, t in links]))
    cur.execute(
        """UPDATE alerts a SET occurrences = c.n FROM (
               SELECT ae.alert_id, count(*) AS n FROM alert_events ae JOIN alerts x ON x.id = ae.alert_id
                WHERE x.dedup_key = ANY(%s) GROUP BY 1) c
            WHERE a.id = c.alert_id""", (keys,))
    return inserted


def push_alerts(clients: Clients, limit: int = 1000) -> list[str]:
    """Push committed, not yet queued alerts to `queue:alerts:high_priority`, then mark them queued.
    A crash between the two pushes an id again on the next call (consumers de-duplicate by id)."""
    with clients.db() as conn:
        ids = [str(r["id"]) for r in conn.execute(
            "SELECT id FROM alerts WHERE queued_at IS NULL ORDER BY created_at LIMIT %s", (limit,))]
        if not ids:
            return []
        clients.redis.rpush(ALERT_QUEUE, *ids)
        conn.execute("UPDATE alerts SET queued_at = NOW() WHERE id = ANY(%s::uuid[])", (ids,))
    return ids


def hour_stats(conn, hour: datetime) -> dict[str, dict]:
    """Live statistics of one hour per jar: event_count (occurrences), unique_sources, threat_levels."""
    out: dict[str, dict] = defaultdict(lambda: {"event_count": 0, "unique_sources": 0, "threat_levels": {}})
    end = hour + timedelta(hours=1)
    for r in conn.execute(
        """SELECT honeyjar_id::text AS jar, threat_level, sum(occurrences)::bigint AS n FROM events
            WHERE created_at >= %s AND created_at < %s GROUP BY 1, 2""", (hour, end)):
        s = out[r["jar"]]
        s["event_count"] += int(r["n"])
        s["threat_levels"][str(r["threat_level"])] = int(r["n"])
    for r in conn.execute(
        """SELECT honeyjar_id::text AS jar, count(DISTINCT source_ip)::bigint AS u FROM events
            WHERE created_at >= %s AND created_at < %s GROUP BY 1""", (hour, end)):
        out[r["jar"]]["unique_sources"] = int(r["u"])
    return dict(out)


def refresh_redis_stats(clients: Clients, hours: Iterable[datetime], now: datetime | None = None) -> int:
    """Recompute `stats:honeyjar:{id}:hourly` (a hash: hour -> JSON) for the given hours from
    PostgreSQL (so a rerun writes the same values); hours older than the hot tier are left out, and
    the key expires a hot tier after its last write."""
    now = now or datetime.now(UTC)
    hours = sorted(h for h in set(hours) if h >= now - HOT_TIER)
    if not hours:
        return 0
    r = clients.redis
    n = 0
    with clients.db() as conn:
        for h in hours:
            stats = hour_stats(conn, h)
            pipe = r.pipeline()
            for jar, s in stats.items():
                key = STATS_KEY.format(id=jar)
                pipe.hset(key, h.isoformat(), json.dumps(s, sort_keys=True))
                pipe.expire(key, int(HOT_TIER.total_seconds()) + 3600)
                n += 1
            pipe.execute()
    return n


def trim_redis_stats(clients: Clients, now: datetime | None = None) -> int:
    """Drop hour fields older than the hot tier from every jar's statistics hash."""
    now = now or datetime.now(UTC)
    r = clients.redis
    dropped = 0
    for key in r.scan_iter(match=STATS_KEY.format(id="*"), count=500):
        old = [f for f in r.hkeys(key) if datetime.fromisoformat(f.decode() if isinstance(f, bytes) else f) < now - HOT_TIER]
        if old:
            dropped += r.hdel(key, *old)
    return dropped


def hour_log(conn, honeyjar_id: str, hour: datetime) -> bytes:
    """The raw events of a jar's hour as gzipped JSON lines (the seed's honeyjar-logs archive),
    byte-identical for the same rows (gzip without a timestamp, rows ordered by time and id)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for r in conn.execute(
            """SELECT payload->'event'->>'original' AS raw, occurrences FROM events
                WHERE honeyjar_id = %s AND created_at >= %s AND created_at < %s ORDER BY created_at, id""",
            (honeyjar_id, hour, hour + timedelta(hours=1))):
            gz.write((r["raw"] or "").encode() + b"\n")
    return buf.getvalue()


def ingest(clients: Clients, messages: Iterable[Message], cfg: IngestConfig | None = None,
           batch_size: int = 500) -> BatchResult:
    """Ingest messages in batches of `batch_size`, then the after-commit actions once."""
    total = BatchResult()
    batch: list[Message] = []
    for m in messages:
        batch.append(m)
        if len(batch) >= batch_size:
            total.add(ingest_batch(clients, batch, cfg, finalize=False))
            batch = []
    if batch:
        total.add(ingest_batch(clients, batch, cfg, finalize=False))
    after_commit(clients, total.hours)
    return total

"""event_ingestion: honeypot events into `events`, every minute.

Inputs
- the Redis stream `queue:events:pending` (the seed's key), read with the consumer group
  `sting-event-ingestion`. An entry carries the event itself (`event`: JSON) or names its raw
  payload (`event_id` + `payload_key` in the `event-payloads` bucket). Entries are acknowledged
  only after their batch committed; entries a killed run left pending are claimed again
  (XAUTOCLAIM) by the next run; acknowledged entries are trimmed from the stream.
- raw payload objects `event-payloads/raw/{year}/{month}/{day}/{event_id}.json` of the run's
  interval (and the day before: late uploads); the ledger skips those already ingested.
- the Parquet outputs of the stream combs named in `event_combs` (each row an event, with the
  comb's scrubbing applied: e.g. GDPR anonymises the source address to its /24 and redacts the
  password, which still allows geography, AS and rollups); each object is read once
  (`event_source_objects`), each row decided once by the ledger.

Every message is decided once (stored, duplicate or rejected with its reason) by
`include.security.store`; see there for the exactly-once argument.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

from include.jobs.base import Job, JobContext, Param, Step

STREAM = "queue:events:pending"
GROUP = "sting-event-ingestion"
RAW_PREFIX = "raw/"


def _config(ctx: JobContext):
    from include.security.store import IngestConfig

    p = ctx.params
    return IngestConfig(dedup_window_seconds=int(p["dedup_window_seconds"]), alert_threshold=int(p["alert_threshold"]),
                        alert_window_seconds=int(p["alert_window_seconds"]), write_payloads=bool(p["write_payloads"]),
                        anomaly=_scorer(ctx) if p.get("use_anomaly_model", True) else None)


def _scorer(ctx: JobContext):
    """The promoted anomaly detector (weekly_ml_training), if any. A model that cannot be loaded
    does not stop ingestion: events are scored by the rule alone, and the log says why."""
    from include.ml.scorer import promoted_scorer

    try:
        with ctx.clients.db() as conn:
            s = promoted_scorer(conn, ctx.clients.s3)
    except Exception as e:  # noqa: BLE001 - untrusted, missing (NoSuchVersion), corrupt: the rule still scores
        ctx.log.error("anomaly model not loaded, scoring by the rule alone: %s: %s", type(e).__name__, str(e)[:300])
        return None
    if s is not None:
        ctx.log.info("scoring with %s", s.label)
    return s


def _decode(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _read_bounded(obj) -> bytes:
    """An object's body, never more than a message's limit + 1 byte (a larger one is rejected as
    too large without being held in memory)."""
    from include.security.events import MAX_MESSAGE_BYTES

    body = obj["Body"]
    try:
        return body.read(MAX_MESSAGE_BYTES + 1)
    finally:
        body.close()


def stream_messages(ctx: JobContext, entries: list) -> list:
    """Stream entries -> messages (an entry naming a raw payload object is read from S3)."""
    from include.security.store import PAYLOAD_BUCKET, Message

    out = []
    for entry_id, fields in entries:
        ref = _decode(entry_id)
        f = {_decode(k): v for k, v in (fields or {}).items()}
        if "event" in f:
            out.append(Message(ref, "redis", f["event"]))
        elif "payload_key" in f:
            key = _decode(f["payload_key"])
            eid = _decode(f["event_id"]) if "event_id" in f else os.path.basename(key).removesuffix(".json")
            try:
                obj = ctx.clients.s3.get_object(Bucket=PAYLOAD_BUCKET, Key=key)
            except ctx.clients.s3.exceptions.NoSuchKey:
                out.append(Message(ref, "redis", key, event_id=eid,
                                   error=(f"payload_key: no object {PAYLOAD_BUCKET}/{key[:200]}", "missing_payload")))
                continue
            out.append(Message(ref, "redis", _read_bounded(obj), event_id=eid))
        else:
            out.append(Message(ref, "redis", repr(sorted(f))[:300],
                               error=("stream entry has neither 'event' nor 'payload_key'", "bad_entry")))
    return out


def consume_queue(ctx: JobContext) -> dict:
    """Drain `queue:events:pending` (bounded by max_messages, or by drain_seconds when set)."""
    import redis

    from include.security.store import BatchResult, after_commit, ingest_batch

    r = ctx.clients.redis
    stream = ctx.params["stream"]
    idle_ms = int(float(ctx.params["claim_idle_seconds"]) * 1000)
    try:
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    consumer = f"{socket.gethostname()}:{os.getpid()}"
    cfg = _config(ctx)
    size, limit = int(ctx.params["batch_size"]), int(ctx.params["max_messages"])
    deadline = time.monotonic() + float(ctx.params["drain_seconds"])
    total, claimed = BatchResult(), 0

    def batches() -> Iterator[list]:
        nonlocal claimed
        start = "0-0"
        while True:  # first what killed runs left pending
            nxt, entries, *_ = r.xautoclaim(stream, GROUP, consumer, idle_ms, start_id=start, count=size)
            if entries:
                claimed += len(entries)
                yield [e for e in entries if e[1] is not None]
            start = _decode(nxt)
            if start == "0-0" or not entries:
                break
        while True:
            block = None
            if time.monotonic() < deadline:
                block = max(1, int(min(1.0, deadline - time.monotonic()) * 1000))
            got = r.xreadgroup(GROUP, consumer, {stream: ">"}, count=size, block=block)
            entries = got[0][1] if got else []
            if entries:
                yield entries
            elif time.monotonic() >= deadline:
                return

    for entries in batches():
        if not entries:
            continue
        res = ingest_batch(ctx.clients, stream_messages(ctx, entries), cfg, finalize=False)
        r.xack(stream, GROUP, *[e[0] for e in entries])  # only now: the batch is durable
        total.add(res)
        if total.received >= limit:
            break
    trimmed = _trim(r, stream)
    out = total.as_dict()
    out.update(claimed_from_dead_consumers=claimed, trimmed=trimmed, **after_commit(ctx.clients, total.hours))
    return out


def _trim(r, stream: str) -> int:
    """Trim entries every consumer of the group has acknowledged (below the oldest pending entry
    and the group's last delivered id)."""
    groups = {_decode(g["name"]): g for g in r.xinfo_groups(stream)}
    g = groups.get(GROUP)
    if not g:
        return 0
    minid = _decode(g["last-delivered-id"])
    pending = r.xpending(stream, GROUP)
    if pending and pending.get("pending"):
        minid = min(minid, _decode(pending["min"]), key=lambda s: tuple(int(x) for x in s.split("-")))
    return int(r.xtrim(stream, minid=minid, approximate=False) or 0) if minid != "0-0" else 0


def ingest_raw_payloads(ctx: JobContext) -> dict:
    """Raw payload objects of the interval's days (and the day before) not yet in the ledger."""
    from include.security.events import event_uuid
    from include.security.store import PAYLOAD_BUCKET, BatchResult, Message, after_commit, ingest_batch

    s3 = ctx.clients.s3
    start, end = ctx.interval.start - timedelta(days=1), ctx.interval.end
    days, d = [], start.date()
    while d <= end.date():
        days.append(d)
        d += timedelta(days=1)
    limit, size = int(ctx.params["max_messages"]), int(ctx.params["batch_size"])
    keys: list[str] = []
    for day in days:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=PAYLOAD_BUCKET, Prefix=f"{RAW_PREFIX}{day:%Y/%m/%d}/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    ids = {k: os.path.basename(k).removesuffix(".json") for k in keys}
    with ctx.clients.db() as conn:  # already an event, a folded duplicate or a rejected message
        done = {r["receipt_id"] for r in conn.execute(
            "SELECT receipt_id FROM event_receipts WHERE receipt_id = ANY(%s)", ([f"id:{v}" for v in ids.values()],))}
        by_uuid = {event_uuid(v): v for v in ids.values()}
        done |= {f"id:{by_uuid[r['id']]}" for r in conn.execute(
            "SELECT id FROM events WHERE id = ANY(%s)", (list(by_uuid),))} if by_uuid else set()
    todo = [k for k in sorted(keys) if f"id:{ids[k]}" not in done][:limit]
    total, cfg = BatchResult(), _config(ctx)
    for i in range(0, len(todo), size):
        chunk = todo[i:i + size]
        msgs = []
        for k in chunk:
            body = _read_bounded(s3.get_object(Bucket=PAYLOAD_BUCKET, Key=k))
            msgs.append(Message(k, "raw_object", body, event_id=ids[k]))
        total.add(ingest_batch(ctx.clients, msgs, cfg, finalize=False))
    out = total.as_dict()
    out.update(after_commit(ctx.clients, total.hours))
    out.update(objects_listed=len(keys), objects_new=len(todo))
    return out


def ingest_comb_outputs(ctx: JobContext) -> dict:
    """New Parquet outputs of the configured stream combs, one message per row."""
    import io

    import pyarrow.parquet as pq

    from include.honeycomb.config import combs_dir, load_comb_file
    from include.honeycomb.windows import OutputLocation
    from include.security.store import BatchResult, Message, after_commit, ingest_batch

    s3, size = ctx.clients.s3, int(ctx.params["batch_size"])
    total, objects, missing = BatchResult(), 0, []
    lo = ctx.interval.start - timedelta(days=31)
    for name in ctx.params.get("event_combs") or []:
        path = combs_dir() / f"{name}.yaml"
        if not path.exists():
            missing.append(name)
            continue
        comb = load_comb_file(path)
        if comb.type != "stream":
            missing.append(f"{name} (not a stream comb)")
            continue
        loc = OutputLocation.for_comb(comb)
        keys = []
        for prefix in loc.months_between(lo, ctx.interval.end):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
                keys += [(o["Key"], o.get("ETag", "").strip('"')) for o in page.get("Contents", [])
                         if o["Key"].endswith(".parquet")]
        with ctx.clients.db() as conn:
            done = {r["object_key"] for r in conn.execute(
                "SELECT object_key FROM event_source_objects WHERE object_key = ANY(%s)",
                ([f"s3://{loc.bucket}/{k}" for k, _ in keys],))}
        for key, etag in sorted(keys):
            ref = f"s3://{loc.bucket}/{key}"
            if ref in done:
                continue
            pf = pq.ParquetFile(io.BytesIO(s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read()))
            n = 0
            for batch in pf.iter_batches(batch_size=size):  # rows become dicts one batch at a time
                msgs = []
                for r in batch.to_pylist():
                    r = {k: v for k, v in r.items() if v is not None and not k.startswith("__")}
                    msgs.append(Message(f"{ref}#{n}", "comb_output", json.dumps(r, default=str, sort_keys=True)))
                    n += 1
                total.add(ingest_batch(ctx.clients, msgs, _config(ctx), finalize=False))
            with ctx.clients.db() as conn:
                conn.execute("""INSERT INTO event_source_objects (object_key, etag, rows_read) VALUES (%s, %s, %s)
                                ON CONFLICT (object_key) DO UPDATE SET etag = EXCLUDED.etag, rows_read = EXCLUDED.rows_read,
                                    ingested_at = NOW()""", (ref, etag, n))
            objects += 1
    out = total.as_dict()
    out.update(objects_read=objects, **after_commit(ctx.clients, total.hours))
    if missing:
        out["combs_not_found"] = missing
    return out


JOB = Job(
    name="event_ingestion",
    schedule="* * * * *",
    pool="events",  # the real-time path: its own slot, never behind a backfill or a long job
    description="Honeypot events from queue:events:pending and event-payloads/raw/ into `events`: validated, "
                "normalised to ECS, enriched (GeoLite2 snapshot, IOC matches), de-duplicated, scored, stored once, "
                "alerted on.",
    steps=(
        Step("consume_queue", consume_queue, "drain the Redis stream (consumer group, ack after commit)",
             timeout=timedelta(minutes=15)),
        Step("ingest_raw_payloads", ingest_raw_payloads, "raw payload objects of the interval's days",
             timeout=timedelta(minutes=15)),
        Step("ingest_comb_outputs", ingest_comb_outputs, "new Parquet outputs of the stream combs in event_combs",
             timeout=timedelta(minutes=15)),
    ),
    params={
        "stream": Param(STREAM, "string", "the Redis stream to consume (the seed's queue by default)",
                        {"minLength": 1, "maxLength": 200}),
        "claim_idle_seconds": Param(60, "number", "entries pending this long belong to a consumer that died and "
                                    "are claimed", {"minimum": 0}),
        "max_messages": Param(50_000, "integer", "at most this many messages per step and run", {"minimum": 1}),
        "batch_size": Param(500, "integer", "messages per transaction", {"minimum": 1, "maximum": 5000}),
        "drain_seconds": Param(0, "number", "keep reading the stream this long (0: until it is empty)",
                               {"minimum": 0, "maximum": 600}),
        "dedup_window_seconds": Param(60, "integer", "identical events within this window are stored once",
                                      {"minimum": 1}),
        "alert_threshold": Param(7, "integer", "threat level (0-10) from which an event raises an alert",
                                 {"minimum": 0, "maximum": 10}),
        "alert_window_seconds": Param(3600, "integer", "repeats of an alert (same rule, source, jar) within this "
                                      "window update one alert", {"minimum": 60}),
        "write_payloads": Param(True, "boolean", "write processed payloads to event-payloads/processed/"),
        "use_anomaly_model": Param(True, "boolean", "add the promoted anomaly detector's score (weekly_ml_training) "
                                   "to the threat level, recording its version in events.scored_by"),
        "event_combs": Param(["sample_events_stream"], "array", "stream combs whose Parquet outputs are honeypot "
                             "events (one event per row)", {"items": {"type": "string"}}),
    },
    retries=3,
    retry_delay=timedelta(seconds=10),
    tags=("security", "events"),
)

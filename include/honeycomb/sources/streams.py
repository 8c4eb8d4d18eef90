"""stream combs: Redis Streams and NATS JetStream.

Modes
- continuous: resume after the last delivered message.
  * Redis: a consumer group (`sting_<comb>` unless set). Messages are read with XREADGROUP (first
    this consumer's pending ones, i.e. read by a run that died, then new ones) and acknowledged
    (XACK) only after the run's output is published and its checkpoint committed (the comb DAG's
    `acknowledge` step). The checkpoint (last delivered id) also makes the ack step idempotent: a
    message read again after a crash between commit and ack is acknowledged, not delivered twice.
  * NATS JetStream: the stream keeps its messages (limits retention); the checkpoint is the last
    delivered stream sequence, committed with the run's output, and each run reads from the next
    sequence with an ephemeral ordered consumer (no server-side ack state to go out of step).
- time_window_snapshot: the messages whose timestamps fall in the run's window (its data
  interval; the whole stream for a snapshot), read without a group and without acking.
A message whose payload is not a JSON object is rejected alone (its id is reported).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from include.honeycomb.sources import Extract, SourceReadError, parse_json_record

# -- Redis Streams ---------------------------------------------------------------------------

def _id_tuple(i: str) -> tuple[int, int]:
    ms, _, seq = i.partition("-")
    return int(ms), int(seq or 0)


def redis_client(comb, secret: dict | None):
    import redis

    p = comb.parameters
    secret = secret or {}
    return redis.Redis(host=p.host, port=p.port, db=p.db, username=secret.get("username"),
                       password=secret.get("password"), decode_responses=False, socket_timeout=30)


def group_name(comb) -> str:
    return comb.parameters.group or f"sting_{comb.name}"


def _record(comb, msg_id: str, fields: dict, ex: Extract) -> dict | None:
    p = comb.parameters
    ref = f"stream '{p.stream}' message {msg_id}"
    if fields is None:  # deleted from the stream while pending
        ex.reject(ref, f"{ref}: message was deleted from the stream")
        return None
    fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in fields.items()}
    try:
        if p.payload_field:
            if p.payload_field not in fields:
                raise ValueError(f"{ref}: no field '{p.payload_field}'")
            rec = parse_json_record(fields[p.payload_field], ref)
        else:
            rec = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}
    except (ValueError, UnicodeDecodeError) as e:
        ex.reject(ref, str(e))
        return None
    rec["_stream_id"] = msg_id
    return rec


def read_redis(comb, secret: dict | None, state: dict | None, window, snapshot: bool) -> Extract:
    import redis

    p = comb.parameters
    r = redis_client(comb, secret)
    ex = Extract()
    records: list[dict] = []
    try:
        if p.mode == "time_window_snapshot" or snapshot:
            lo = "-" if window.start is None else str(int(window.start.timestamp() * 1000))
            hi = f"({int(window.end.timestamp() * 1000)}-0"  # exclusive end of the window
            cursor = lo
            while len(records) + ex.rejected < p.max_messages:
                batch = r.xrange(p.stream, min=cursor, max=hi, count=p.read_count)
                if not batch:
                    break
                for mid, fields in batch:
                    mid = mid.decode()
                    rec = _record(comb, mid, fields, ex)
                    if rec is not None:
                        records.append(rec)
                cursor = "(" + batch[-1][0].decode()
            ex.info = {"mode": "time_window_snapshot", "messages": len(records) + ex.rejected}
        else:
            group = group_name(comb)
            try:
                r.xgroup_create(p.stream, group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            last = (state or {}).get("last_id")
            last_t = _id_tuple(last) if last else (-1, -1)
            newest = last
            already, read = 0, 0
            # Pending first (read by a run that did not finish), then new messages.
            for start in ("0", ">"):
                pending_from = start
                while read < p.max_messages:
                    resp = r.xreadgroup(group, p.consumer, {p.stream: pending_from}, count=p.read_count)
                    entries = resp[0][1] if resp else []
                    if not entries:
                        break
                    for mid, fields in entries:
                        mid = mid.decode()
                        if _id_tuple(mid) <= last_t:
                            already += 1  # delivered by a committed run; the ack step acks it
                            continue
                        read += 1
                        rec = _record(comb, mid, fields, ex)
                        if rec is not None:
                            records.append(rec)
                        if newest is None or _id_tuple(mid) > _id_tuple(newest):
                            newest = mid
                    if start == "0":
                        pending_from = entries[-1][0].decode()
            ex.state = {"last_id": newest} if newest else state
            ex.info = {"mode": "continuous", "group": group, "messages": read, "already_delivered": already}
    except redis.RedisError as e:  # wrong password / no permission: no retry helps
        permanent = isinstance(e, (redis.AuthenticationError, redis.exceptions.NoPermissionError,
                                   redis.exceptions.AuthenticationWrongNumberOfArgsError))
        raise SourceReadError(f"comb '{comb.name}': redis stream '{p.stream}' at {p.host}:{p.port}: {e}",
                              permanent) from None
    finally:
        r.close()
    ex.add_records(records)
    return ex


def ack_redis(comb, secret: dict | None, state: dict | None) -> int:
    """Acknowledge every pending message of this comb's consumer up to the committed checkpoint."""
    p = comb.parameters
    last = (state or {}).get("last_id")
    if p.mode != "continuous" or not last:
        return 0
    last_t = _id_tuple(last)
    r = redis_client(comb, secret)
    acked = 0
    try:
        start = "-"
        while True:
            pend = r.xpending_range(p.stream, group_name(comb), min=start, max=last, count=1000,
                                    consumername=p.consumer)
            ids = [e["message_id"] for e in pend if _id_tuple(e["message_id"].decode()) <= last_t]
            if not ids:
                break
            acked += r.xack(p.stream, group_name(comb), *ids)
            start = "(" + ids[-1].decode()
    finally:
        r.close()
    return acked


# -- NATS JetStream --------------------------------------------------------------------------

async def _read_nats(comb, secret: dict | None, state: dict | None, window, snapshot: bool, ex: Extract) -> list[dict]:
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    p = comb.parameters
    secret = secret or {}
    opts = {"servers": p.servers, "connect_timeout": 5, "allow_reconnect": False, "max_reconnect_attempts": 0}
    if secret.get("token"):
        opts["token"] = secret["token"]
    elif secret.get("username"):
        opts.update(user=secret["username"], password=secret.get("password"))
    nc = await nats.connect(**opts)
    records: list[dict] = []
    try:
        js = nc.jetstream()
        info = await js.stream_info(p.stream)
        last_seq_at_start = info.state.last_seq
        windowed = p.mode == "time_window_snapshot" or snapshot
        if windowed:
            if window.start is not None:
                cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME,
                                     opt_start_time=window.start.isoformat().replace("+00:00", "Z"))
            else:
                cfg = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        else:
            start_seq = int((state or {}).get("last_seq", 0)) + 1
            cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_seq)
        sub = await js.subscribe(p.subject or ">", stream=p.stream, ordered_consumer=True, config=cfg,
                                 pending_msgs_limit=p.fetch_batch * 4)
        newest = (state or {}).get("last_seq", 0)
        count = 0
        try:
            while count < p.max_messages and newest < last_seq_at_start:
                try:
                    msg = await sub.next_msg(timeout=p.fetch_timeout_seconds)
                except nats.errors.TimeoutError:
                    break
                seq = msg.metadata.sequence.stream
                if seq > last_seq_at_start:
                    break
                ts: datetime = msg.metadata.timestamp
                if windowed and window.end is not None and ts >= window.end:
                    break
                newest = seq
                count += 1
                ref = f"stream '{p.stream}' sequence {seq}"
                try:
                    rec = parse_json_record(msg.data, ref)
                except ValueError as e:
                    ex.reject(ref, str(e))
                    continue
                rec["_stream_seq"] = seq
                rec["_subject"] = msg.subject
                records.append(rec)
        finally:
            await sub.unsubscribe()
        if not windowed:
            ex.state = {"last_seq": newest}
        ex.info = {"mode": "time_window_snapshot" if windowed else "continuous", "messages": count,
                   "last_seq": newest}
    finally:
        await nc.close()
    return records


def read_nats(comb, secret: dict | None, state: dict | None, window, snapshot: bool) -> Extract:
    ex = Extract()
    try:
        records = asyncio.run(_read_nats(comb, secret, state, window, snapshot, ex))
    except SourceReadError:
        raise
    except Exception as e:
        p = comb.parameters
        raise SourceReadError(f"comb '{comb.name}': NATS JetStream stream '{p.stream}' at {', '.join(p.servers)}: "
                              f"{type(e).__name__}: {e}") from None
    ex.add_records(records)
    return ex

"""The comb's data path: extract a window (scrubbed at the source) to a staging Parquet object,
then publish it at the window's deterministic, year/month-partitioned key.

Memory stays flat: Arrow batches stream from the source into a ParquetWriter whose output is a
multipart upload to object storage. Only references and counts are returned.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include import storage
from include.honeycomb.config import CombDefinition
from include.honeycomb.sources.database import SCRUBBED_FLAG, Credentials
from include.honeycomb.windows import OutputLocation, RunWindow

log = logging.getLogger(__name__)
_SEP = "\x1f"


def _utc_cursor(arr):
    """The incremental column as UTC timestamps, whatever its type is now or was when an older
    output was written (timestamptz, timestamp, date): keys and bounds compare equal across a
    type change of the column."""
    if pa.types.is_date(arr.type):
        arr = pc.cast(arr, pa.timestamp("us"))
    if pa.types.is_timestamp(arr.type):
        arr = pc.cast(arr, pa.timestamp("us", tz="UTC"))
    return arr


def _row_keys(table_or_batch, pk: list[str], inc: str) -> pa.Array:
    cols = [pc.cast(table_or_batch.column(c), pa.string()) for c in pk]
    cols.append(pc.cast(_utc_cursor(table_or_batch.column(inc)), pa.string()))
    return pc.binary_join_element_wise(*cols, _SEP)


def _pk_keys(table_or_batch, pk: list[str]) -> pa.Array:
    """The primary key alone, as one string per row (the key of a row whatever its cursor)."""
    cols = [pc.cast(table_or_batch.column(c), pa.string()) for c in pk]
    return cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, _SEP)


@contextmanager
def _app_conn(conn=None, dsn: str | None = None):
    """The caller's connection (the delivery lock's), or one of our own (benchmarks, tests)."""
    if conn is not None:
        yield conn
        return
    import psycopg

    from include.settings import get_settings

    with psycopg.connect(dsn or get_settings().app_dsn, autocommit=True) as c:
        yield c


def neighbor_outputs(comb: CombDefinition, window: RunWindow, execution_type: str = "continuous_flow",
                     conn=None) -> list[str]:
    """Keys of other outputs whose windows overlap this window's read range (widened by the
    lookback on both sides: an output's rows reach back a lookback before its start), found in the
    register of published windows whatever their length or month (include/honeycomb/outputs.py)."""
    from include.honeycomb import outputs

    loc = OutputLocation.for_comb(comb, execution_type)
    lookback = comb.configuration.extraction.lookback
    with _app_conn(conn) as c:
        return outputs.overlapping(c, loc, window.start - lookback, window.end + lookback, loc.final_key(window))


def _read_columns(bucket: str, key: str, columns: list[str]) -> pa.Table | None:
    """Some columns of an output object; None when it does not exist (registered, never published)."""
    c = storage.s3_client()
    try:
        body = c.get_object(Bucket=bucket, Key=key)["Body"].read()
    except c.exceptions.NoSuchKey:
        return None
    return pq.read_table(io.BytesIO(body), columns=columns)


def _keys_in_range(t: pa.Table, ex, lo, hi) -> pa.Array | None:
    inc = _utc_cursor(t.column(ex.incremental_column))
    utc = pa.timestamp("us", tz="UTC")
    t = t.filter(pc.and_(pc.greater_equal(inc, pa.scalar(lo, utc)), pc.less(inc, pa.scalar(hi, utc))))
    return _row_keys(t, ex.primary_key, ex.incremental_column) if t.num_rows else None


def delivered_keys(comb: CombDefinition, window: RunWindow, execution_type: str = "continuous_flow",
                   conn=None) -> pa.Array | None:
    """(primary key, incremental value) of rows that other outputs already delivered and that
    this window will read again (its lookback): the rows to drop so nothing is delivered twice."""
    ex = comb.configuration.extraction
    loc = OutputLocation.for_comb(comb, execution_type)
    read_from = window.read_from(ex.lookback)
    parts = []
    for key in neighbor_outputs(comb, window, execution_type, conn):
        t = _read_columns(loc.bucket, key, [*ex.primary_key, ex.incremental_column])
        keys = _keys_in_range(t, ex, read_from, window.end) if t is not None else None
        if keys is not None:
            parts.append(keys)
    if not parts:
        return None
    return pa.chunked_array(parts).combine_chunks().unique()


def prefetch(batches: Iterator, depth: int = 2) -> Iterator:
    """Read the next batches in a thread while the caller scrubs and writes this one: the
    driver's reading (network, decoding: C++ without the GIL) overlaps the worker's hashing.
    At most `depth` batches wait in memory."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done, stop, error = object(), threading.Event(), []

    def put(item) -> bool:
        """Hand an item over unless the consumer stopped (then it never reads again)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for b in batches:
                if not put(b):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            error.append(e)
        finally:
            put(done)

    t = threading.Thread(target=produce, name="sting-prefetch", daemon=True)
    t.start()
    try:
        while True:
            b = q.get()
            if b is done:
                break
            yield b
    finally:
        stop.set()
        t.join(timeout=30)
    if error:
        raise error[0]


PROGRESS_EVERY = 15.0  # seconds between progress lines of a long extraction


def extract_to_file(
    comb: CombDefinition, window: RunWindow, creds: Credentials, salt: str | None, path,
    execution_type: str = "continuous_flow", token_vault=None, null_cursor: bool = False,
    hash_key_version: str | None = None, conn=None, keep_keys: pa.Array | None = None,
    collect_keys: bool = False,
) -> dict:
    """Stream the window (or, with `null_cursor`, the rows whose incremental column is NULL) into
    a Parquet file (a path or a writable file-like object). Returns counts and the schema.

    `salt` is the `hash` action's HMAC key: it stays here, in the worker (pseudonyms are computed
    on the Arrow batches); `hash_key_version` goes into the file's metadata."""
    ex = comb.configuration.extraction
    out = comb.configuration.output
    skip = (delivered_keys(comb, window, execution_type, conn)
            if window.mode == "incremental" and not null_cursor and keep_keys is None else None)
    rows = scrubbed = duplicates = 0
    written_keys: list[pa.Array] = []
    from include.honeycomb.config import PUSHDOWN_ACTIONS

    if comb.subtype == "postgresql":
        from include.honeycomb.sources.postgres import stream_window
    else:  # mysql / mariadb
        from include.honeycomb.sources.mysql import stream_window
    with stream_window(comb, creds, window, null_cursor=null_cursor) as (schema, info, batches):
        flag_idx = schema.get_field_index(SCRUBBED_FLAG)
        keep_idx = [i for i in range(len(schema)) if i != flag_idx]
        # Actions SQL cannot (or must not: `hash`, whose key never leaves the worker) do run
        # here, on each batch, with the same engine every comb uses.
        arrow_side = {schema.get_field_index(c): d for c, d in info["decisions"].items()
                      if d[0] not in PUSHDOWN_ACTIONS}
        if any(d[0] == "hash" for d in arrow_side.values()) and not salt:
            from include.honeycomb.sources.database import SourceError

            raise SourceError(f"comb '{comb.name}': a 'hash' rule needs the hash key, none was given", permanent=True)
        scrub_cfg = comb.configuration.scrubbing
        engine = scrub_cfg.scrubber(salt, token_vault) if arrow_side else None
        out_schema = pa.schema([
            pa.field(schema.field(i).name, pa.string()) if i in arrow_side and arrow_side[i][0] != "generalize"
            else schema.field(i).remove_metadata() for i in keep_idx])
        if any(d[0] == "hash" for d in info["decisions"].values()):
            from include.privacy.actions import pseudonym_metadata

            out_schema = out_schema.with_metadata(pseudonym_metadata(hash_key_version))
        names = [f.name for f in out_schema]
        compression = None if out.compression == "none" else out.compression
        t0 = last = time.monotonic()
        with pq.ParquetWriter(path, out_schema, compression=compression) as writer:
            for batch in prefetch(batches):
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY:  # long extractions show they are moving
                    log.info("comb %s: %d rows written (%d scrubbed, %d already delivered) in %.0f s, %.0f rows/s",
                             comb.name, rows, scrubbed, duplicates, now - t0, rows / max(now - t0, 1e-9))
                    last = now
                if not batch.num_rows:
                    continue
                cols = [engine.apply(batch.column(i), *arrow_side[i]) if i in arrow_side else batch.column(i)
                        for i in keep_idx]
                outb = pa.RecordBatch.from_arrays(
                    [c.cast(f.type) if c.type != f.type else c for c, f in zip(cols, out_schema, strict=True)],
                    schema=out_schema)
                flags = batch.column(flag_idx)
                if keep_keys is not None:  # only these rows (by primary key, scrubbed as in the outputs)
                    keep = pc.is_in(_pk_keys(outb, ex.primary_key), value_set=keep_keys)
                    outb, flags = outb.filter(keep), pc.filter(flags, keep)
                if skip is not None:  # keys of the scrubbed rows: pseudonymised keys match the outputs'
                    seen = pc.is_in(_row_keys(outb, ex.primary_key, ex.incremental_column), value_set=skip)
                    n_seen = pc.sum(seen).as_py() or 0
                    if n_seen:
                        keep = pc.invert(seen)
                        outb, flags = outb.filter(keep), pc.filter(flags, keep)
                        duplicates += n_seen
                if not outb.num_rows:
                    continue
                scrubbed += pc.sum(pc.cast(flags, pa.int64())).as_py() or 0
                rows += outb.num_rows
                if collect_keys:
                    written_keys.append(_pk_keys(outb, ex.primary_key))
                writer.write_batch(outb)
    extra = {"row_keys": pa.chunked_array(written_keys, pa.string()).combine_chunks()} if collect_keys else {}
    return {**extra,
        "records_processed": rows,
        "records_scrubbed": scrubbed,
        "duplicates_skipped": duplicates,
        "columns": [{"name": n, "type": str(f.type)} for n, f in zip(names, out_schema, strict=True)],
        "scrub_plan": {c: a for c, (a, _) in info["decisions"].items()},
        "hash_key_version": (hash_key_version or "1") if out_schema.metadata else None,
    }


@contextmanager
def delivery_lock(comb: CombDefinition, execution_type: str = "continuous_flow", dsn: str | None = None):
    """Serialise the deliveries of one comb's dataset (its output prefix) across processes.

    A window decides which rows it delivers from what its neighbours' outputs hold, so deciding
    and publishing must not interleave with a neighbour doing the same (a backfill runs up to 10
    runs at once by default). A session-level advisory lock in the application database, held
    from the read of the neighbours' outputs until this window's output is published; a killed
    process releases it with its connection."""
    import psycopg

    from include.settings import get_settings

    loc = OutputLocation.for_comb(comb, execution_type)
    name = f"honey_comb_delivery:{loc.bucket}/{loc.prefix}"
    conn = psycopg.connect(dsn or get_settings().app_dsn, autocommit=True,
                           application_name=f"sting-delivery-lock-{comb.name}"[:63])
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()[0]
        if not got:
            log.info("comb %s: another run is delivering this comb's windows; waiting for it", comb.name)
            t0 = time.monotonic()
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
            log.info("comb %s: delivery lock acquired after %.1fs", comb.name, time.monotonic() - t0)
        yield conn
    finally:
        conn.close()  # releases the lock


def extract_and_publish(
    comb: CombDefinition, window: RunWindow, creds: Credentials, salt: str | None,
    execution_type: str = "continuous_flow", token_vault=None, dsn: str | None = None,
    hash_key_version: str | None = None,
) -> dict:
    """A database comb's window, delivered exactly once whatever runs beside it: under the comb's
    delivery lock, drop what neighbouring outputs hold and stream the rest straight to the
    window's final key as a multipart upload (parts go out while the source is still being read);
    the object is replaced only when the upload completes, so a failed or killed run leaves the
    previous output as it was, and no staging copy is needed."""
    loc = OutputLocation.for_comb(comb, execution_type)
    with delivery_lock(comb, execution_type, dsn) as conn:
        key = loc.final_key(window)
        if window.mode == "incremental":  # registered before the upload: a killed one leaves no unknown object
            from include.honeycomb import outputs

            outputs.register(conn, loc, key, window.start, window.end)
        published = _write_final(comb, window, creds, salt, execution_type, token_vault, hash_key_version,
                                 key, null_cursor=False, conn=conn)
        if window.mode == "incremental":
            published["null_cursor"] = _null_cursor_rows(comb, window, creds, salt, execution_type, token_vault,
                                                         hash_key_version, conn)
        return published


def _write_final(comb, window, creds, salt, execution_type, token_vault, hash_key_version, key: str,
                 null_cursor: bool, conn=None, before_publish=None) -> dict:
    """Stream the window into `key`. `before_publish(result)` runs once the rows are written and
    before the object replaces the previous one (a failure there leaves the previous one)."""
    loc = OutputLocation.for_comb(comb, execution_type)
    # Uploads to this key left by an earlier, killed attempt (nobody else writes it while we
    # hold the delivery lock).
    storage.abort_uploads(loc.bucket, key, exact=True)
    with storage.atomic_upload(loc.bucket, key, {"data-classification": comb.classification}) as sink:
        result = extract_to_file(comb, window, creds, salt, sink, execution_type, token_vault, null_cursor,
                                 hash_key_version, conn=conn, collect_keys=before_publish is not None)
        if before_publish is not None:
            result.update(before_publish(result.pop("row_keys")) or {})
    log.info("comb %s window %s: %d rows (%d scrubbed, %d already delivered) -> s3://%s/%s", comb.name,
             window.tag, result["records_processed"], result["records_scrubbed"], result["duplicates_skipped"],
             loc.bucket, key)
    return {"bucket": loc.bucket, "key": key, "uri": storage.uri(loc.bucket, key), "window": window.as_dict(),
            **result, "sha256": sink.sha256.hexdigest(), "bytes": sink.size}


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)  # the start of "every window before this one"


def _null_cursor_rows(comb: CombDefinition, window: RunWindow, creds: Credentials, salt: str | None,
                      execution_type: str, token_vault, hash_key_version: str | None = None, conn=None) -> dict:
    """Rows whose incremental column is NULL belong to no window. Policy `deliver` (default):
    every incremental run rewrites the comb's null-cursor object with the rows that are NULL now
    (each such row is there exactly once, in its current version, until it gets a cursor value
    and is delivered by that value's window). A row that leaves the null set with a value in a
    window already behind this run's read range would be in no output: it is delivered here, in
    a `filled_in_past` object (`_deliver_filled_in_past`). Policy `fail`: the run fails while
    any NULL exists."""
    policy = comb.configuration.extraction.null_cursor
    ex = comb.configuration.extraction
    inc = ex.incremental_column
    loc = OutputLocation.for_comb(comb, execution_type)
    if policy == "fail":  # counted (streamed to nowhere), not kept
        n = extract_to_file(comb, window, creds, salt, os.devnull, execution_type, token_vault, True)["records_processed"]
        if n:
            from include.honeycomb.sources.database import SourceError

            raise SourceError(f"comb '{comb.name}': {n} row(s) have a NULL incremental column '{inc}' "
                              "(null_cursor: fail)", permanent=True)
        return {"rows": 0, "policy": policy}
    previous = _read_columns(loc.bucket, loc.null_cursor_key(), ex.primary_key)

    def filled(now_null: pa.Array) -> dict:
        # runs before the new null-cursor object replaces the old one: a failure here leaves the
        # old one, and the next run finds the same rows again
        left = None
        if previous is not None and previous.num_rows:
            before = _pk_keys(previous, ex.primary_key)
            left = pc.filter(before, pc.invert(pc.is_in(before, value_set=now_null))).unique()
        if left is None or not len(left):
            # a retry of a run that delivered such rows already (and then rewrote the null set)
            prior = _describe_filled(comb, window, loc, conn)
            return {"filled_in_past": prior} if prior else {}
        return {"filled_in_past": _deliver_filled_in_past(comb, window, creds, salt, execution_type, token_vault,
                                                           hash_key_version, left, conn)}

    ref = _write_final(comb, window, creds, salt, execution_type, token_vault, hash_key_version,
                       loc.null_cursor_key(), null_cursor=True, conn=conn, before_publish=filled)
    if ref["records_processed"]:
        log.warning("comb %s: %d row(s) have a NULL %s: delivered in %s", comb.name, ref["records_processed"], inc,
                    ref["uri"])
    return {**ref, "rows": ref["records_processed"], "policy": policy}


def _filled_key(loc: OutputLocation, window: RunWindow) -> str:
    # (not named like a window: `parse_interval_from_key` never mistakes it for one)
    return f"{loc.prefix}/filled_in_past/{loc.comb}__filled_in_past__{window.tag}__late.parquet"


def _describe_filled(comb: CombDefinition, window: RunWindow, loc: OutputLocation, conn) -> dict | None:
    """The filled-in-past object an earlier attempt of this window published, if any."""
    key = _filled_key(loc, window)
    row = conn.execute("SELECT window_start, window_end FROM honey_comb_output_windows WHERE bucket = %s AND key = %s",
                       (loc.bucket, key)).fetchone()
    if not row:
        return None
    c = storage.s3_client()
    try:
        body = c.get_object(Bucket=loc.bucket, Key=key)["Body"].read()
    except c.exceptions.NoSuchKey:
        return None
    meta = pq.ParquetFile(io.BytesIO(body))
    lo, hi = (row[0], row[1]) if isinstance(row, tuple) else (row["window_start"], row["window_end"])
    n = meta.metadata.num_rows
    import hashlib

    return {"left_null": 0, "rows": n, "bucket": loc.bucket, "key": key, "uri": storage.uri(loc.bucket, key),
            "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
            "values_from": lo.isoformat(), "values_to": hi.isoformat(), "windows": [], "records_processed": n,
            "records_scrubbed": 0, "columns": [{"name": f.name, "type": str(f.type)} for f in meta.schema_arrow],
            "window": {"mode": "incremental", "start": lo.isoformat(), "end": hi.isoformat(), "tag": "filled_in_past"},
            "replayed": True}


def _deliver_filled_in_past(comb: CombDefinition, window: RunWindow, creds: Credentials, salt: str | None,
                            execution_type: str, token_vault, hash_key_version: str | None, left: pa.Array,
                            conn) -> dict:
    """Rows that left the null set since the last run. Those whose value lies in this run's read
    range are in its output; later ones will be in a later window's. Those before it are read
    here (one pass over the source's rows before this run's range, keeping only these keys),
    less any an output already holds (a window cut after the row got its value), and delivered
    in one object registered with the span of their values, so a later re-cut of those windows
    sees them as delivered. Returns counts and the windows they fall in (for the run's note)."""
    from include.honeycomb import outputs

    ex = comb.configuration.extraction
    loc = OutputLocation.for_comb(comb, execution_type)
    read_from = window.read_from(ex.lookback)
    out = {"left_null": len(left), "rows": 0, "windows": []}
    if read_from <= EARLIEST:
        return out
    before = RunWindow("incremental", EARLIEST + ex.lookback, read_from)  # reads [EARLIEST, read_from)
    buf = io.BytesIO()
    res = extract_to_file(comb, before, creds, salt, buf, execution_type, token_vault, False, hash_key_version,
                          conn=conn, keep_keys=left)
    table = pq.read_table(io.BytesIO(buf.getvalue()))
    if not table.num_rows:
        return out
    values = _utc_cursor(table.column(ex.incremental_column))
    held = outputs.containing(conn, loc, [v for v in values.to_pylist() if v is not None])
    seen = []
    for key, _, _ in held:
        t = _read_columns(loc.bucket, key, [*ex.primary_key, ex.incremental_column])
        if t is not None:
            seen.append(_row_keys(t, ex.primary_key, ex.incremental_column))
    if seen:
        dup = pc.is_in(_row_keys(table, ex.primary_key, ex.incremental_column),
                       value_set=pa.chunked_array(seen).combine_chunks())
        table = table.filter(pc.invert(dup))
    if not table.num_rows:
        return out
    values = _utc_cursor(table.column(ex.incremental_column))
    lo, hi = pc.min(values).as_py(), pc.max(values).as_py() + timedelta(microseconds=1)
    key = _filled_key(loc, window)
    outputs.register(conn, loc, key, lo, hi, kind="filled_in_past")
    storage.abort_uploads(loc.bucket, key, exact=True)
    with storage.atomic_upload(loc.bucket, key, {"data-classification": comb.classification}) as sink:
        pq.write_table(table, sink, compression=None if comb.configuration.output.compression == "none"
                       else comb.configuration.output.compression)
    windows = sorted({(s.isoformat(), e.isoformat()) for _, s, e in held
                      if any(s <= v < e for v in values.to_pylist())})
    log.warning("comb %s: %d row(s) got a %s value in an earlier window since the last run (%s .. %s): delivered "
                "in s3://%s/%s", comb.name, table.num_rows, ex.incremental_column, lo.isoformat(), hi.isoformat(),
                loc.bucket, key)
    return {**out, "rows": table.num_rows, "bucket": loc.bucket, "key": key, "uri": storage.uri(loc.bucket, key),
            "sha256": sink.sha256.hexdigest(), "bytes": sink.size,
            "values_from": lo.isoformat(), "values_to": hi.isoformat(), "windows": [list(w) for w in windows][:50],
            "records_processed": table.num_rows, "records_scrubbed": min(res["records_scrubbed"], table.num_rows),
            "columns": res["columns"], "window": {"mode": "incremental", "start": lo.isoformat(), "end": hi.isoformat(),
                                                  "tag": "filled_in_past"}}


def publish(comb: CombDefinition, window: RunWindow, staged: dict, execution_type: str = "continuous_flow",
            suffix: str = "") -> dict:
    """Move the staged object to the window's final key (overwriting a previous run's)."""
    if staged.get("replay") or staged.get("key"):  # already published (a replay, or under the delivery lock)
        return staged
    loc = OutputLocation.for_comb(comb, execution_type)
    key = loc.final_key(window, suffix)
    c = storage.s3_client()
    c.copy_object(
        Bucket=loc.bucket, Key=key, CopySource={"Bucket": staged["bucket"], "Key": staged["staging_key"]},
        MetadataDirective="REPLACE", ContentType="application/vnd.apache.parquet",
        Metadata={"data-classification": comb.classification},
    )
    c.delete_object(Bucket=staged["bucket"], Key=staged["staging_key"])
    ref = {k: v for k, v in staged.items() if k != "staging_key"}
    ref.update({"bucket": loc.bucket, "key": key, "uri": storage.uri(loc.bucket, key)})
    return ref


def discard_staging(comb: CombDefinition, window: RunWindow, execution_type: str = "continuous_flow",
                    suffix: str = "") -> None:
    loc = OutputLocation.for_comb(comb, execution_type)
    key = loc.staging_key(window, suffix)
    storage.delete(loc.bucket, key)
    storage.delete(loc.bucket, key + ".manifest.json")  # checkpointed combs' manifest
    storage.abort_uploads(loc.bucket, key, exact=True)  # a killed writer's incomplete upload


def sweep_staging(comb: CombDefinition, older_than: timedelta) -> dict:
    """Staging objects and incomplete uploads of this comb older than `older_than` (left by runs
    killed so hard that not even their failure handler ran), and incomplete uploads to its
    final keys (database combs write those directly)."""
    loc = OutputLocation.for_comb(comb)  # snapshot_generation staging lies below it
    out = storage.sweep(loc.bucket, f"_staging/{loc.prefix}/", older_than)
    out["uploads"] += storage.abort_uploads(loc.bucket, f"{loc.prefix}/", older_than)
    return out

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
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include import storage
from include.honeycomb.config import CombDefinition
from include.honeycomb.sources.database import SCRUBBED_FLAG, Credentials
from include.honeycomb.windows import OutputLocation, RunWindow, parse_interval_from_key

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


def neighbor_outputs(comb: CombDefinition, window: RunWindow, execution_type: str = "continuous_flow") -> list[str]:
    """Keys of other intervals' outputs whose read ranges overlap this window's read range."""
    loc = OutputLocation.for_comb(comb, execution_type)
    lookback = comb.configuration.extraction.lookback
    lo, hi = window.start - lookback, window.end + lookback
    own = loc.final_key(window)
    keys = []
    for prefix in loc.months_between(lo - timedelta(days=31), hi):
        for obj in storage.list_keys(loc.bucket, prefix):
            iv = parse_interval_from_key(obj["Key"])
            if obj["Key"] != own and iv and iv[0] < hi and iv[1] > lo:
                keys.append(obj["Key"])
    return keys


def delivered_keys(comb: CombDefinition, window: RunWindow, execution_type: str = "continuous_flow") -> pa.Array | None:
    """(primary key, incremental value) of rows that other intervals already delivered and that
    this window will read again (its lookback): the rows to drop so nothing is delivered twice."""
    ex = comb.configuration.extraction
    loc = OutputLocation.for_comb(comb, execution_type)
    read_from = window.read_from(ex.lookback)
    parts = []
    for key in neighbor_outputs(comb, window, execution_type):
        body = storage.s3_client().get_object(Bucket=loc.bucket, Key=key)["Body"].read()
        t = pq.read_table(io.BytesIO(body), columns=[*ex.primary_key, ex.incremental_column])
        inc = _utc_cursor(t.column(ex.incremental_column))
        utc = pa.timestamp("us", tz="UTC")
        t = t.filter(pc.and_(pc.greater_equal(inc, pa.scalar(read_from, utc)), pc.less(inc, pa.scalar(window.end, utc))))
        if t.num_rows:
            parts.append(_row_keys(t, ex.primary_key, ex.incremental_column))
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
    hash_key_version: str | None = None,
) -> dict:
    """Stream the window (or, with `null_cursor`, the rows whose incremental column is NULL) into
    a Parquet file (a path or a writable file-like object). Returns counts and the schema.

    `salt` is the `hash` action's HMAC key: it stays here, in the worker (pseudonyms are computed
    on the Arrow batches); `hash_key_version` goes into the file's metadata."""
    ex = comb.configuration.extraction
    out = comb.configuration.output
    skip = delivered_keys(comb, window, execution_type) if window.mode == "incremental" and not null_cursor else None
    rows = scrubbed = duplicates = 0
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
                writer.write_batch(outb)
    return {
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
        yield
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
    with delivery_lock(comb, execution_type, dsn):
        published = _write_final(comb, window, creds, salt, execution_type, token_vault, hash_key_version,
                                 loc.final_key(window), null_cursor=False)
        if window.mode == "incremental":
            published["null_cursor"] = _null_cursor_rows(comb, window, creds, salt, execution_type, token_vault,
                                                         hash_key_version)
        return published


def _write_final(comb, window, creds, salt, execution_type, token_vault, hash_key_version, key: str,
                 null_cursor: bool) -> dict:
    loc = OutputLocation.for_comb(comb, execution_type)
    # Uploads to this key left by an earlier, killed attempt (nobody else writes it while we
    # hold the delivery lock).
    storage.abort_uploads(loc.bucket, key, exact=True)
    with storage.atomic_upload(loc.bucket, key, {"data-classification": comb.classification}) as sink:
        result = extract_to_file(comb, window, creds, salt, sink, execution_type, token_vault, null_cursor,
                                 hash_key_version)
    log.info("comb %s window %s: %d rows (%d scrubbed, %d already delivered) -> s3://%s/%s", comb.name,
             window.tag, result["records_processed"], result["records_scrubbed"], result["duplicates_skipped"],
             loc.bucket, key)
    return {"bucket": loc.bucket, "key": key, "uri": storage.uri(loc.bucket, key), "window": window.as_dict(),
            **result, "sha256": sink.sha256.hexdigest(), "bytes": sink.size}


def _null_cursor_rows(comb: CombDefinition, window: RunWindow, creds: Credentials, salt: str | None,
                      execution_type: str, token_vault, hash_key_version: str | None = None) -> dict:
    """Rows whose incremental column is NULL belong to no window. Policy `deliver` (default):
    every incremental run rewrites the comb's null-cursor object with the rows that are NULL now
    (each such row is there exactly once, in its current version, until it gets a cursor value
    and is delivered by that value's window). Policy `fail`: the run fails while any exists."""
    policy = comb.configuration.extraction.null_cursor
    inc = comb.configuration.extraction.incremental_column
    loc = OutputLocation.for_comb(comb, execution_type)
    if policy == "fail":  # counted (streamed to nowhere), not kept
        n = extract_to_file(comb, window, creds, salt, os.devnull, execution_type, token_vault, True)["records_processed"]
        if n:
            from include.honeycomb.sources.database import SourceError

            raise SourceError(f"comb '{comb.name}': {n} row(s) have a NULL incremental column '{inc}' "
                              "(null_cursor: fail)", permanent=True)
        return {"rows": 0, "policy": policy}
    ref = _write_final(comb, window, creds, salt, execution_type, token_vault, hash_key_version,
                       loc.null_cursor_key(), null_cursor=True)
    if ref["records_processed"]:
        log.warning("comb %s: %d row(s) have a NULL %s: delivered in %s", comb.name, ref["records_processed"], inc,
                    ref["uri"])
    return {**ref, "rows": ref["records_processed"], "policy": policy}


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

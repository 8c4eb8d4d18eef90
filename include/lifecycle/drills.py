"""Restore drills: each kind of backup restored into a scratch server on a loopback port and
verified, with RTO (wall time to a verified restore) and RPO (target time minus the newest data the
restore holds) checked against the seed's objectives for its data tier. A drill that cannot restore
(a damaged or missing backup) or whose checks fail is recorded as failed, naming why.

Tiers: PostgreSQL is critical (RTO 1 h, RPO 15 min), Redis standard (4 h / 1 h: hourly
snapshots of caches, queues and hot statistics), Chroma archive (24 h / 24 h: daily snapshots;
vectors are derived data, re-embeddable from the documents PostgreSQL keeps).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

OBJECTIVES = {  # tier -> (RTO seconds, RPO seconds), the seed's rto_rpo
    "critical": (3600.0, 900.0),
    "standard": (4 * 3600.0, 3600.0),
    "archive": (24 * 3600.0, 24 * 3600.0),
}
TIERS = {"postgres": "critical", "redis": "standard", "chroma": "archive"}
# Tables compared between the source (at the target time) and the restore: count and a checksum.
VERIFY_TABLES = ("users", "honey_jars", "documents", "honey_combs", "honey_comb_executions", "threat_intel",
                 "alerts", "job_runs", "restore_markers")


class DrillFailed(RuntimeError):
    pass


@dataclass
class Drill:
    kind: str
    run_id: str | None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    backup_id: int | None = None
    target_time: datetime | None = None
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    checks: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def tier(self) -> str:
        return TIERS[self.kind]

    @property
    def passed(self) -> bool:
        rto, rpo = OBJECTIVES[self.tier]
        return (self.error is None and all(c.get("ok") for c in self.checks.values())
                and self.rto_seconds is not None and self.rto_seconds <= rto
                and self.rpo_seconds is not None and self.rpo_seconds <= rpo)

    def failure(self) -> str:
        if self.error:
            return self.error
        bad = [k for k, c in self.checks.items() if not c.get("ok")]
        if bad:
            return "checks failed: " + ", ".join(f"{k} ({self.checks[k]})" for k in bad)
        rto, rpo = OBJECTIVES[self.tier]
        return (f"objectives missed for the {self.tier} tier: RTO {self.rto_seconds:.0f}s (<= {rto:.0f}s), "
                f"RPO {self.rpo_seconds:.0f}s (<= {rpo:.0f}s)")


def record(clients, d: Drill) -> dict:
    from psycopg.types.json import Jsonb

    rto, rpo = OBJECTIVES[d.tier]
    status = "passed" if d.passed else "failed"
    with clients.db() as conn:
        conn.execute(
            """INSERT INTO restore_drills (run_id, kind, tier, backup_id, target_time, started_at, finished_at, rto_seconds,
                                           rpo_seconds, rto_objective_seconds, rpo_objective_seconds, status, checks, error)
               VALUES (%s, %s, %s, %s, %s, %s, NOW(), %s, %s, %s, %s, %s, %s, %s)""",
            (d.run_id, d.kind, d.tier, d.backup_id, d.target_time, d.started_at, d.rto_seconds, d.rpo_seconds, rto, rpo,
             status, Jsonb(d.checks), None if d.passed else d.failure()))
    return {"kind": d.kind, "tier": d.tier, "status": status, "rto_seconds": d.rto_seconds, "rpo_seconds": d.rpo_seconds,
            "backup_id": d.backup_id, **({"error": d.failure()} if not d.passed else {})}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None) -> None:
    """A scratch server stopped: SIGTERM, then SIGKILL after 20 s."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _latest(clients, kind: str, backup_id: int | None = None) -> dict | None:
    with clients.db() as conn:
        if backup_id:
            return conn.execute("SELECT * FROM backup_catalog WHERE id = %s AND kind = %s", (backup_id, kind)).fetchone()
        return conn.execute("SELECT * FROM backup_catalog WHERE kind = %s AND status = 'ok' ORDER BY finished_at DESC "
                            "LIMIT 1", (kind,)).fetchone()


def _s3_key(location: str, bucket: str) -> str:
    return location.removeprefix(f"s3://{bucket}/")


# ---------------------------------------------------------------- PostgreSQL: point in time
def table_checksums(conn, tables=VERIFY_TABLES) -> dict:
    out = {}
    for t in tables:
        if conn.execute("SELECT to_regclass(%s) AS r", (t,)).fetchone()["r"] is None:
            continue
        r = conn.execute(f"SELECT count(*) AS n, coalesce(sum(hashtext(t::text)::bigint), 0)::text AS s FROM {t} t").fetchone()
        out[t] = [int(r["n"]), r["s"]]
    return out


def mark_target(app_dsn: str, drill: str, archive_wait: float = 180) -> dict:
    """Markers around a target time on the live database: one committed before it, one after;
    the tables' counts and checksums as of the target; then the WAL switched and archived (a point
    in time is restorable once a commit after it is in the archive)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(app_dsn, autocommit=True, row_factory=dict_row) as c:
        # the exposure right now: how long ago a WAL segment last reached the repository
        lag = c.execute("SELECT extract(epoch FROM clock_timestamp() - last_archived_time) AS s FROM pg_stat_archiver"
                        ).fetchone()["s"]
        before = c.execute("INSERT INTO restore_markers (drill) VALUES (%s) RETURNING id, written_at",
                           (f"{drill}:before",)).fetchone()
        with c.transaction():
            c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            target = c.execute("SELECT clock_timestamp() AS t").fetchone()["t"]  # the snapshot is taken here
            reference = table_checksums(c)
        time.sleep(0.05)
        after = c.execute("INSERT INTO restore_markers (drill) VALUES (%s) RETURNING id, written_at",
                          (f"{drill}:after",)).fetchone()
        wal = c.execute("SELECT pg_walfile_name(pg_switch_wal()) AS w").fetchone()["w"]
        deadline = time.monotonic() + archive_wait
        while True:
            st = c.execute("SELECT last_archived_wal, last_failed_wal, last_failed_time FROM pg_stat_archiver").fetchone()
            if st["last_archived_wal"] and st["last_archived_wal"] >= wal:
                break
            if time.monotonic() > deadline:
                raise DrillFailed(f"WAL {wal} not archived after {archive_wait:.0f}s (last failed: "
                                  f"{st['last_failed_wal']} at {st['last_failed_time']}): is archiving on?")
            time.sleep(0.3)
    return {"target": target, "before": before, "after": after, "reference": reference, "wal": wal,
            "archive_lag_seconds": None if lag is None else float(lag)}


def drill_postgres(clients, br, app_dsn: str, workdir: Path, run_id: str | None = None,
                   target: dict | None = None) -> Drill:
    """Point-in-time restore of the application cluster into a scratch cluster; verified by the
    markers (the one before the target there, the one after not) and the tables' checksums."""
    import psycopg
    from psycopg.rows import dict_row

    from include.lifecycle.pgcluster import PgCluster

    d = Drill("postgres", run_id)
    drill = run_id or f"drill-{d.started_at:%Y%m%dT%H%M%S}"
    scratch = None
    try:
        target = target or mark_target(app_dsn, drill)
        d.target_time = target["target"]
        with clients.db() as conn:
            b = conn.execute("SELECT * FROM backup_catalog WHERE kind = 'postgres' AND status = 'ok' AND data_until < %s "
                             "ORDER BY data_until DESC LIMIT 1", (d.target_time,)).fetchone()
        if b is None:
            raise DrillFailed(f"no PostgreSQL backup finished before the target {d.target_time.isoformat()}")
        d.backup_id = b["id"]
        t0 = time.monotonic()
        datadir = workdir / "pg" / "data"
        if datadir.exists():
            shutil.rmtree(datadir)
        try:
            # the catalogued backup itself (pgBackRest's own choice by time compares whole seconds
            # and may take the one before it)
            br.restore(datadir, target_time=d.target_time.isoformat(sep=" "), set_label=b["label"])
        except Exception as e:
            raise DrillFailed(f"pgbackrest restore of backup {b['label']} failed: {str(e)[-900:]}") from e
        major = (datadir / "PG_VERSION").read_text().strip()
        bins = Path(f"/usr/lib/postgresql/{major}/bin")
        scratch = PgCluster(datadir, free_port(), **({"bin_dir": bins} if (bins / "postgres").exists() else {}))
        # the primary's settings (recovery needs max_connections etc. no lower), archiving off: a
        # scratch cluster never pushes WAL into the repository
        scratch.write_conf({"archive_mode": "off", "archive_command": "", "port": str(scratch.port),
                            "listen_addresses": "127.0.0.1", "shared_buffers": "128MB"}, merge=True)
        scratch.start()
        scratch.wait_ready(600)
        from psycopg.conninfo import conninfo_to_dict

        with psycopg.connect(scratch.dsn(conninfo_to_dict(app_dsn).get("dbname") or "postgres"),
                             row_factory=dict_row, autocommit=True) as c:
            present = {r["id"] for r in c.execute("SELECT id FROM restore_markers WHERE id = ANY(%s)",
                                                  ([target["before"]["id"], target["after"]["id"]],))}
            got = table_checksums(c)
            newest = c.execute("SELECT max(written_at) AS t FROM restore_markers WHERE written_at <= %s",
                               (d.target_time,)).fetchone()["t"]
        d.rto_seconds = time.monotonic() - t0
        d.checks["marker_before_target_present"] = {"ok": target["before"]["id"] in present}
        d.checks["marker_after_target_absent"] = {"ok": target["after"]["id"] not in present}
        diff = {t: {"source": target["reference"][t], "restored": got.get(t)} for t in target["reference"]
                if got.get(t) != target["reference"][t]}
        d.checks["tables_match"] = {"ok": not diff, "tables": len(target["reference"]), **({"differ": diff} if diff else {})}
        d.rpo_seconds = (d.target_time - newest).total_seconds() if newest else None
        # informational: the WAL archive's lag when the drill began (the RPO a crash then would have had)
        d.checks["archive_lag_before_drill"] = {"ok": True, "seconds": target.get("archive_lag_seconds")}
    except DrillFailed as e:
        d.error = str(e)
    except Exception as e:
        d.error = f"{type(e).__name__}: {str(e)[-900:]}"
    finally:
        if scratch is not None:
            try:
                scratch.stop("immediate")
            except Exception:
                pass
        shutil.rmtree(workdir / "pg", ignore_errors=True)
    return d


# ---------------------------------------------------------------- Redis
def drill_redis(clients, bucket: str, workdir: Path, run_id: str | None = None, backup_id: int | None = None) -> Drill:
    from include.lifecycle.backup import check_rdb, redis_tool

    d = Drill("redis", run_id, target_time=datetime.now(UTC))
    proc = None
    try:
        b = _latest(clients, "redis", backup_id)
        if b is None:
            raise DrillFailed("no Redis snapshot in the backup catalog")
        d.backup_id = b["id"]
        t0 = time.monotonic()
        rd = workdir / "redis"
        rd.mkdir(parents=True, exist_ok=True)
        try:
            data = clients.s3.get_object(Bucket=bucket, Key=_s3_key(b["location"], bucket))["Body"].read()
        except Exception as e:
            raise DrillFailed(f"Redis snapshot {b['location']} missing: {type(e).__name__}") from e
        sha = hashlib.sha256(data).hexdigest()
        if sha != b["checksum"]:
            raise DrillFailed(f"Redis snapshot {b['location']} damaged: sha256 {sha[:12]} != catalogued {b['checksum'][:12]}")
        (rd / "dump.rdb").write_bytes(data)
        try:
            keys, _ = check_rdb(rd / "dump.rdb")
        except RuntimeError as e:
            raise DrillFailed(str(e)) from e
        port = free_port()
        proc = subprocess.Popen([redis_tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(rd),
                                 "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"],
                                stdout=open(rd / "redis.log", "wb"), stderr=subprocess.STDOUT)
        import redis

        r = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 300
        while True:
            try:
                info = r.info("persistence")
                if not info.get("loading"):
                    break
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None:
                    tail = (rd / "redis.log").read_text(errors="replace")[-1500:]
                    raise DrillFailed(f"the scratch redis-server exited loading the snapshot: {tail}") from None
            if time.monotonic() > deadline:
                raise DrillFailed("the scratch redis-server did not load the snapshot in 300 s")
            time.sleep(0.1)
        restored = sum(v.get("keys", 0) for k, v in r.info("keyspace").items() if k.startswith("db"))
        d.rto_seconds = time.monotonic() - t0
        expected = int((b["detail"] or {}).get("keys", -1))
        d.checks["key_count_matches"] = {"ok": restored == expected == keys, "restored": restored, "catalogued": expected,
                                         "rdb_keys": keys}
        d.rpo_seconds = (d.target_time - b["data_until"]).total_seconds()
    except DrillFailed as e:
        d.error = str(e)
    except Exception as e:
        d.error = f"{type(e).__name__}: {str(e)[-900:]}"
    finally:
        _stop(proc)
        shutil.rmtree(workdir / "redis", ignore_errors=True)
    return d


# ---------------------------------------------------------------- Chroma
def _chroma_binary() -> str:
    exe = Path(sys.executable).parent / "chroma"
    return str(exe) if exe.exists() else (shutil.which("chroma") or "chroma")


def drill_chroma(clients, bucket: str, workdir: Path, run_id: str | None = None, backup_id: int | None = None) -> Drill:
    import io

    import chromadb
    import pyarrow.parquet as pq
    from chromadb.config import Settings as ChromaSettings

    from include.lifecycle.retention import collection_table, embedding_checksum, table_records

    d = Drill("chroma", run_id, target_time=datetime.now(UTC))
    proc = None
    try:
        b = _latest(clients, "chroma", backup_id)
        if b is None:
            raise DrillFailed("no Chroma snapshot in the backup catalog")
        d.backup_id = b["id"]
        t0 = time.monotonic()
        prefix = _s3_key(b["location"], bucket)
        try:
            body = clients.s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read()
        except Exception as e:
            raise DrillFailed(f"Chroma snapshot {b['location']} has no manifest: {type(e).__name__}") from e
        if hashlib.sha256(body).hexdigest() != b["checksum"]:
            raise DrillFailed(f"Chroma snapshot {b['location']}: manifest damaged (checksum)")
        manifest = json.loads(body)
        cd = workdir / "chroma"
        shutil.rmtree(cd, ignore_errors=True)
        cd.mkdir(parents=True)
        port = free_port()
        proc = subprocess.Popen([_chroma_binary(), "run", "--path", str(cd / "data"), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=open(cd / "chroma.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                    break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DrillFailed("the scratch Chroma server did not start") from None
                time.sleep(0.3)
        client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False))
        for c in manifest["collections"]:
            try:
                data = clients.s3.get_object(Bucket=bucket, Key=c["key"])["Body"].read()
            except Exception as e:
                raise DrillFailed(f"Chroma snapshot part {c['key']} missing: {type(e).__name__}") from e
            if hashlib.sha256(data).hexdigest() != c["sha256"]:
                raise DrillFailed(f"Chroma snapshot part {c['key']} damaged (checksum)")
            t = pq.read_table(io.BytesIO(data))
            coll = client.get_or_create_collection(c["name"], embedding_function=None, metadata=c.get("metadata") or None,
                                                   configuration=c.get("configuration") or None)
            ids, embs, docs, metas = table_records(t)
            step = client.get_max_batch_size()
            for i in range(0, len(ids), step):
                coll.upsert(ids=ids[i:i + step], embeddings=embs[i:i + step], documents=docs[i:i + step],
                            metadatas=metas[i:i + step])
            back = collection_table(coll)  # read back from the restored server
            got_ids, got_embs = back.column("id").to_pylist(), back.column("embedding").to_pylist()
            # the snapshot itself is intact (its embedding checksum, computed when it was taken) ...
            snap_ok = embedding_checksum(t) == c["embedding_checksum"]
            # ... and the restored server holds the same ids with the same vectors. Chroma rewrites a
            # vector on insert (cosine collections store it normalised), so a re-insert can differ in
            # the last float32 bit: compared with a tolerance of 1e-6, not bit for bit.
            import numpy as np

            snap = dict(zip(ids, embs, strict=True))
            worst, missing = 0.0, 0
            for i, e in zip(got_ids, got_embs, strict=True):
                if i not in snap:
                    missing += 1
                    continue
                worst = max(worst, float(np.max(np.abs(np.asarray(e, dtype=np.float64) - np.asarray(snap[i])))) if e else 0.0)
            ok = snap_ok and set(got_ids) == set(ids) and len(got_ids) == c["count"] and worst <= 1e-6
            d.checks[f"collection:{c['name']}"] = {"ok": ok, "restored": len(got_ids), "snapshot": c["count"],
                                                   "snapshot_checksum_ok": snap_ok, "max_abs_diff": worst,
                                                   "unknown_ids": missing}
        d.rto_seconds = time.monotonic() - t0
        d.rpo_seconds = (d.target_time - b["data_until"]).total_seconds()
    except DrillFailed as e:
        d.error = str(e)
    except Exception as e:
        d.error = f"{type(e).__name__}: {str(e)[-900:]}"
    finally:
        _stop(proc)
        shutil.rmtree(workdir / "chroma", ignore_errors=True)
    return d

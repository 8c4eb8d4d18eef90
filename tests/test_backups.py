"""Backups and restore drills against the real stack: pgBackRest with its repository in the S3
endpoint (WAL archived by the application cluster), Redis RDB snapshots, Chroma snapshots; each
restored into a scratch server on a loopback port and verified. Damaged backups fail their drill."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from include.clients import Clients
from include.jobs._backup_common import pgbackrest, scratch_dir
from include.lifecycle import backup, drills
from include.settings import get_settings

S = get_settings()


@pytest.fixture
def clients(stack):
    with Clients.from_settings() as c:
        yield c


@pytest.fixture
def workdir(stack):
    d = scratch_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_backup(stack):
    """A full backup of the application cluster (the drills restore from it plus the WAL archive)."""
    with Clients.from_settings() as c:
        return backup.backup_postgres(c, pgbackrest(), "full", S.backup_bucket, "test-full")


def test_backup_is_catalogued_with_tool_output_and_checksum(clients, pg_backup):
    with clients.db() as conn:
        rec = conn.execute("SELECT * FROM backup_catalog WHERE id = %s", (pg_backup["backup_id"],)).fetchone()
    assert rec["kind"] == "postgres" and rec["backup_type"] == "full" and rec["status"] == "ok"
    assert rec["location"].startswith(f"s3://{S.backup_bucket}/pgbackrest/backup/")
    assert rec["size_bytes"] > 0 and len(rec["checksum"]) == 64 and "backup command end" in rec["tool_output"]
    assert S.s3_secret_key not in rec["tool_output"], "the repository key never reaches the catalog"
    inc = backup.backup_postgres(clients, pgbackrest(), "incr", S.backup_bucket, "test-incr")
    assert inc["type"] == "incr"
    assert backup.scheduled_pg_type(datetime(2026, 1, 1, 2, tzinfo=UTC)) == "full"
    assert backup.scheduled_pg_type(datetime(2026, 1, 1, 8, tzinfo=UTC)) == "incr"


def test_point_in_time_restore_holds_exactly_the_rows_committed_before_the_target(clients, pg_backup, workdir):
    tag = uuid.uuid4().hex[:8]
    with clients.db() as conn:  # rows committed well after the backup, before the target
        for i in range(25):
            conn.execute("INSERT INTO restore_markers (drill) VALUES (%s)", (f"{tag}-pre-{i}",))
    d = drills.drill_postgres(clients, pgbackrest(), S.app_dsn, workdir, f"test-pitr-{tag}")
    out = drills.record(clients, d)
    assert out["status"] == "passed", out
    assert d.checks["marker_before_target_present"]["ok"] and d.checks["marker_after_target_absent"]["ok"]
    assert d.checks["tables_match"]["ok"] and d.checks["tables_match"]["tables"] >= 5
    assert 0 <= d.rpo_seconds < 5 and d.rto_seconds < 3600
    with clients.db() as conn:
        rec = conn.execute("SELECT * FROM restore_drills WHERE run_id = %s", (f"test-pitr-{tag}",)).fetchone()
    assert rec["status"] == "passed" and rec["tier"] == "critical" and rec["rpo_objective_seconds"] == 900


def test_a_damaged_postgres_backup_fails_its_drill(clients, pg_backup, workdir):
    """Bytes in the middle of the newest backup's largest data object (a bundle of data files)
    flipped in the repository: the restore detects it."""
    s3 = clients.s3
    label = backup.backup_postgres(clients, pgbackrest(), "full", S.backup_bucket, "test-to-damage")["label"]
    prefix = f"pgbackrest/backup/{S.pgbackrest_stanza}/{label}/"
    objs = [o for p in s3.get_paginator("list_objects_v2").paginate(Bucket=S.backup_bucket, Prefix=prefix)
            for o in p.get("Contents", []) if "/bundle/" in o["Key"] or "/pg_data/" in o["Key"]]
    victim = max(objs, key=lambda o: o["Size"])
    original = s3.get_object(Bucket=S.backup_bucket, Key=victim["Key"])["Body"].read()
    try:
        damaged = bytearray(original)
        mid = len(damaged) // 2
        damaged[mid:mid + 64] = bytes(b ^ 0xFF for b in damaged[mid:mid + 64])
        s3.put_object(Bucket=S.backup_bucket, Key=victim["Key"], Body=bytes(damaged))
        d = drills.drill_postgres(clients, pgbackrest(), S.app_dsn, workdir, f"test-damaged-{uuid.uuid4().hex[:6]}")
        out = drills.record(clients, d)
        assert out["status"] == "failed"
        assert "restore" in d.error and label in d.error, d.error
    finally:
        s3.put_object(Bucket=S.backup_bucket, Key=victim["Key"], Body=original)


def test_redis_snapshot_checked_restored_and_a_damaged_one_fails(clients, workdir):
    r = clients.redis
    keys = [f"test:backup:{uuid.uuid4().hex[:8]}:{i}" for i in range(20)]
    for k in keys:
        r.set(k, "v", ex=600)
    try:
        kw = r.connection_pool.connection_kwargs
        snap = backup.snapshot_redis(clients, kw["host"], kw["port"], S.backup_bucket, "test-redis")
        assert snap["keys"] >= 20
        d = drills.drill_redis(clients, S.backup_bucket, workdir, "test-redis", snap["backup_id"])
        out = drills.record(clients, d)
        assert out["status"] == "passed", (d.error, d.checks)
        assert d.checks["key_count_matches"]["restored"] == snap["keys"]
        # damaged: a byte flipped in the stored RDB
        with clients.db() as conn:
            loc = conn.execute("SELECT location FROM backup_catalog WHERE id = %s", (snap["backup_id"],)).fetchone()["location"]
        key = loc.removeprefix(f"s3://{S.backup_bucket}/")
        body = bytearray(clients.s3.get_object(Bucket=S.backup_bucket, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        clients.s3.put_object(Bucket=S.backup_bucket, Key=key, Body=bytes(body))
        bad = drills.drill_redis(clients, S.backup_bucket, workdir, "test-redis-bad", snap["backup_id"])
        assert not bad.passed and "damaged" in bad.error
        # missing
        clients.s3.delete_object(Bucket=S.backup_bucket, Key=key)
        gone = drills.drill_redis(clients, S.backup_bucket, workdir, "test-redis-gone", snap["backup_id"])
        assert not gone.passed and "missing" in gone.error
        # and the RDB check itself rejects a damaged file
        p = workdir / "bad.rdb"
        p.write_bytes(bytes(body))
        with pytest.raises(RuntimeError, match="redis-check-rdb rejects"):
            backup.check_rdb(p)
    finally:
        r.delete(*keys)


def test_chroma_snapshot_restores_ids_and_embeddings(clients, workdir):
    from include.documents import vectorstore

    coll = vectorstore.collection()
    jar = str(uuid.uuid4())
    ids = [f"test-backup-{jar}-{i}" for i in range(30)]
    vectorstore.upsert(coll, ids, [[float((i * 7 + j) % 11) / 11 for j in range(384)] for i in range(30)],
                       [f"chunk {i}" for i in range(30)], [{"honey_jar_id": jar, "document_id": jar} for _ in ids])
    try:
        snap = backup.snapshot_chroma(clients, vectorstore.client(), S.backup_bucket, "test-chroma")
        assert snap["vectors"] >= 30
        d = drills.drill_chroma(clients, S.backup_bucket, workdir, "test-chroma", snap["backup_id"])
        out = drills.record(clients, d)
        assert out["status"] == "passed", (d.error, d.checks)
        assert d.checks[f"collection:{vectorstore.DOCUMENTS}"]["restored"] >= 30
        # a damaged part fails the drill
        with clients.db() as conn:
            loc = conn.execute("SELECT location FROM backup_catalog WHERE id = %s", (snap["backup_id"],)).fetchone()["location"]
        key = loc.removeprefix(f"s3://{S.backup_bucket}/") + f"{vectorstore.DOCUMENTS}.parquet"
        clients.s3.put_object(Bucket=S.backup_bucket, Key=key, Body=b"not parquet")
        bad = drills.drill_chroma(clients, S.backup_bucket, workdir, "test-chroma-bad", snap["backup_id"])
        assert not bad.passed and "damaged" in bad.error
    finally:
        vectorstore.delete_ids(coll, ids)


def test_drill_fails_when_objectives_are_missed(clients):
    d = drills.Drill("redis", "objective", rto_seconds=1.0, rpo_seconds=2 * 3600.0, checks={"x": {"ok": True}})
    assert not d.passed and "RPO" in d.failure()
    d2 = drills.Drill("chroma", "objective", rto_seconds=1.0, rpo_seconds=2 * 3600.0, checks={"x": {"ok": True}})
    assert d2.passed, "the archive tier allows 24 hours"


def test_s3_versioning_and_replication(clients):
    key = f"test/{uuid.uuid4().hex}.txt"
    clients.s3.put_object(Bucket="threat-intel", Key=key, Body=b"v1")
    clients.s3.put_object(Bucket="threat-intel", Key=key, Body=b"v2")
    out = backup.replicate_buckets(clients, ("threat-intel",), "test-s3")
    assert out["objects_copied"] >= 1
    assert clients.s3.get_object(Bucket="threat-intel-replica", Key=key)["Body"].read() == b"v2"
    assert clients.s3.get_bucket_versioning(Bucket="threat-intel")["Status"] == "Enabled"
    assert backup.replicate_buckets(clients, ("threat-intel",), "test-s3")["objects_copied"] == 0, "a second run copies nothing"
    clients.s3.put_object(Bucket="threat-intel", Key=key, Body=b"v3")
    versions = clients.s3.list_object_versions(Bucket="threat-intel", Prefix=key)["Versions"]
    assert len(versions) >= 2, "older versions kept"
    for b in ("threat-intel", "threat-intel-replica"):
        for v in clients.s3.list_object_versions(Bucket=b, Prefix=key).get("Versions", []):
            clients.s3.delete_object(Bucket=b, Key=key, VersionId=v["VersionId"])


def test_snapshots_expire_after_their_retention(clients):
    kw = clients.redis.connection_pool.connection_kwargs
    snap = backup.snapshot_redis(clients, kw["host"], kw["port"], S.backup_bucket, "test-expire")
    n = backup.expire_snapshots(clients, "redis", S.backup_bucket, timedelta(hours=24), datetime.now(UTC) + timedelta(hours=25))
    assert n >= 1
    with clients.db() as conn:
        assert conn.execute("SELECT status FROM backup_catalog WHERE id = %s", (snap["backup_id"],)).fetchone()["status"] == "expired"


def test_backup_jobs_dry_run_change_nothing(clients):
    from include.jobs import load_job
    from include.jobs.runner import run_job

    with clients.db() as conn:
        before = conn.execute("SELECT count(*) AS n FROM backup_catalog").fetchone()["n"]
    labels = [b["label"] for b in pgbackrest().backups()]
    counts = {}
    for job in ("backup_postgres", "backup_redis", "backup_chroma", "backup_object_storage"):
        counts[job] = run_job(load_job(job), clients, run_key=f"dry-{uuid.uuid4().hex[:8]}", params={"dry_run": True})
    assert counts["backup_postgres"]["backup"]["would_take"] in ("full", "incr")
    assert counts["backup_redis"]["snapshot"]["dry_run"] and "objects_to_copy" in counts["backup_object_storage"]["replicate"]
    with clients.db() as conn:
        assert conn.execute("SELECT count(*) AS n FROM backup_catalog").fetchone()["n"] == before
    assert [b["label"] for b in pgbackrest().backups()] == labels

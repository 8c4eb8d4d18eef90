"""Retention sweeps against the real stack (application PostgreSQL, S3, Redis, Chroma).

Each test sweeps "as of" a synthetic instant a few months after a random month of a year long
gone, so the cut-offs reach only rows this test wrote (the sweep is global: anything older would be
swept too, and nothing else in the database is that old)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from include.clients import Clients
from include.lifecycle import retention as r


@pytest.fixture
def clients(stack):
    with Clients.from_settings() as c:
        yield c


def _old_month() -> datetime:
    """A month of a year long gone that no test has used in this database (no events, no archive)."""
    from include.db import connect

    with connect() as conn:
        while True:
            m = datetime(random.randint(1975, 1999), random.randint(1, 12), 1, tzinfo=UTC)
            used = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM event_archives WHERE range_start = %(m)s) OR EXISTS (SELECT 1 FROM events "
                "WHERE created_at >= %(m)s AND created_at < %(m)s + interval '1 month') AS u", {"m": m}).fetchone()["u"]
            if not used:
                return m


def _jar(conn, owner: str | None = None) -> str:
    return str(conn.execute("INSERT INTO honey_jars (name, config, owner_id) VALUES (%s, '{}', %s) RETURNING id",
                            (f"retention-{uuid.uuid4().hex[:8]}", owner)).fetchone()["id"])


def _events(conn, jar: str, month: datetime, n: int) -> list[str]:
    ids = []
    for i in range(n):
        t = month + timedelta(days=i % 27, seconds=i * 37, microseconds=i * 11)
        ids.append(str(conn.execute(
            "INSERT INTO events (honeyjar_id, event_type, source_ip, threat_level, payload, created_at, event_kind) "
            "VALUES (%s, 'cowrie.login.failed', %s, %s, %s, %s, 'login') RETURNING id",
            (jar, f"203.0.113.{i % 250}", i % 10, json.dumps({"i": i, "user": f"u{i}"}), t)).fetchone()["id"]))
    return ids


def _count(conn, month: datetime, jar: str | None = None) -> int:
    hi = (month + timedelta(days=32)).replace(day=1)
    q = "SELECT count(*) AS n FROM events WHERE created_at >= %s AND created_at < %s"
    args = [month, hi]
    if jar:
        q += " AND honeyjar_id = %s"
        args.append(jar)
    return conn.execute(q, args).fetchone()["n"]


def _sweep(clients, now, dry, **kw):
    pol = r.load_policies()
    return {(a.tier, a.action): a for a in r.sweep_events(clients, pol, now, dry, kw.get("batch", 50), 2000)}


def test_events_dry_run_equals_sweep_archive_read_back_before_drop_and_second_run_noop(clients):
    month = _old_month()
    now = month + timedelta(days=150)
    with clients.db() as conn:
        jar = _jar(conn)
        ids = _events(conn, jar, month, 180)
        ev = conn.execute("SELECT id, created_at FROM events WHERE id = %s", (ids[5],)).fetchone()
        alert = conn.execute("INSERT INTO alerts (event_id, event_created_at, alert_type, severity, title) "
                             "VALUES (%s, %s, 'test', 'low', 'retention') RETURNING id", (ev["id"], ev["created_at"])).fetchone()["id"]
        before = conn.execute("SELECT id::text AS id, created_at, payload::text AS payload, source_ip::text AS ip "
                              "FROM events WHERE honeyjar_id = %s ORDER BY id", (jar,)).fetchall()

    dry = _sweep(clients, now, True)
    with clients.db() as conn:
        assert _count(conn, month) == 180, "a dry run changes nothing"
        assert conn.execute("SELECT count(*) AS n FROM event_archives WHERE range_start = %s", (month,)).fetchone()["n"] == 0
    assert dry[("warm", "archive")].rows == 180 and dry[("warm", "delete")].rows == 180

    real = _sweep(clients, now, False)
    assert real[("warm", "archive")].rows == dry[("warm", "archive")].rows
    assert real[("warm", "delete")].rows == dry[("warm", "delete")].rows
    assert real[("warm", "archive")].objects == dry[("warm", "archive")].objects == 1
    with clients.db() as conn:
        assert _count(conn, month) == 0
        part = f"events_{month:%Y_%m}"
        assert conn.execute("SELECT to_regclass(%s) AS r", (part,)).fetchone()["r"] is None, "partition dropped"
        rec = conn.execute("SELECT * FROM event_archives WHERE range_start = %s", (month,)).fetchone()
        assert rec["rows"] == 180 and rec["verified_at"] is not None and rec["dropped_at"] is not None
        assert rec["verified_at"] <= rec["dropped_at"], "verified before the drop"
        a = conn.execute("SELECT event_id FROM alerts WHERE id = %s", (alert,)).fetchone()
        assert a["event_id"] is None, "alert kept, its reference cleared"
    # the archive read back from S3: the same rows
    table = r.verify_archive(clients.s3, rec)
    got = sorted(table.select(["id", "created_at", "payload", "source_ip"]).to_pylist(), key=lambda x: x["id"])
    assert [(g["id"], g["created_at"], json.loads(g["payload"]), g["source_ip"]) for g in got] == \
           [(b["id"], b["created_at"], json.loads(b["payload"]), b["ip"]) for b in before]

    again = _sweep(clients, now, False)
    assert again[("warm", "archive")].rows == 0 and again[("warm", "delete")].rows == 0
    assert again[("cold", "delete")].objects == 0

    # two years on, the archive is deleted (dry run first: the same count)
    later = month + timedelta(days=800)
    d2 = _sweep(clients, later, True)
    assert d2[("cold", "delete")].objects >= 1
    r2 = _sweep(clients, later, False)
    assert r2[("cold", "delete")].objects == d2[("cold", "delete")].objects
    with clients.db() as conn:
        assert conn.execute("SELECT deleted_at FROM event_archives WHERE range_start = %s", (month,)).fetchone()["deleted_at"]
    with pytest.raises(clients.s3.exceptions.NoSuchKey):
        clients.s3.get_object(Bucket=rec["bucket"], Key=rec["key"])


def test_dry_run_counts_the_archive_it_would_create_and_delete_in_the_same_run(clients):
    """Data already past the archives' own retention: the real run archives the month, verifies,
    drops it, then deletes the new archive; the dry run reports that archive in the cold tier too
    (before, it reported 0 archives to delete and the real run deleted one)."""
    month = _old_month()
    with clients.db() as conn:
        _events(conn, _jar(conn), month, 40)
    later = month + timedelta(days=800)
    dry = _sweep(clients, later, True)
    real = _sweep(clients, later, False)
    for tier in (("warm", "archive"), ("warm", "delete"), ("cold", "delete")):
        assert (dry[tier].rows, dry[tier].objects, dry[tier].held) == \
               (real[tier].rows, real[tier].objects, real[tier].held), tier
    assert dry[("cold", "delete")].objects >= 1 and dry[("cold", "delete")].detail["planned"] >= 1
    with clients.db() as conn:
        assert conn.execute("SELECT deleted_at FROM event_archives WHERE range_start = %s",
                            (month,)).fetchone()["deleted_at"] is not None


def test_legal_holds_keep_rows_partitions_and_archives(clients):
    month = _old_month()
    now = month + timedelta(days=150)
    with clients.db() as conn:
        free, kept = _jar(conn), _jar(conn)
        _events(conn, free, month, 40)
        _events(conn, kept, month, 25)
        hold = r.place_hold(conn, scope="jar", honeyjar_id=kept, reason="case 1234", created_by="test")
        range_hold = r.place_hold(conn, scope="event_range", range_start=month + timedelta(days=1),
                                  range_end=month + timedelta(days=2), reason="incident window")
        in_range = conn.execute("SELECT count(*) AS n FROM events WHERE honeyjar_id = %s AND created_at >= %s "
                                "AND created_at < %s", (free, month + timedelta(days=1), month + timedelta(days=2))).fetchone()["n"]
    assert in_range > 0
    dry = _sweep(clients, now, True)
    real = _sweep(clients, now, False)
    assert real[("warm", "delete")].rows == dry[("warm", "delete")].rows
    with clients.db() as conn:
        assert _count(conn, month, kept) == 25, "a jar on hold keeps every event"
        assert _count(conn, month, free) == in_range, "an event range on hold keeps its events"
        part = f"events_{month:%Y_%m}"
        assert conn.execute("SELECT to_regclass(%s) AS r", (part,)).fetchone()["r"] is not None, "never dropped whole"
        rec = conn.execute("SELECT * FROM event_archives WHERE range_start = %s", (month,)).fetchone()
        assert rec["rows"] == 65 and rec["dropped_at"] is None
    assert r.verify_archive(clients.s3, rec).num_rows == 65
    again = _sweep(clients, now, False)
    assert again[("warm", "delete")].rows == 0 and again[("warm", "archive")].rows == 0
    # the archive is never deleted while a hold covers it
    gone = _sweep(clients, month + timedelta(days=800), False)
    assert gone[("cold", "delete")].held >= 65
    with clients.db() as conn:
        assert conn.execute("SELECT deleted_at FROM event_archives WHERE range_start = %s", (month,)).fetchone()["deleted_at"] is None
        r.release_hold(conn, hold)
        r.release_hold(conn, range_hold)
    # released: the rest goes (from the archive already written), the partition is dropped
    _sweep(clients, now, False)
    with clients.db() as conn:
        assert _count(conn, month) == 0
        assert conn.execute("SELECT to_regclass(%s) AS r", (f"events_{month:%Y_%m}",)).fetchone()["r"] is None


def test_late_rows_into_an_archived_month_are_archived_not_lost(clients):
    month = _old_month()
    now = month + timedelta(days=150)
    with clients.db() as conn:
        jar = _jar(conn)
        _events(conn, jar, month, 30)
    _sweep(clients, now, False)
    with clients.db() as conn:  # late data for the dropped month lands in the default partition
        _events(conn, jar, month, 7)
    dry = _sweep(clients, now, True)
    assert dry[("warm", "archive")].rows == 7 and dry[("warm", "delete")].rows == 7
    _sweep(clients, now, False)
    with clients.db() as conn:
        recs = conn.execute("SELECT * FROM event_archives WHERE range_start = %s ORDER BY archived_at", (month,)).fetchall()
    assert [x["rows"] for x in recs] == [30, 7]
    assert sum(r.verify_archive(clients.s3, x).num_rows for x in recs) == 37


def test_user_data_deactivation_and_purge_respect_holds(clients):
    now = datetime.now(UTC)
    with clients.db() as conn:
        def user(**kw):
            return str(conn.execute(
                "INSERT INTO users (email, last_login, deleted_at, created_at) VALUES (%s, %s, %s, %s) RETURNING id",
                (f"{uuid.uuid4().hex[:10]}@example.test", kw.get("last_login"), kw.get("deleted_at"),
                 now - timedelta(days=400))).fetchone()["id"])
        active = user(last_login=now - timedelta(days=3))
        idle = user(last_login=now - timedelta(days=120))
        gone = user(last_login=now - timedelta(days=200), deleted_at=now - timedelta(days=45))
        held = user(deleted_at=now - timedelta(days=45))
        recent = user(deleted_at=now - timedelta(days=5))
        gone_jar = _jar(conn, gone)
        _events(conn, gone_jar, now - timedelta(days=2), 3)
        conn.execute("INSERT INTO file_assets (filename, original_filename, file_type, file_size, storage_backend, "
                     "storage_path, owner_id) VALUES ('a.pdf', 'a.pdf', 'pdf', 5, 'minio', %s, %s)",
                     (f"user-files/documents/{gone}/a.pdf", gone))
        r.place_hold(conn, scope="user", user_id=held, reason="litigation")
    clients.s3.put_object(Bucket="user-files", Key=f"documents/{gone}/a.pdf", Body=b"hello")
    pol = r.load_policies()
    dry = {a.tier: a for a in r.sweep_user_data(clients, pol, now, True, 100, 2000)}
    real = {a.tier: a for a in r.sweep_user_data(clients, pol, now, False, 100, 2000)}
    assert real["deleted"].rows == dry["deleted"].rows and real["deleted"].objects == dry["deleted"].objects == 1
    with clients.db() as conn:
        state = {str(x["id"]): x for x in conn.execute("SELECT * FROM users WHERE id = ANY(%s::uuid[])",
                                                       ([active, idle, gone, held, recent],))}
        assert state[active]["is_active"] and not state[idle]["is_active"] and state[idle]["deactivated_at"]
        assert gone not in state, "purged 30 days after soft deletion"
        assert held in state and recent in state
        assert conn.execute("SELECT count(*) AS n FROM honey_jars WHERE id = %s", (gone_jar,)).fetchone()["n"] == 0
    assert clients.s3.list_objects_v2(Bucket="user-files", Prefix=f"documents/{gone}/").get("KeyCount", 0) == 0
    again = {a.tier: a for a in r.sweep_user_data(clients, pol, now, False, 100, 2000)}
    assert again["inactive"].rows == 0 and again["deleted"].rows == 0 and again["deleted"].held >= 1


def test_bucket_rules_set_and_enforced_by_the_data_date(clients):
    now = datetime.now(UTC)
    jar, held_jar = str(uuid.uuid4()), str(uuid.uuid4())
    old = now - timedelta(days=120)
    keys = {f"{old:%Y/%m/%d}/{jar}/03.log.gz": True, f"{old:%Y/%m/%d}/{held_jar}/03.log.gz": False,
            f"{now:%Y/%m/%d}/{jar}/04.log.gz": False}
    for k in keys:
        clients.s3.put_object(Bucket="honeyjar-logs", Key=k, Body=b"x" * 10)
    with clients.db() as conn:
        conn.execute("INSERT INTO honey_jars (id, name, config) VALUES (%s, 'held', '{}')", (held_jar,))
        hold = r.place_hold(conn, scope="jar", honeyjar_id=held_jar, reason="case")
    pol = r.load_policies(overrides={"buckets": {"event-payloads": None, "threat-intel": None, "user-files": None,
                                                 "ai-models": None}})
    try:
        dry = {a.tier: a for a in r.sweep_buckets(clients, pol, now, True, 100, 2000)}
        real = {a.tier: a for a in r.sweep_buckets(clients, pol, now, False, 100, 2000)}
        assert real["honeyjar-logs"].objects == dry["honeyjar-logs"].objects >= 1
        for k, doomed in keys.items():
            present = clients.s3.list_objects_v2(Bucket="honeyjar-logs", Prefix=k).get("KeyCount", 0) == 1
            assert present is not doomed, k
        rules = clients.s3.get_bucket_lifecycle_configuration(Bucket="honeyjar-logs")["Rules"]
        assert any(x.get("Expiration", {}).get("Days") == 90 for x in rules)
        assert r.sweep_buckets(clients, pol, now, False, 100, 2000)[0].objects == 0
    finally:
        with clients.db() as conn:
            r.release_hold(conn, hold)


def test_system_accumulations_batched(clients):
    now = datetime.now(UTC) + timedelta(days=4000)  # everything is older than its cut-off ...
    pol = r.load_policies()
    # ... so count only: a dry run reports, nothing changes
    acts = {a.tier: a for a in r.sweep_system(clients, pol, now, True, 100, 2000)}
    with clients.db() as conn:
        n = conn.execute("SELECT count(*) AS n FROM job_runs WHERE status <> 'running'").fetchone()["n"]
    assert acts["job_runs"].rows == n


def test_policies_are_configuration_with_seed_defaults():
    p = r.load_policies()
    assert (p["events"]["hot_days"], p["events"]["warm_days"], p["events"]["delete_days"]) == (7, 90, 730)
    assert p["buckets"]["honeyjar-logs"] == 90 and p["buckets"]["event-payloads"] == 180
    assert p["buckets"]["threat-intel"] is None
    assert r.load_policies(overrides={"events": {"warm_days": 60}})["events"]["warm_days"] == 60
    with pytest.raises(ValueError, match="unknown key 'warm'"):
        r.load_policies(overrides={"events": {"warm": 60}})
    with pytest.raises(ValueError, match="unknown retention policy 'evnts'"):
        r.load_policies(overrides={"evnts": {}})


def test_idle_jar_vectors_archived_removed_from_chroma_and_restored(clients):
    from include.documents import vectorstore

    coll = vectorstore.collection()
    with clients.db() as conn:
        jar = _jar(conn)
        conn.execute("UPDATE honey_jars SET created_at = NOW() - interval '40 days', last_accessed = NOW() - interval '35 days' "
                     "WHERE id = %s", (jar,))
    ids = [f"test-ret-{jar}-{i}" for i in range(12)]
    embs = [[float((i + j) % 13) / 13 for j in range(384)] for i in range(12)]
    vectorstore.upsert(coll, ids, embs, [f"c{i}" for i in range(12)], [{"honey_jar_id": jar, "document_id": jar} for _ in ids])
    pol = r.load_policies()
    # "as of" 31 days after the jar's last use: jars made by other tests (now) are still current then
    at = datetime.now(UTC) - timedelta(days=35) + timedelta(days=31)
    try:
        dry = {a.tier: a for a in r.sweep_embeddings(clients, pol, at, True, 100, 2000)}
        assert dry["current"].rows >= 12
        real = {a.tier: a for a in r.sweep_embeddings(clients, pol, at, False, 100, 2000)}
        assert real["current"].rows == dry["current"].rows
        assert vectorstore.ids_where(coll, {"honey_jar_id": jar}) == []
        with clients.db() as conn:
            rec = conn.execute("SELECT * FROM embedding_archives WHERE honeyjar_id = %s", (jar,)).fetchone()
        assert rec["vectors"] == 12
        assert r.sweep_embeddings(clients, pol, at, False, 100, 2000)[0].rows == 0, "second run: nothing"
        out = r.restore_jar_vectors(clients, jar)
        assert out["vectors"] == 12
        got = coll.get(ids=ids, include=["embeddings"])
        assert sorted(got["ids"]) == sorted(ids)
        with clients.db() as conn:
            assert conn.execute("SELECT vectors_archived_at FROM honey_jars WHERE id = %s", (jar,)).fetchone()["vectors_archived_at"] is None
    finally:
        vectorstore.delete_ids(coll, ids)


def test_sweep_never_waits_long_behind_ingestion_and_finishes_next_run(clients):
    """An open ingestion transaction on `events` (a lock the detach needs): the sweep gives up
    after its lock timeout, naming the step; ingestion commits normally; the next sweep drops the
    month from the archive it had already written and verified."""
    import psycopg

    from include.settings import get_settings

    month = _old_month()
    now = month + timedelta(days=150)
    with clients.db() as conn:
        jar = _jar(conn)
        _events(conn, jar, month, 20)
    ingest = psycopg.connect(get_settings().app_dsn)
    try:
        ingest.execute("INSERT INTO events (honeyjar_id, event_type, created_at) VALUES (%s, 'live', NOW())", (jar,))
        with pytest.raises(r.SweepError, match="lock not granted within 300 ms"):
            r.sweep_events(clients, r.load_policies(), now, False, 50, 300)
        ingest.commit()  # ingestion was never blocked by the sweep
    finally:
        ingest.close()
    with clients.db() as conn:
        assert _count(conn, month) == 20, "nothing removed while the lock was refused"
        assert conn.execute("SELECT count(*) AS n FROM events WHERE honeyjar_id = %s AND event_type = 'live'",
                            (jar,)).fetchone()["n"] == 1
    again = _sweep(clients, now, False)
    assert again[("warm", "archive")].rows == 0, "the archive written before is reused, not written twice"
    assert again[("warm", "delete")].rows == 20
    with clients.db() as conn:
        assert _count(conn, month) == 0


def test_airflow_metadata_clean_fails_loudly(clients):
    """`airflow db clean` runs with --error-on-cleanup-failure (a dry run here: the metadata
    database is shared by every checkout)."""
    act = r.clean_airflow_metadata(datetime.now(UTC) - timedelta(days=30), dry_run=True)
    assert act.detail["exit"] == 0


def test_a_month_straddling_the_cutoff_is_never_archived_or_dropped(clients):
    month = _old_month()
    now = month + timedelta(days=90 + 14)  # the warm cut-off falls in the middle of the month
    with clients.db() as conn:
        jar = _jar(conn)
        _events(conn, jar, month, 30)
    dry = _sweep(clients, now, True)
    real = _sweep(clients, now, False)
    for acts in (dry, real):
        assert not any(m["partition"] == f"events_{month:%Y_%m}" for m in acts[("warm", "delete")].detail.get("months", []))
    with clients.db() as conn:
        assert _count(conn, month) == 30
        assert conn.execute("SELECT count(*) AS n FROM event_archives WHERE range_start = %s", (month,)).fetchone()["n"] == 0
    _sweep(clients, month + timedelta(days=150), False)  # once the whole month is past: archived, dropped
    with clients.db() as conn:
        assert _count(conn, month) == 0


def test_erasure_reaches_every_version_and_the_replica(clients):
    """After `backup_object_storage` turned versioning and replication on: a purged user's file
    (two versions, and a key whose current version was already deleted) and an expired
    embedding archive leave 0 versions in the bucket and 0 copies in its replica (listed by
    version); the next replication does not bring anything back."""
    from include.lifecycle import backup
    from include.lifecycle.erasure import remaining_copies

    now = datetime.now(UTC)
    backup.replicate_buckets(clients, ("user-files", "sting-archive"))  # versioning + replica on
    with clients.db() as conn:
        uid = str(conn.execute(
            "INSERT INTO users (email, last_login, deleted_at, created_at) VALUES (%s, %s, %s, %s) RETURNING id",
            (f"{uuid.uuid4().hex[:10]}@example.test", now - timedelta(days=200), now - timedelta(days=45),
             now - timedelta(days=400))).fetchone()["id"])
    s3 = clients.s3
    a, b = f"documents/{uid}/a.pdf", f"documents/{uid}/b.pdf"
    s3.put_object(Bucket="user-files", Key=a, Body=b"first version")
    s3.put_object(Bucket="user-files", Key=a, Body=b"second version")
    s3.put_object(Bucket="user-files", Key=b, Body=b"kept only as an earlier version")
    backup.replicate_buckets(clients, ("user-files",))
    s3.delete_object(Bucket="user-files", Key=b)  # a plain delete: a marker above a readable version
    assert remaining_copies(s3, "user-files", a) == {"versions": 2, "replica_versions": 1}
    assert remaining_copies(s3, "user-files", b)["versions"] == 2
    real = {x.tier: x for x in r.sweep_user_data(clients, r.load_policies(), now, False, 100, 2000)}
    mine = [u for u in real["deleted"].detail["users"] if u["user"] == uid][0]
    assert mine["objects"] == 2 and mine["erased"]["versions"] == 4 and mine["erased"]["replica_versions"] >= 2
    for key in (a, b):
        assert remaining_copies(s3, "user-files", key) == {"versions": 0, "replica_versions": 0}, key
    backup.replicate_buckets(clients, ("user-files",))
    for key in (a, b):
        assert remaining_copies(s3, "user-files", key) == {"versions": 0, "replica_versions": 0}, key
    # an archive erased with the retention path's deleter, the same way
    k = f"tests/erasure/{uuid.uuid4().hex}.parquet"
    s3.put_object(Bucket="sting-archive", Key=k, Body=b"v1")
    s3.put_object(Bucket="sting-archive", Key=k, Body=b"v2")
    backup.replicate_buckets(clients, ("sting-archive",))
    assert remaining_copies(s3, "sting-archive", k) == {"versions": 2, "replica_versions": 1}
    r._delete_keys(s3, "sting-archive", [k])
    assert remaining_copies(s3, "sting-archive", k) == {"versions": 0, "replica_versions": 0}
    # a replica copy whose source was erased by another path goes at the next replication
    k2 = f"tests/erasure/{uuid.uuid4().hex}.parquet"
    s3.put_object(Bucket="sting-archive", Key=k2, Body=b"x")
    backup.replicate_buckets(clients, ("sting-archive",))
    from include.lifecycle.erasure import erase_keys

    erase_keys(s3, "sting-archive", [k2], replicas=False)
    assert remaining_copies(s3, "sting-archive", k2) == {"versions": 0, "replica_versions": 1}
    out = backup.replicate_buckets(clients, ("sting-archive",))
    assert out["erased_in_replica"] >= 1
    assert remaining_copies(s3, "sting-archive", k2) == {"versions": 0, "replica_versions": 0}

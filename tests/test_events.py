"""Event ingestion against the real services (PostgreSQL, Redis, S3): validation per kind, ECS,
enrichment, de-duplication, scoring, alerts, exactly-once under redelivery and kills, partitions,
and the hourly rollup equal to a full recompute with late events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.clients import Clients
from include.jobs import load_job
from include.jobs.runner import run_job
from include.security import scoring
from include.security.events import Rejected, parse
from include.security.store import Message, ingest_batch
from tests.eventtools import events_of, full_recompute, jar_of, login, publish, rollup, sensor

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def clients(stack):
    c = Clients.from_settings()
    yield c
    c.close()


@pytest.fixture
def stream(clients):
    name = f"test:events:{uuid.uuid4().hex[:8]}"
    yield name
    clients.redis.delete(name)


def _ingest_conf(stream: str, **kw) -> dict:
    # the rule alone: a model promoted on this stack (make demo) would add its score to the levels
    return {"stream": stream, "claim_idle_seconds": 0, "write_payloads": True, "use_anomaly_model": False, **kw}


# ---------------------------------------------------------------- validation and ECS
def test_each_kind_validates_and_normalises_to_ecs():
    now = datetime.now(UTC)
    base = {"timestamp": now.isoformat(), "src_ip": "185.220.101.34", "sensor": "s"}
    cases = {
        "login_attempt": {"eventid": "cowrie.login.success", "username": "root", "password": "admin", "protocol": "telnet",
                          "dst_port": 23},
        "command": {"eventid": "cowrie.command.input", "input": "uname -a"},
        "malware_download": {"eventid": "cowrie.session.file_download", "url": "http://Evil.example.com:80/x#f",
                             "shasum": "A" * 64},
        "http_request": {"eventid": "http.request", "method": "get", "url": "/.env", "user_agent": "zgrab"},
        "port_scan": {"eventid": "scan.port", "dst_port": 3389, "transport": "tcp"},
    }
    for kind, extra in cases.items():
        e = parse(json.dumps({**base, **extra}), now=now)
        assert e.kind == kind and e.ecs["source"]["ip"] == "185.220.101.34"
        assert e.ecs["event"]["kind"] == "event" and e.ecs["event"]["category"]
    e = parse(json.dumps({**base, **cases["login_attempt"]}), now=now)
    assert e.ecs["user"]["name"] == "root" and e.ecs["event"]["outcome"] == "success"
    assert e.ecs["network"]["protocol"] == "telnet" and e.ecs["destination"]["port"] == 23
    e = parse(json.dumps({**base, **cases["malware_download"]}), now=now)
    assert e.ecs["url"]["original"] == "http://Evil.example.com:80/x#f" and e.ecs["file"]["hash"]["sha256"] == "a" * 64
    assert ("url", "http://evil.example.com/x") in e.iocs and ("domain", "evil.example.com") in e.iocs
    e = parse(json.dumps({**base, "src_ip": "2A03:2880:F10C:0083:FACE:B00C:0:25DE", **cases["port_scan"]}), now=now)
    assert e.source_ip == "2a03:2880:f10c:83:face:b00c:0:25de"


@pytest.mark.parametrize("raw,code", [
    ("{nope", "not_json"),
    ("[1, 2]", "not_object"),
    (json.dumps({"eventid": "cowrie.client.kex", "timestamp": "2026-11-01T00:00:00Z", "src_ip": "1.2.3.4"}), "unknown_kind"),
    (json.dumps({"eventid": "cowrie.login.failed", "timestamp": "2026-11-01T00:00:00Z", "src_ip": "1.2.3.400",
                 "username": "r", "sensor": "s"}), "invalid_field:src_ip"),
    (json.dumps({"eventid": "scan.port", "timestamp": "2026-11-01T00:00:00Z", "src_ip": "1.2.3.4", "dst_port": 70000,
                 "sensor": "s"}), "invalid_field:dst_port"),
    (json.dumps({"eventid": "cowrie.login.failed", "timestamp": "2099-01-01T00:00:00Z", "src_ip": "1.2.3.4",
                 "username": "r", "sensor": "s"}), "future_timestamp"),
    (json.dumps({"eventid": "cowrie.login.failed", "timestamp": "2026-11-01T00:00:00Z", "src_ip": "1.2.3.4",
                 "username": "r"}), "no_honeyjar"),
    ("x" * 70_000, "too_large"),
])
def test_malformed_messages_are_rejected_with_a_reason(raw, code):
    with pytest.raises(Rejected) as e:
        parse(raw, now=datetime(2026, 11, 25, tzinfo=UTC))
    assert e.value.code == code and str(e.value)


def test_a_malformed_event_is_rejected_alone_and_recorded(clients):
    s = sensor()
    good = [login(s, password=f"p{i}") for i in range(5)]
    msgs = [Message(f"t-{i}", "redis", json.dumps(m)) for i, m in enumerate(good)]
    bad_ref = f"t-bad-{s}"
    truncated = json.dumps({"eventid": "cowrie.login.failed", "src_ip": "10.0.0.1", "sensor": s})[:-1]
    msgs.insert(2, Message(bad_ref, "redis", truncated))
    r = ingest_batch(clients, msgs)
    assert (r.stored, r.rejected) == (5, 1)
    assert len(events_of(clients, s)) == 5
    with clients.db() as conn:
        row = conn.execute("SELECT status, reason, raw_excerpt FROM event_receipts WHERE source_ref = %s",
                           (bad_ref,)).fetchone()
    assert row["status"] == "rejected" and row["reason"].startswith("not JSON")


# ---------------------------------------------------------------- enrichment, scoring, dedup, alerts
def test_enrichment_offline_geo_private_ranges_and_ioc_matches(clients):
    s = sensor()
    import random

    ip = f"80.94.95.{random.randint(1, 254)}"  # RO; in no sample feed; a fresh (unscored) indicator
    private = f"192.168.{random.randint(0, 255)}.{random.randint(1, 254)}"  # fresh: no repetition from other runs
    with clients.db() as conn:
        conn.execute("DELETE FROM threat_intel WHERE ioc_value = %s", (ip,))
        from include.security.feeds import Indicator
        from include.security.intel import upsert_indicators

        upsert_indicators(conn, "test_feed", [Indicator("ip", ip, 0.9, "malicious-activity")], datetime.now(UTC))
    r = ingest_batch(clients, [Message("a", "redis", json.dumps(login(s, ip=ip))),
                               Message("b", "redis", json.dumps(login(s, ip=private, password="y"))),
                               Message("c", "redis", json.dumps(login(s, ip="203.0.113.7", password="z")))])
    assert r.stored == 3
    ev = {e["ip"]: e for e in events_of(clients, s)}
    pub = ev[ip]
    assert pub["country"] == "RO" and pub["asn_org"]
    assert pub["payload"]["source"]["geo"]["dataset"].startswith("MAXMIND:GeoLite2")
    enr = pub["payload"]["threat"]["enrichments"]
    assert enr[0]["indicator"]["value"] == ip and enr[0]["indicator"]["confidence"] == pytest.approx(0.9)
    assert ev[private]["payload"]["source"]["address_class"] == "private" and ev[private]["country"] is None
    assert ev["203.0.113.7"]["payload"]["source"]["address_class"] == "reserved"
    # the rule: failed login 3 + IOC round(4 * 0.9) = 4 -> 7
    assert pub["threat_level"] == 7 and ev[private]["threat_level"] == 3


def test_threat_level_rule():
    now = datetime.now(UTC)

    def ev(**kw):
        return parse(json.dumps({"timestamp": now.isoformat(), "src_ip": "1.2.3.4", "sensor": "s", **kw}), now=now)

    scan = ev(eventid="scan.port", dst_port=22)
    fail = ev(eventid="cowrie.login.failed", username="root")
    ok = ev(eventid="cowrie.login.success", username="root")
    probe = ev(eventid="http.request", method="GET", url="/cgi-bin/luci")
    drop = ev(eventid="cowrie.session.file_download", shasum="b" * 64)
    assert [scoring.threat_level(e, [], 0) for e in (scan, fail, ok, probe, drop)] == [2, 3, 6, 4, 7]
    assert scoring.threat_level(fail, [], 10) == 4 and scoring.threat_level(fail, [], 100) == 5
    hit = {"score": 0.5, "confidence": 0.9}
    assert scoring.threat_level(fail, [hit], 0) == 5  # the decayed score wins over the confidence
    assert scoring.threat_level(drop, [{"score": None, "confidence": 1.0}], 200) == 10  # capped
    assert scoring.threat_level(fail, [], 0, anomaly=0.9) == 5  # the ML hook
    assert [scoring.severity(x) for x in (3, 5, 7, 9)] == ["low", "medium", "high", "critical"]


def test_a_duplicate_is_stored_once_and_a_redelivery_changes_nothing(clients):
    s = sensor()
    e = login(s, password="same")
    repeat = dict(e, event_id=str(uuid.uuid4()))  # the same event seen again (new id, same content)
    r1 = ingest_batch(clients, [Message("1", "redis", json.dumps(e)), Message("2", "redis", json.dumps(repeat))])
    assert (r1.stored, r1.duplicates) == (1, 1)
    r2 = ingest_batch(clients, [Message("1", "redis", json.dumps(e)), Message("3", "redis", json.dumps(
        dict(e, event_id=str(uuid.uuid4()), timestamp=(datetime.fromisoformat(e["timestamp"]) + timedelta(seconds=5)).isoformat())))])
    rows = events_of(clients, s)
    assert len(rows) == 1 and rows[0]["occurrences"] == 3  # two repeats folded in
    assert r2.already == 1 and r2.duplicates == 1
    later = dict(e, event_id=str(uuid.uuid4()), timestamp=(datetime.fromisoformat(e["timestamp"]) + timedelta(minutes=5)).isoformat())
    ingest_batch(clients, [Message("4", "redis", json.dumps(later))])
    assert len(events_of(clients, s)) == 2  # outside the de-duplication window: a new event


def test_repeated_alerts_update_one_alert(clients):
    s = sensor()
    t0 = datetime.now(UTC).replace(minute=1, second=0, microsecond=0)
    if t0 > datetime.now(UTC):
        t0 -= timedelta(hours=1)
    import random

    ip = f"45.33.{random.randint(0, 255)}.{random.randint(1, 254)}"  # a source no indicator names
    with clients.db() as conn:
        conn.execute("DELETE FROM threat_intel WHERE ioc_value = %s", (ip,))
    drops = [{"event_id": str(uuid.uuid4()), "eventid": "cowrie.session.file_download",
              "timestamp": (t0 + timedelta(minutes=i)).isoformat(), "src_ip": ip, "sensor": s,
              "shasum": uuid.uuid4().hex * 2} for i in range(6)]
    ingest_batch(clients, [Message(str(i), "redis", json.dumps(d)) for i, d in enumerate(drops[:3])])
    ingest_batch(clients, [Message(str(i), "redis", json.dumps(d)) for i, d in enumerate(drops[3:], 3)])
    jar = jar_of(clients, s)
    with clients.db() as conn:
        alerts = conn.execute("SELECT * FROM alerts WHERE honeyjar_id = %s", (jar,)).fetchall()
    assert len(alerts) == 1 and alerts[0]["occurrences"] == 6 and alerts[0]["alert_type"] == "malware"
    assert alerts[0]["queued_at"] is not None
    queued = [x.decode() for x in clients.redis.lrange("queue:alerts:high_priority", 0, -1)]
    assert queued.count(str(alerts[0]["id"])) == 1


def test_live_statistics_in_redis_with_ttl(clients):
    s = sensor()
    ingest_batch(clients, [Message(str(i), "redis", json.dumps(login(s, ip=f"61.177.172.{i + 1}", password=str(i))))
                           for i in range(4)])
    key = f"stats:honeyjar:{jar_of(clients, s)}:hourly"
    fields = clients.redis.hgetall(key)
    assert fields and 0 < clients.redis.ttl(key) <= 8 * 86400
    stats = json.loads(next(iter(fields.values())))
    assert stats["event_count"] == 4 and stats["unique_sources"] == 4 and stats["threat_levels"]


# ---------------------------------------------------------------- the queue: exactly once under kills
KILLER = textwrap.dedent("""
    import os, signal, sys
    from include.clients import Clients
    from include.jobs import load_job
    from include.jobs.runner import run_job
    import include.security.store as store
    where = sys.argv[2]
    if where == "before_commit":   # inside the transaction: events written, nothing committed
        real = store._write_payloads
        def die(*a, **k):
            real(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        store._write_payloads = die
    else:                          # committed, not yet acknowledged
        real_batch = store.ingest_batch
        import include.jobs.event_ingestion as ei
        def die_after(*a, **k):
            real_batch(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        ei.ingest_batch = die_after
        store.ingest_batch = die_after
    run_job(load_job("event_ingestion"), Clients.from_settings(), run_key="kill-" + where,
            conf={"stream": sys.argv[1], "claim_idle_seconds": 0, "batch_size": 7, "use_anomaly_model": False})
""")


@pytest.mark.parametrize("where", ["before_commit", "after_commit"])
def test_an_event_is_acknowledged_only_after_it_is_stored_kill_and_rerun(clients, stream, where):
    s = sensor()
    msgs = [login(s, password=f"k{i}") for i in range(20)]
    publish(clients.redis, stream, msgs)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    p = subprocess.run([sys.executable, "-c", KILLER, stream, where], env=env, cwd=REPO, capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]
    stored = len(events_of(clients, s))
    assert stored == (0 if where == "before_commit" else 7)
    pending = clients.redis.xpending(stream, "sting-event-ingestion")["pending"]
    assert pending == 7  # read, never acknowledged
    counts = run_job(load_job("event_ingestion"), clients, run_key=f"rerun-{uuid.uuid4().hex[:6]}", conf=_ingest_conf(stream))
    rows = events_of(clients, s)
    assert len(rows) == 20 and len({r["id"] for r in rows}) == 20  # nothing lost, nothing doubled
    assert counts["consume_queue"]["claimed_from_dead_consumers"] == 7
    assert counts["consume_queue"]["already"] == (0 if where == "before_commit" else 7)
    assert clients.redis.xpending(stream, "sting-event-ingestion")["pending"] == 0


def test_raw_payload_objects_and_stream_references(clients, stream):
    s = sensor()
    now = datetime.now(UTC)
    e1, e2 = login(s, password="obj1"), login(s, password="obj2")
    for e in (e1, e2):
        clients.s3.put_object(Bucket="event-payloads", Key=f"raw/{now:%Y/%m/%d}/{e['event_id']}.json", Body=json.dumps(e))
    # e1 also announced on the stream by reference; a reference to a missing object is rejected
    clients.redis.xadd(stream, {"event_id": e1["event_id"], "payload_key": f"raw/{now:%Y/%m/%d}/{e1['event_id']}.json"})
    clients.redis.xadd(stream, {"event_id": f"missing-{s}", "payload_key": f"raw/1999/01/01/missing-{s}.json"})
    counts = run_job(load_job("event_ingestion"), clients, run_key=f"raw-{uuid.uuid4().hex[:6]}", conf=_ingest_conf(stream))
    assert counts["consume_queue"]["stored"] == 1 and counts["consume_queue"]["rejected_reasons"] == {"missing_payload": 1}
    assert len(events_of(clients, s)) == 2  # e2 from the raw/ listing, e1 once
    ev = events_of(clients, s)[0]
    body = clients.s3.get_object(Bucket="event-payloads", Key=f"processed/{ev['created_at']:%Y/%m/%d}/{ev['id']}.json")["Body"].read()
    assert json.loads(body)["event"]["id"] == str(ev["id"])


# ---------------------------------------------------------------- partitions, rollups, late events
def test_partitions_exist_before_events_need_them(clients):
    counts = run_job(load_job("hourly_aggregation"), clients, run_key=f"p-{uuid.uuid4().hex[:6]}",
                     conf={"interval_start": "2026-11-25T00:00:00Z", "interval_end": "2026-11-25T01:00:00Z"})
    assert counts["ensure_event_partitions"]["through"]
    now = datetime.now(UTC)
    with clients.db() as conn:
        for k in range(0, 4):
            m = (now.replace(day=1) + timedelta(days=32 * k)).replace(day=1)
            assert conn.execute("SELECT to_regclass(%s) AS t", (f"events_{m:%Y_%m}",)).fetchone()["t"], m
    # a late event of a month nobody created a partition for: created on the spot, not the default partition
    s = sensor()
    old = datetime(now.year - 1, 1, 15, 12, tzinfo=UTC) if now.month > 1 else datetime(now.year - 2, 1, 15, tzinfo=UTC)
    with clients.db() as conn:
        part = f"events_{old:%Y_%m}"
        if conn.execute("SELECT to_regclass(%s) AS t", (part,)).fetchone()["t"]:
            conn.execute("DELETE FROM alerts WHERE event_created_at >= %s AND event_created_at < %s",
                         (old.replace(day=1, hour=0), (old.replace(day=1, hour=0) + timedelta(days=32)).replace(day=1)))
            conn.execute(f"ALTER TABLE events DETACH PARTITION {part}")
            conn.execute(f"DROP TABLE {part}")
    r = ingest_batch(clients, [Message("old", "redis", json.dumps(login(s, ip="10.9.8.7", t=old)))])
    assert r.stored == 1
    with clients.db() as conn:
        where = conn.execute("SELECT tableoid::regclass::text AS p FROM events WHERE created_at = %s", (old,)).fetchone()["p"]
    assert where == part


def test_a_late_event_is_counted_by_the_next_hourly_run_and_the_rollup_equals_a_full_recompute(clients):
    s = sensor()
    h = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    first = [login(s, ip=f"218.92.0.{i + 1}", t=h + timedelta(minutes=5 + i), password=f"a{i}") for i in range(6)]
    ingest_batch(clients, [Message(str(i), "redis", json.dumps(m)) for i, m in enumerate(first)])
    job = load_job("hourly_aggregation")
    run_job(job, clients, run_key=f"h1-{uuid.uuid4().hex[:6]}", logical_date=h + timedelta(hours=1))
    jar = jar_of(clients, s)
    with clients.db() as conn:
        assert rollup(conn, jar) == full_recompute(conn, jar)
        assert sum(x[5] for x in rollup(conn, jar)) == 6
    # late: two events of that hour arrive after it was aggregated, plus a repeat folded into one
    late = [login(s, ip="218.92.0.99", t=h + timedelta(minutes=40), password="late"),
            login(s, ip="218.92.0.1", t=h + timedelta(minutes=41), password="late2", dst_port=2222)]
    ingest_batch(clients, [Message(f"l{i}", "redis", json.dumps(m)) for i, m in enumerate(late)]
                 + [Message("rep", "redis", json.dumps(dict(first[0], event_id=str(uuid.uuid4()))))])
    counts = run_job(job, clients, run_key=f"h2-{uuid.uuid4().hex[:6]}", logical_date=datetime.now(UTC).replace(
        minute=0, second=0, microsecond=0))
    assert counts["aggregate_event_statistics"]["late_hours"] >= 1
    with clients.db() as conn:
        got = rollup(conn, jar)
        assert got == full_recompute(conn, jar)
        assert sum(x[5] for x in got) == 8 and sum(x[6] for x in got) == 9  # 8 stored, 9 seen
        assert {x[4] for x in got} == {22, 2222}
    # the archive of that hour holds every raw event, identical on a rerun
    key = f"{h:%Y/%m/%d}/{jar}/{h:%H}.log.gz"
    import gzip

    body = clients.s3.get_object(Bucket="honeyjar-logs", Key=key)["Body"].read()
    assert len(gzip.decompress(body).splitlines()) == 8
    run_job(job, clients, run_key=f"h3-{uuid.uuid4().hex[:6]}", logical_date=h + timedelta(hours=1))
    assert clients.s3.get_object(Bucket="honeyjar-logs", Key=key)["Body"].read() == body


def test_stream_comb_outputs_are_an_input_read_once(clients, stream, combs_dir):
    """A stream comb's Parquet output (rows as the comb delivers them: GDPR-anonymised source, the
    password redacted) becomes events; the object is read once, its rows decided once."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.honeycomb.config import load_comb_file
    from include.honeycomb.windows import OutputLocation, RunWindow

    name = f"t_events_{uuid.uuid4().hex[:8]}"
    src = (REPO / "include/combs/sample_events_stream.yaml").read_text()
    (combs_dir / f"{name}.yaml").write_text(src.replace("name: sample_events_stream", f"name: {name}"))
    comb = load_comb_file(combs_dir / f"{name}.yaml")
    s = sensor()
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [{"eventid": "cowrie.login.failed", "sensor": s, "src_ip": "61.177.172.0", "dst_port": 22,
             "username": f"user{i}", "password": "[REDACTED]", "timestamp": (now - timedelta(seconds=i)).isoformat(),
             "__sting_scrubbed": "src_ip,password"} for i in range(12)]
    rows.append({"eventid": "cowrie.login.failed", "sensor": s, "src_ip": "[REDACTED]", "timestamp": now.isoformat()})
    loc = OutputLocation.for_comb(comb)
    w = RunWindow("incremental", now - timedelta(minutes=5), now)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    clients.s3.put_object(Bucket=loc.bucket, Key=loc.final_key(w, "_test"), Body=buf.getvalue())
    conf = _ingest_conf(stream, event_combs=[name, "no_such_comb"])
    c1 = run_job(load_job("event_ingestion"), clients, run_key=f"co-{uuid.uuid4().hex[:6]}", conf=conf)
    out = c1["ingest_comb_outputs"]
    assert (out["objects_read"], out["rejected"], out["combs_not_found"]) == (1, 1, ["no_such_comb"])
    evs = events_of(clients, s)
    assert len(evs) == 12 and evs[0]["country"] == "CN"  # the /24 still has its geography
    c2 = run_job(load_job("event_ingestion"), clients, run_key=f"co-{uuid.uuid4().hex[:6]}", conf=conf)
    assert c2["ingest_comb_outputs"]["objects_read"] == 0 and len(events_of(clients, s)) == 12
    clients.s3.delete_object(Bucket=loc.bucket, Key=loc.final_key(w, "_test"))

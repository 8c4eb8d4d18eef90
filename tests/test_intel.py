"""Threat intelligence against the real services: canonical forms, the three feed kinds fetched
over HTTP (TAXII 2.1 with paging from a real medallion server, MISP feed, abuse.ch CSV), re-import
idempotence, a failing feed failing alone, correlation, score decay, and the daily report
(deterministic, rendered to PNG and looked at)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from include.clients import Clients
from include.jobs import load_job
from include.jobs.runner import run_job
from include.security.intel import canonical, combine_confidence, decayed_score
from include.security.store import Message, ingest_batch
from tests.eventtools import events_of, jar_of, login, sensor


@pytest.fixture
def clients(stack):
    c = Clients.from_settings()
    yield c
    c.close()


@pytest.mark.parametrize("t,raw,want", [
    ("ip", " 2A06:4880:0:0:0:0:0:1 ", "2a06:4880::1"),
    ("ip", "::ffff:192.0.2.1", "192.0.2.1"),
    ("ip", "1.2.3.400", None),
    ("domain", "Evil.Example.COM.", "evil.example.com"),
    ("domain", "bücher.example", "xn--bcher-kva.example"),
    ("domain", "http://Sub.Evil.Example.com:8080/x", "sub.evil.example.com"),
    ("url", "HTTP://Evil.Example.com:80/a/b?q=1#frag", "http://evil.example.com/a/b?q=1"),
    ("url", "https://[2A06:4880::1]:443/x", "https://[2a06:4880::1]/x"),
    ("url", "javascript:alert(1)", None),
    ("sha256", "A" * 64, "a" * 64),
    ("md5", "a" * 64, None),
])
def test_canonical_forms(t, raw, want):
    assert canonical(t, raw) == want


def test_confidence_combination_and_decay():
    assert combine_confidence([0.8, 0.7]) == pytest.approx(0.94)
    at = datetime(2026, 11, 25, tzinfo=UTC)
    assert decayed_score("ip", 0.8, at - timedelta(days=30), at, 0) == pytest.approx(0.4)  # one half-life
    assert decayed_score("sha256", 0.8, at - timedelta(days=30), at, 0) > 0.75  # hashes decay slowly
    assert decayed_score("ip", 0.8, at - timedelta(days=30), at, 3) == pytest.approx(0.6)  # + 0.1 * log2(4)


def _intel(clients, values: list[str]) -> dict:
    with clients.db() as conn:
        return {r["ioc_value"]: r for r in conn.execute("SELECT * FROM threat_intel WHERE ioc_value = ANY(%s)", (values,))}


def test_three_feed_kinds_import_and_reimport_changes_only_last_seen(clients):
    job = load_job("daily_intelligence")
    day = datetime(2026, 11, 20, 2, tzinfo=UTC)
    c1 = run_job(job, clients, run_key=f"i1-{uuid.uuid4().hex[:6]}", logical_date=day, conf={"refetch": True})
    feeds = c1["import_threat_feeds"]["feeds"]
    assert set(feeds) >= {"sample_taxii", "sample_misp", "sample_urlhaus"}
    assert feeds["sample_taxii"]["pages"] == 3 and feeds["sample_taxii"]["indicators"] == 121  # paging followed
    assert feeds["sample_urlhaus"]["rejected"] == 1  # the malformed row, alone
    for name in feeds:
        body = clients.s3.get_object(Bucket="threat-intel", Key=f"feeds/{name}/2026-11-20/intel.json")["Body"].read()
        assert json.loads(body)["source"] == name
    vals = ["218.92.0.107", "2a06:4880::1", "203.0.113.99", "198.51.100.77", "http://dl.mirai-drop.example.net/bins/x86",
            "http://old.example.com/dead.sh"]
    before = _intel(clients, vals)
    assert set(before["218.92.0.107"]["sources"]) >= {"sample_taxii", "sample_misp"}
    assert before["218.92.0.107"]["confidence"] == pytest.approx(combine_confidence([0.8, 0.7]))
    assert before["203.0.113.99"]["status"] == "revoked" and before["198.51.100.77"]["status"] == "expired"
    assert before["http://old.example.com/dead.sh"]["status"] == "expired"
    with clients.db() as conn:
        n = conn.execute("SELECT count(*) AS n FROM threat_intel").fetchone()["n"]
    # a later day's import of the same feeds: no new row, first_seen kept, last_seen moved
    later = day + timedelta(days=1)
    run_job(job, clients, run_key=f"i2-{uuid.uuid4().hex[:6]}", logical_date=later, conf={"refetch": True})
    after = _intel(clients, vals)
    with clients.db() as conn:
        assert conn.execute("SELECT count(*) AS n FROM threat_intel").fetchone()["n"] == n
    for v in vals:
        b, a = before[v], after[v]
        assert a["first_seen"] == b["first_seen"] and a["last_seen"] >= later
        assert (a["confidence"], a["status"], a["threat_type"], a["id"]) == (b["confidence"], b["status"], b["threat_type"], b["id"])
        assert {k: {x: y for x, y in s.items() if x != "last_seen"} for k, s in a["sources"].items()} == \
               {k: {x: y for x, y in s.items() if x != "last_seen"} for k, s in b["sources"].items()}


def test_a_failing_feed_fails_alone_and_is_named(clients, tmp_path, monkeypatch):
    from include.settings import get_settings

    s = get_settings()
    good = f"""name: ok_csv
kind: csv
url: {s.feed_server_url}/urlhaus/csv_recent.txt
vault_path: threat_feeds/sample_urlhaus/credentials
"""
    (tmp_path / "ok.yaml").write_text(good)
    (tmp_path / "wrong_key.yaml").write_text(good.replace("ok_csv", "wrong_key").replace("sample_urlhaus", "sample_taxii"))
    (tmp_path / "down.yaml").write_text("name: down\nkind: misp\nurl: http://127.0.0.1:9/misp\n")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    monkeypatch.setenv("STING_FEEDS_DIR", str(tmp_path))
    job = load_job("daily_intelligence")
    with pytest.raises(Exception) as e:
        run_job(job, clients, run_key=f"f-{uuid.uuid4().hex[:6]}", logical_date=datetime(2026, 11, 19, 2, tzinfo=UTC),
                conf={"refetch": True})
    msg = str(e.value)
    assert "ok_csv" in msg.split("failed:")[0]  # imported
    assert "wrong_key: GET" in msg and "HTTP 401" in msg and "down:" in msg and "broken.yaml" in msg
    # the secret of the feed never appears in the error
    from include import vault

    assert vault.read_secret("threat_feeds/sample_taxii/credentials")["password"] not in msg
    with clients.db() as conn:
        row = conn.execute("SELECT status, failed_step, error FROM job_runs WHERE job = 'daily_intelligence' "
                           "ORDER BY started_at DESC LIMIT 1").fetchone()
    assert row["status"] == "failed" and row["failed_step"] == "import_threat_feeds" and "down" in row["error"]


def test_correlation_records_sightings_and_raises_an_alert(clients):
    """An event stored before the indicator was known: the daily correlation finds it."""
    s = sensor()
    import random

    ip = f"45.33.{random.randint(0, 255)}.{random.randint(1, 254)}"  # a public address no feed names (yet)
    with clients.db() as conn:
        conn.execute("DELETE FROM threat_intel WHERE ioc_type = 'ip' AND ioc_value = %s", (ip,))
    t = datetime.now(UTC) - timedelta(hours=1)
    ingest_batch(clients, [Message("c1", "redis", json.dumps(login(s, ip=ip, t=t)))])
    ev = events_of(clients, s)[0]
    assert "threat" not in ev["payload"]
    from include.security.feeds import Indicator
    from include.security.intel import upsert_indicators

    with clients.db() as conn:
        upsert_indicators(conn, f"test_{s}", [Indicator("ip", ip, 1.0, "botnet")], datetime.now(UTC))
    job = load_job("daily_intelligence")
    x = (t + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    conf = {"feeds": ["none"], "lookback_days": 2}
    c = run_job(job, clients, run_key=f"c-{uuid.uuid4().hex[:6]}", logical_date=x, conf=conf)
    assert c["correlate_events"]["new_sightings"] >= 1
    jar = jar_of(clients, s)
    with clients.db() as conn:
        al = conn.execute("SELECT * FROM alerts WHERE honeyjar_id = %s", (jar,)).fetchall()
        sightings = conn.execute("SELECT count(*) AS n FROM ioc_sightings WHERE event_id = %s", (ev["id"],)).fetchone()["n"]
    assert sightings == 1 and len(al) == 1 and al[0]["alert_type"] == "ioc_match"
    assert (al[0]["threat_level"], al[0]["severity"]) == (7, "high")  # failed login 3 + 4 * 1.0
    run_job(job, clients, run_key=f"c2-{uuid.uuid4().hex[:6]}", logical_date=x, conf=conf)  # a rerun: nothing new
    with clients.db() as conn:
        al2 = conn.execute("SELECT occurrences FROM alerts WHERE honeyjar_id = %s", (jar,)).fetchall()
    assert [a["occurrences"] for a in al2] == [1]


def test_scores_decay_and_never_move_back_in_time(clients):
    from include.security.feeds import Indicator
    from include.security.intel import upsert_indicators

    v = f"decay-{uuid.uuid4().hex[:8]}.example.com"
    seen = (datetime.now(UTC) - timedelta(days=120)).replace(minute=0, second=0, microsecond=0)  # runs stay in the past
    with clients.db() as conn:
        upsert_indicators(conn, "test_decay", [Indicator("domain", v, 0.8)], seen)
    job = load_job("hourly_aggregation")
    run_job(job, clients, run_key=f"d1-{uuid.uuid4().hex[:6]}", logical_date=seen + timedelta(days=90))
    s1 = _intel(clients, [v])[v]
    assert s1["score"] == pytest.approx(0.4, abs=1e-3)  # 90 days = one domain half-life
    run_job(job, clients, run_key=f"d2-{uuid.uuid4().hex[:6]}", logical_date=seen + timedelta(days=10))  # an old hour
    assert _intel(clients, [v])[v]["score"] == pytest.approx(0.4, abs=1e-3)


def test_a_backfill_of_a_past_day_regenerates_the_same_report_and_it_is_not_blank(clients):
    import pypdfium2 as pdfium

    job = load_job("daily_intelligence")
    s = sensor()
    day = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=3)
    evs = [login(s, ip=ip, t=day - timedelta(hours=h), password=f"r{h}") for h, ip in
           enumerate(["61.177.172.13", "185.220.101.34", "193.32.162.40", "218.92.0.107"] * 3, 1)]
    ingest_batch(clients, [Message(str(i), "redis", json.dumps(e)) for i, e in enumerate(evs)])
    conf = {"feeds": ["none"]}
    c1 = run_job(job, clients, run_key=f"r1-{uuid.uuid4().hex[:6]}", logical_date=day, conf=conf)["generate_daily_report"]
    key = c1["object"].split("/", 3)[3]
    pdf1 = clients.s3.get_object(Bucket="threat-intel", Key=key)["Body"].read()
    assert key == f"reports/{day - timedelta(days=1):%Y/%m}/report_{day - timedelta(days=1):%Y-%m-%d}.pdf"
    c2 = run_job(job, clients, run_key=f"r2-{uuid.uuid4().hex[:6]}", logical_date=day, conf=conf)["generate_daily_report"]
    pdf2 = clients.s3.get_object(Bucket="threat-intel", Key=key)["Body"].read()
    assert c1["sha256"] == c2["sha256"] and pdf1 == pdf2  # the same day, the same content
    assert c1["events"] >= 12
    doc = pdfium.PdfDocument(pdf1)
    assert len(doc) == c1["pages"] >= 2
    for i in range(len(doc)):
        img = doc[i].render(scale=0.5).to_pil().convert("L")
        hist = img.histogram()
        ink = sum(hist[:200]) / sum(hist)  # share of non-white pixels
        assert ink > 0.01, f"page {i + 1} looks blank ({ink:.4f})"
    text = doc[0].get_textpage().get_text_range()
    assert "Daily intelligence report" in text and "events seen" in text

"""Benchmark: honeypot events through validate + enrich + de-duplicate + score + store, against a
bare COPY of the same finished rows into `events`, measured in the same run; then the latency
from publish to the `events` row and to the alert through Airflow's scheduled event_ingestion.

    python bench/events.py [--events 20000] [--batch 500] [--latency-events 120] [--no-airflow]

  copy       COPY of the finished rows (every column the pipeline writes, ECS payload included)
             into `events`, one transaction per batch: the floor of any store
  pipeline   include.security.store.ingest_batch on the raw JSON messages: parse and validate,
             ECS, GeoLite2 lookup, IOC lookup, sliding-window de-duplication, scoring, the
             ledger, fingerprints, dirty hours, alerts, Redis statistics; no payload objects
  pipeline+objects   the same with the processed payload objects written to S3 (one PUT per
             event, 16 threads), as the DAG runs it by default
  latency    (with Airflow) events published to queue:events:pending at a steady pace over a
             few minutes while the DAG runs on its `* * * * *` schedule: publish -> row
             (`ingested_at`) and publish -> alert (`alerts.created_at`), p50 / p95
Target: pipeline >= 0.3x the bare COPY throughput.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

IPS = ["61.177.172.13", "218.92.0.107", "185.220.101.34", "193.32.162.40", "167.94.138.35", "89.248.165.52",
       "141.98.11.11", "45.33.32.156", "2a06:4880::1", "10.1.2.3"]


def messages(n: int, sensor: str, now: datetime) -> list[str]:
    kinds = ["login", "login", "login", "command", "scan", "http", "drop"]
    out = []
    for i in range(n):
        t = now - timedelta(seconds=n - i)
        ip = IPS[i % len(IPS)]
        base = {"event_id": str(uuid.uuid4()), "timestamp": t.isoformat(), "src_ip": ip, "src_port": 40000 + i % 20000,
                "dst_ip": "10.0.0.5", "sensor": sensor, "session": f"b{i // 20}"}
        k = kinds[i % len(kinds)]
        if k == "login":
            base.update(eventid="cowrie.login.failed", dst_port=22, username=f"user{i % 50}", password=f"pw{i}")
        elif k == "command":
            base.update(eventid="cowrie.command.input", dst_port=22, input=f"echo {i}; uname -a")
        elif k == "scan":
            base.update(eventid="scan.port", dst_port=1 + i % 1024)
        elif k == "http":
            base.update(eventid="http.request", dst_port=80, method="GET", url=f"/page/{i}", user_agent="bench")
        else:
            base.update(eventid="cowrie.session.file_download", dst_port=22, url=f"http://dl{i % 7}.example.net/x",
                        shasum=f"{i:064x}")
        out.append(json.dumps(base))
    return out


def run_pipeline(clients, msgs, batch: int, write_payloads: bool) -> tuple[float, int]:
    from include.security.store import IngestConfig, Message, ingest

    cfg = IngestConfig(write_payloads=write_payloads)
    t0 = time.perf_counter()
    r = ingest(clients, (Message(f"bench-{i}", "bench", m) for i, m in enumerate(msgs)), cfg, batch)
    return time.perf_counter() - t0, r.stored


def run_copy(clients, jar: str, batch: int) -> tuple[float, int]:
    """COPY the pipeline's finished rows (fresh ids) back into `events`, timed; then remove them."""
    cols = ("honeyjar_id, event_type, source_ip, threat_level, payload, created_at, event_kind, country, asn_org,"
            " destination_port, username, fingerprint, occurrences, anomaly_score, scored_by")
    with clients.db() as conn:
        rows = conn.execute(f"SELECT {cols} FROM events WHERE honeyjar_id = %s", (jar,)).fetchall()
    rows = [(uuid.uuid4(), *(json.dumps(v) if k == "payload" else v for k, v in r.items())) for r in rows]
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        with clients.db() as conn, conn.cursor() as cur, cur.copy(f"COPY events (id, {cols}) FROM STDIN") as cp:
            for r in rows[i:i + batch]:
                cp.write_row(r)
    dt = time.perf_counter() - t0
    with clients.db() as conn:
        conn.execute("DELETE FROM events WHERE id = ANY(%s)", ([r[0] for r in rows],))
    return dt, len(rows)


def cleanup(clients, sensors: list[str]) -> None:
    """Remove what the benchmark stored (its jars, their events, alerts, sightings, stats)."""
    keys = [f"honeypot:{s}" for s in sensors]
    with clients.db() as conn:
        jars = [r["id"] for r in conn.execute("SELECT id FROM honey_jars WHERE config->>'jar_key' = ANY(%s)", (keys,))]
        conn.execute("DELETE FROM alerts WHERE honeyjar_id = ANY(%s)", (jars,))
        conn.execute("DELETE FROM ioc_sightings WHERE honeyjar_id = ANY(%s)", (jars,))
        conn.execute("DELETE FROM event_stats_hourly WHERE honeyjar_id = ANY(%s)", (jars,))
        conn.execute("DELETE FROM honey_jars WHERE id = ANY(%s)", (jars,))  # events cascade
    for j in jars:
        clients.redis.delete(f"stats:honeyjar:{j}:hourly")


def latency(n: int, spread_s: float) -> dict:
    """Publish n events over spread_s seconds to the real queue with the DAG scheduled; measure."""
    from include.clients import Clients
    from include.devstack.airflow_api import AirflowAPI
    from include.jobs.event_ingestion import STREAM

    api = AirflowAPI()
    api.wait_for_dag("event_ingestion")
    api.unpause("event_ingestion")
    c = Clients.from_settings()
    sensor = f"bench-lat-{uuid.uuid4().hex[:6]}"
    published: dict[str, datetime] = {}
    interval = spread_s / n
    for i in range(n):
        now = datetime.now(UTC)
        # every 10th event is a malware download from a known dropper: it raises an alert
        e = {"event_id": str(uuid.uuid4()), "timestamp": now.isoformat(), "src_ip": IPS[i % 8], "sensor": sensor}
        if i % 10 == 0:
            e.update(eventid="cowrie.session.file_download", shasum=f"{i:064x}", dst_port=22)
        else:
            e.update(eventid="cowrie.login.failed", username="root", password=f"lat{i}", dst_port=22)
        c.redis.xadd(STREAM, {"event": json.dumps(e)})
        published[e["event_id"]] = now
        time.sleep(interval)
    deadline = time.time() + 240
    rows, alerts = [], []
    while time.time() < deadline:
        with c.db() as conn:
            rows = conn.execute(
                """SELECT e.id::text AS id, e.ingested_at FROM events e JOIN honey_jars j ON j.id = e.honeyjar_id
                    WHERE j.config->>'jar_key' = %s""", (f"honeypot:{sensor}",)).fetchall()
            # an alert's latency: from the publish of the event that raised it to the alert row
            alerts = conn.execute(
                """SELECT a.created_at, a.event_id::text AS id FROM alerts a
                    JOIN honey_jars j ON j.id = a.honeyjar_id WHERE j.config->>'jar_key' = %s""",
                (f"honeypot:{sensor}",)).fetchall()
        if len(rows) >= n:
            break
        time.sleep(2)
    row_lat = sorted((r["ingested_at"] - published[r["id"]]).total_seconds() for r in rows if r["id"] in published)
    alert_lat = sorted((a["created_at"] - published[a["id"]]).total_seconds() for a in alerts if a["id"] in published)

    def pct(xs, p):
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else None

    cleanup(c, [sensor])
    return {"published": n, "stored": len(rows), "row_p50_s": pct(row_lat, 0.5), "row_p95_s": pct(row_lat, 0.95),
            "alerts_events": len(alert_lat), "alert_p50_s": pct(alert_lat, 0.5), "alert_p95_s": pct(alert_lat, 0.95),
            "row_mean_s": round(statistics.mean(row_lat), 1) if row_lat else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--latency-events", type=int, default=120)
    ap.add_argument("--latency-seconds", type=float, default=180)
    ap.add_argument("--no-airflow", action="store_true")
    ap.add_argument("--latency-only", action="store_true")
    a = ap.parse_args()
    from include.clients import Clients
    from include.devstack import stack

    stack.up(with_airflow=not a.no_airflow)
    c = Clients.from_settings()
    results, sensors = {}, []
    for label, payloads in (() if a.latency_only else (("pipeline", False), ("pipeline+objects", True))):
        sensor = f"bench-{uuid.uuid4().hex[:6]}"
        sensors.append(sensor)
        msgs = messages(a.events, sensor, datetime.now(UTC))
        dt, stored = run_pipeline(c, msgs, a.batch, payloads)
        results[label] = {"seconds": round(dt, 2), "events_per_s": round(stored / dt), "stored": stored}
        if not payloads:
            from tests.eventtools import jar_of

            jar = jar_of(c, sensor)
            cdt, n = run_copy(c, jar, a.batch)
            results["copy"] = {"seconds": round(cdt, 2), "events_per_s": round(n / cdt), "rows": n}
    cleanup(c, sensors)
    if results:
        base = results["copy"]["events_per_s"]
        print(f"{'path':<18}{'events':>9}{'seconds':>9}{'events/s':>10}{'vs COPY':>9}")
        for k in ("copy", "pipeline", "pipeline+objects"):
            r = results[k]
            print(f"{k:<18}{r.get('stored', r.get('rows')):>9}{r['seconds']:>9}{r['events_per_s']:>10}"
                  f"{r['events_per_s'] / base:>8.2f}x")
    if not a.no_airflow:
        lat = latency(a.latency_events, a.latency_seconds)
        results["latency"] = lat
        print(f"publish -> events row through the scheduled DAG: p50 {lat['row_p50_s']} s, p95 {lat['row_p95_s']} s "
              f"({lat['stored']}/{lat['published']} stored); publish -> alert: p50 {lat['alert_p50_s']} s, "
              f"p95 {lat['alert_p95_s']} s ({lat['alerts_events']} alerts)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

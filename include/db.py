"""PostgreSQL helpers for the application database: connections, database creation, migrations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from include.settings import REPO_ROOT, get_settings

MIGRATIONS_DIR = REPO_ROOT / "sql" / "migrations"


@contextlib.contextmanager
def connect(dsn: str | None = None, **kwargs) -> Iterator[psycopg.Connection]:
    """A psycopg connection that commits on success and rolls back on error."""
    conn = psycopg.connect(dsn or get_settings().app_dsn, row_factory=dict_row, **kwargs)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def ensure_database(name: str, maintenance_dsn: str | None = None) -> bool:
    """Create database `name` if it does not exist. Returns True if it was created."""
    s = get_settings()
    with psycopg.connect(maintenance_dsn or s.dsn("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:  # created concurrently
            return False
        return True


def yoyo_uri(dsn: str) -> str:
    # yoyo picks the driver from the scheme; psycopg (3) is the one installed.
    return "postgresql+psycopg://" + dsn.split("://", 1)[1]


def migrate(dsn: str | None = None, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order; returns the ids applied (empty when up to date).

    yoyo records applied versions in `_yoyo_migration`, takes a lock so two concurrent runs do
    not race, and runs each migration in a transaction: safe to rerun.
    """
    from yoyo import get_backend, read_migrations

    backend = get_backend(yoyo_uri(dsn or get_settings().app_dsn))
    migrations = read_migrations(str(migrations_dir))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]

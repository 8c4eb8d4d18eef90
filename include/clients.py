"""Plain clients handed to library code: the application database (a libpq conninfo and a
connection factory), S3 (a boto3 client) and Redis. Airflow tasks build them from provider hooks
(`sting_airflow.hooks.airflow_clients`); tests and command-line tools from the local settings
(`Clients.from_settings`). Each client is created on first use, so a step that never touches S3
never builds an S3 client. No Airflow import here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Clients:
    dsn: str
    s3_factory: Callable[[], Any] | None = None
    redis_factory: Callable[[], Any] | None = None
    secret_reader: Callable[[str], dict] | None = None  # Vault path -> secret (KV v2)
    # Airflow's metadata database for `airflow db clean` (a maintenance connection: an Airflow 3
    # task has no metadata access of its own); None: not configured
    airflow_metadata_url_factory: Callable[[], str | None] | None = None
    _s3: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)
    _conn: Any = field(default=None, repr=False)

    def __repr__(self) -> str:  # never print the conninfo (it may carry a password)
        return "Clients(dsn=***)"

    @contextlib.contextmanager
    def db(self) -> Iterator[Any]:
        """A transaction on the run's database connection (dict rows, session time zone UTC: hours
        are UTC hours): committed when the block ends, rolled back on error. The connection is
        opened once and reused (a step makes many short transactions); a nested block is a
        savepoint. A broken connection is dropped and the next block opens a new one."""
        import psycopg
        from psycopg.rows import dict_row

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, row_factory=dict_row, autocommit=True)
            self._conn.execute("SET TIME ZONE 'UTC'")
        conn = self._conn
        try:
            with conn.transaction():
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError):
            with contextlib.suppress(Exception):
                conn.close()
            self._conn = None
            raise

    @property
    def s3(self):
        if self._s3 is None:
            if self.s3_factory is None:
                raise RuntimeError("no S3 client configured for this run")
            self._s3 = self.s3_factory()
        return self._s3

    @property
    def redis(self):
        if self._redis is None:
            if self.redis_factory is None:
                raise RuntimeError("no Redis client configured for this run")
            self._redis = self.redis_factory()
        return self._redis

    def secret(self, path: str) -> dict:
        """The secret at a Vault path (values never to be logged or returned)."""
        if self.secret_reader is None:
            raise RuntimeError("no secret reader configured for this run")
        return self.secret_reader(path)

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.close()

    @classmethod
    def from_settings(cls) -> Clients:
        """The local stack's clients (environment or defaults of include.settings)."""
        from include.settings import get_settings

        s = get_settings()

        def s3():
            from include.storage import s3_client

            return s3_client()

        def redis():
            import redis as _redis

            return _redis.Redis.from_url(s.redis_url)

        def secret(path: str) -> dict:
            from include import vault

            return vault.read_secret(path)

        return cls(dsn=s.app_dsn, s3_factory=s3, redis_factory=redis, secret_reader=secret)

"""The hash key never leaves the worker: every byte a database comb sends to its source (recorded
by a TCP proxy between the comb and the server) is free of it, and a query_template written to
read it (session settings, user variables) finds nothing. Pseudonyms are keyed (HMAC-SHA256) and
the key version is in the output's metadata."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from datetime import timedelta

import psycopg
import pytest

from include import vault
from include.settings import get_settings
from tests.combtools import clear_test_outputs, read_output, run_steps, utc, write_def

T0 = utc(2026, 10, 5, 0)
W = {"window_start": T0, "window_end": T0 + timedelta(hours=1)}


class RecordingProxy:
    """127.0.0.1:<port> -> target; keeps every byte the client sent."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.sent = target, bytearray()
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, record: bool) -> None:
        try:
            while data := a.recv(65536):
                if record:
                    self.sent += data
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()

    def close(self) -> None:
        self.srv.close()


@pytest.fixture
def key(stack):
    return vault.read_secret("sting/scrubbing")["hash_key"]


def test_postgresql_source_never_receives_the_key(source_db, combs_dir, key):
    dsn, schema = source_db
    s = get_settings()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE TABLE "{schema}".people (id BIGINT PRIMARY KEY, email TEXT, updated_at TIMESTAMPTZ)')
        c.execute(f'INSERT INTO "{schema}".people VALUES (1, %s, %s)', ("ann@example.org", T0 + timedelta(minutes=1)))
    proxy = RecordingProxy((s.pg_host, s.pg_port))
    # A template that tries to read every session setting of ours, and the old salt setting.
    template = ("SELECT p.*, (SELECT string_agg(name || '=' || setting, ';') FROM pg_settings "
                "WHERE name LIKE 'sting.%') AS settings, current_setting('sting.hash_salt', true) AS salt "
                "FROM ${table} p")
    name = write_def(combs_dir, {
        "name": f"k_{schema}", "type": "database", "subtype": "postgresql",
        "configuration": {
            "connection": {"vault_path": "honey_combs/sample_customers/credentials",
                           "parameters": {"host": "127.0.0.1", "port": proxy.port, "database": s.sample_source_db,
                                          "ssl_mode": "disable"}},
            "extraction": {"mode": "incremental", "schedule": "0 * * * *", "table": f"{schema}.people",
                           "query_template": template, "primary_key": ["id"], "incremental_column": "updated_at"},
            "scrubbing": {"custom_rules": [{"field": "email", "action": "hash"}]},
            "output": {"prefix": f"tests/{schema}"}}})
    try:
        _, _, out, _ = run_steps(name, "r1", **W)
    finally:
        proxy.close()
    t, body = read_output(out["bucket"], out["key"])
    assert len(proxy.sent) > 0 and b"SELECT" in bytes(proxy.sent)  # the proxy saw the comb's statements
    assert key.encode() not in bytes(proxy.sent) and key.encode() not in body
    assert t.column("salt").to_pylist() == [None]
    assert key not in (t.column("settings")[0].as_py() or "")
    # a keyed hash: HMAC-SHA256 of the value, not reproducible without the key
    assert t.column("email")[0].as_py() == hmac.new(key.encode(), b"ann@example.org", hashlib.sha256).hexdigest()
    assert t.schema.metadata[b"sting.hash_key_version"] == b"1" and out["hash_key_version"] == "1"
    clear_test_outputs(schema)


def test_mysql_source_never_receives_the_key(mysql_source, combs_dir, key):
    s = get_settings()
    root, db = mysql_source
    with root.cursor() as c:
        c.execute(f"CREATE TABLE `{db}`.people (id BIGINT PRIMARY KEY, email VARCHAR(100), updated_at DATETIME(6))")
        c.execute(f"INSERT INTO `{db}`.people VALUES (1, 'ann@example.org', '2026-10-05 00:01:00')")
    proxy = RecordingProxy((s.mysql_host, s.mysql_port))
    name = write_def(combs_dir, {
        "name": f"k_{db}", "type": "database", "subtype": "mariadb",
        "configuration": {
            "connection": {"vault_path": f"honey_combs/{db}/credentials",
                           "parameters": {"host": "127.0.0.1", "port": proxy.port, "database": db}},
            "extraction": {"mode": "incremental", "schedule": "0 * * * *", "table": f"{db}.people",
                           "query_template": "SELECT p.*, @sting_hash_salt AS salt FROM ${table} p",
                           "primary_key": ["id"], "incremental_column": "updated_at"},
            "scrubbing": {"custom_rules": [{"field": "email", "action": "hash"}]},
            "output": {"prefix": f"tests/{db}"}}})
    try:
        _, _, out, _ = run_steps(name, "r1", **W)
    finally:
        proxy.close()
    t, body = read_output(out["bucket"], out["key"])
    assert len(proxy.sent) > 0 and key.encode() not in bytes(proxy.sent) and key.encode() not in body
    assert t.column("salt").to_pylist() == [None]
    assert t.column("email")[0].as_py() == hmac.new(key.encode(), b"ann@example.org", hashlib.sha256).hexdigest()

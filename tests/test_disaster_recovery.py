"""`make restore` (include.devstack.stack restore_app_postgres), the disaster-recovery procedure of
the README, run for real on a second application cluster of its own (a scratch stack directory, a
free port, its own pgBackRest stanza in the same S3 repository), so the suite's database is not
restored under the other tests' feet."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SCRIPT = r"""
import json, time
import psycopg
from include.devstack import stack
from include.settings import get_settings
s = get_settings()
print(stack.ensure_app_postgres())
print(stack.ensure_backup_stanza())
stack.pgbackrest().backup("full")
# pgBackRest records a backup's stop time in whole seconds: a target in the same second as the
# stop can find no backup "with stop time less than" it (seen once in CI)
time.sleep(1.5)
dsn = s.app_server_dsn("postgres")
with psycopg.connect(dsn, autocommit=True) as c:
    c.execute("CREATE TABLE dr_markers (name text, at timestamptz DEFAULT clock_timestamp())")
    c.execute("INSERT INTO dr_markers (name) VALUES ('before')")
    target = c.execute("SELECT clock_timestamp()").fetchone()[0]
    time.sleep(0.2)
    c.execute("INSERT INTO dr_markers (name) VALUES ('after')")
    wal = c.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    for _ in range(300):
        if (c.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0] or "") >= wal:
            break
        time.sleep(0.2)
print(stack.restore_app_postgres(target.isoformat()))
with psycopg.connect(dsn) as c:
    names = [r[0] for r in c.execute("SELECT name FROM dr_markers ORDER BY at")]
print(json.dumps({"names": names}))
stack.app_cluster().stop()
"""


def test_make_restore_brings_the_application_database_back_to_a_point_in_time(stack):
    from include.jobs._backup_common import scratch_dir

    base = scratch_dir()  # traversable by the postgres OS user (pytest's tmp_path is not)
    sd = base / "stack"
    (sd / "tls").mkdir(parents=True)
    for f in ("s3.crt", "s3.key"):  # the running TLS terminator's certificate, so pgBackRest trusts it
        shutil.copy(stack.STACK / "tls" / f, sd / "tls" / f)
    stanza = f"dr-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "STING_STACK_DIR": str(sd), "STING_APP_PG_PORT": str(_free_port()),
           "STING_PGBACKREST_STANZA": stanza, "STING_PGBACKREST_CONFIG": str(sd / "pgbackrest" / "pgbackrest.conf"),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    try:
        out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600,
                             cwd=REPO)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "restored the application PostgreSQL to" in out.stdout
        assert '{"names": ["before"]}' in out.stdout, out.stdout[-2000:]
        assert list(sd.glob("appdb/data.before-restore-*")), "the damaged cluster's data directory is kept aside"
    finally:
        from include.lifecycle.pgcluster import PgCluster

        for d in sd.glob("appdb/data*"):  # never leave a server running
            if (d / "PG_VERSION").exists() and d.is_dir() and not d.name.endswith(".sock"):
                PgCluster(d, 0).stop("immediate")
        shutil.rmtree(base, ignore_errors=True)

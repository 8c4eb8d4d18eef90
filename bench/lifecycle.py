"""Lifecycle benchmark (make bench-lifecycle), each against a baseline measured in the same run:

1. the events retention path (export a month to Parquet, upload, read back and verify, clear
   alert references, detach and drop) against a bare `COPY (month) TO STDOUT` plus `DROP` of the
   same rows;
2. a full pgBackRest backup into the S3 repository (through the TLS terminator to moto) against
   `pg_basebackup` of the same cluster to local disk;
3. the restore drills' RTO and RPO per tier, next to the seed's objectives.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.clients import Clients
from include.devstack import stack
from include.jobs._backup_common import pgbackrest, scratch_dir
from include.lifecycle import backup, drills
from include.lifecycle import retention as r
from include.lifecycle.pgcluster import os_user, pg_bin_dir
from include.settings import get_settings

S = get_settings()


def fill_month(c: Clients, month: datetime, n: int) -> str:
    with c.db() as conn:
        jar = str(conn.execute("INSERT INTO honey_jars (name, config) VALUES (%s, '{}') RETURNING id",
                               (f"bench-{uuid.uuid4().hex[:6]}",)).fetchone()["id"])
        conn.execute("SELECT sting_ensure_event_partitions(%s, %s)", (month.date(), month.date()))
        buf = io.StringIO()
        for i in range(n):
            t = month + timedelta(seconds=i * 50 % (27 * 86400), microseconds=i)
            buf.write(f"{uuid.uuid4()}\t{jar}\tcowrie.login.failed\t198.51.100.{i % 250}\t{i % 10}\t"
                      f'{{"i": {i}, "username": "root", "password": "p{i % 97}"}}\t{t.isoformat()}\tlogin\n')
        with conn.cursor().copy("COPY events (id, honeyjar_id, event_type, source_ip, threat_level, payload, created_at, "
                                "event_kind) FROM STDIN") as cp:
            cp.write(buf.getvalue())
    return jar


def bench_retention(c: Clients, n: int) -> tuple[float, float]:
    pol = r.load_policies()
    m1 = datetime(random.randint(1960, 1969), random.randint(1, 12), 1, tzinfo=UTC)
    m2 = datetime(random.randint(1950, 1959), random.randint(1, 12), 1, tzinfo=UTC)
    # baseline: COPY the month out, drop its partition
    fill_month(c, m1, n)
    part = f"events_{m1:%Y_%m}"
    t = time.perf_counter()
    with c.db() as conn:
        out = io.BytesIO()
        with conn.cursor().copy(f'COPY (SELECT * FROM "{part}") TO STDOUT') as cp:
            for chunk in cp:
                out.write(chunk)
        conn.execute(f'ALTER TABLE events DETACH PARTITION "{part}"')
        conn.execute(f'DROP TABLE "{part}"')
    base = time.perf_counter() - t
    # the sweep: archive to S3 Parquet, read back and verify, drop (leftovers of an interrupted
    # earlier run swept first, untimed, so the timed sweep moves exactly this month)
    r.sweep_events(c, pol, m2 + timedelta(days=150), False, 5000, 2000)
    fill_month(c, m2, n)
    t = time.perf_counter()
    acts = r.sweep_events(c, pol, m2 + timedelta(days=150), False, 5000, 2000)
    sweep = time.perf_counter() - t
    arch = next(a for a in acts if a.tier == "warm" and a.action == "archive")
    assert arch.rows == n, arch
    return base, sweep


def bench_backup(c: Clients) -> tuple[float, float, int]:
    cl = stack.app_cluster()
    with tempfile.TemporaryDirectory(dir=S.stack_dir) as d:
        Path(d).chmod(0o777)
        t = time.perf_counter()
        subprocess.run([str(pg_bin_dir() / "pg_basebackup"), "-h", cl.host, "-p", str(cl.port), "-U", "postgres",
                        "-D", str(Path(d) / "base"), "-Ft", "-Xfetch", "-c", "fast"], check=True, capture_output=True,
                       user=os_user())
        base = time.perf_counter() - t
        size = sum(f.stat().st_size for f in (Path(d) / "base").iterdir())
    t = time.perf_counter()
    backup.backup_postgres(c, pgbackrest(), "full", S.backup_bucket, "bench")
    return base, time.perf_counter() - t, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    with Clients.from_settings() as c:
        base, sweep = bench_retention(c, args.events)
        print(f"events retention, {args.events} rows of one month:")
        print(f"  bare COPY out + DROP          {base:7.2f} s  ({args.events / base:,.0f} rows/s)")
        print(f"  archive -> verify -> drop     {sweep:7.2f} s  ({args.events / sweep:,.0f} rows/s)  "
              f"ratio {base / sweep:.2f}x of the bare path")
        pb, br, size = bench_backup(c)
        print(f"PostgreSQL full backup of the application cluster ({size / 1e6:.0f} MB):")
        print(f"  pg_basebackup to local disk   {pb:7.2f} s")
        print(f"  pgBackRest full to S3 (TLS)   {br:7.2f} s  ratio {pb / br:.2f}x of pg_basebackup")
        wd = scratch_dir()
        try:
            ds = [drills.drill_postgres(c, pgbackrest(), S.app_dsn, wd, f"bench-{uuid.uuid4().hex[:6]}")]
            kw = c.redis.connection_pool.connection_kwargs
            backup.snapshot_redis(c, kw["host"], kw["port"], S.backup_bucket, "bench")
            ds.append(drills.drill_redis(c, S.backup_bucket, wd, "bench"))
            from include.documents import vectorstore

            backup.snapshot_chroma(c, vectorstore.client(), S.backup_bucket, "bench")
            ds.append(drills.drill_chroma(c, S.backup_bucket, wd, "bench"))
        finally:
            shutil.rmtree(wd, ignore_errors=True)
        print("restore drills (RTO: restore to verified; RPO: target minus newest data restored):")
        print(f"  {'kind':9s} {'tier':9s} {'RTO s':>8s} {'objective':>10s} {'RPO s':>8s} {'objective':>10s}  status")
        for d in ds:
            out = drills.record(c, d)
            rto, rpo = drills.OBJECTIVES[d.tier]
            print(f"  {d.kind:9s} {d.tier:9s} {d.rto_seconds or float('nan'):8.2f} {rto:10.0f} "
                  f"{d.rpo_seconds if d.rpo_seconds is not None else float('nan'):8.2f} {rpo:10.0f}  {out['status']}"
                  + (f" ({out.get('error')})" if out["status"] != "passed" else ""))


if __name__ == "__main__":
    main()

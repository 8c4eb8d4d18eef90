"""Benchmark: a database honey comb run over a 1,000,000-row table against a bare COPY.

    python bench/comb_throughput.py [--rows 1000000] [--small 250000]

Measured in the same run, each in a fresh process (so peak RSS is that run's own):
  copy        COPY (SELECT * FROM t) TO STDOUT, every byte read by psycopg, nothing else done
  upload      a bare upload of the comb's Parquet bytes to the same S3 endpoint (boto3's managed
              multipart upload_file, default threads)
  comb_local  the comb's extraction + scrubbing (masks and removal in the SELECT; the email's
              keyed HMAC-SHA256 in the worker) + Parquet (snappy) into a local file
  comb        the comb end to end, as its extract task runs it: under the delivery lock, extract
              + scrub + Parquet streamed to the window's final key on the S3 endpoint
Targets, both against baselines measured in the same run: comb_local <= 1.5x the bare COPY, and
comb <= 1.1x (bare COPY + bare upload). Also prints peak memory at `--small` rows against
`--rows` (flat means streaming).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

TABLE_SQL = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.{name} (
    id BIGINT PRIMARY KEY, full_name TEXT, email TEXT, ssn TEXT, phone_mobile TEXT, phone_home TEXT,
    city TEXT, segment TEXT, lifetime_value NUMERIC(12,2), notes TEXT, updated_at TIMESTAMPTZ NOT NULL);
"""
FILL_SQL = """
INSERT INTO bench.{name}
SELECT g, 'Person ' || md5(g::text), 'user' || g || '@' || substr(md5((g*7)::text), 1, 8) || '.example',
       lpad((g %% 900)::text, 3, '0') || '-' || lpad((g %% 90)::text, 2, '0') || '-' || lpad((g %% 9000)::text, 4, '0'),
       '+1 555 ' || lpad((g %% 10000000)::text, 7, '0'), CASE WHEN g %% 3 = 0 THEN NULL ELSE '+44 20 ' || lpad(g::text, 8, '0') END,
       (ARRAY['Leeds','Lyon','Berlin','Austin','Osaka'])[1 + g %% 5], (ARRAY['smb','enterprise','consumer'])[1 + g %% 3],
       (g %% 100000) / 7.0,
       'Customer ' || g || ' asked about order ' || md5((g*13)::text) || ' and wants a call back next week.',
       TIMESTAMPTZ '2026-01-01' + (g || ' seconds')::interval
  FROM generate_series(1, %s) g
"""


def comb_for(table: str):
    from include.honeycomb.config import parse_comb
    from include.settings import get_settings

    s = get_settings()
    return parse_comb({
        "name": f"bench_{table}", "type": "database", "subtype": "postgresql",
        "configuration": {
            "connection": {"vault_path": "honey_combs/sample_customers/credentials",
                           "parameters": {"host": s.pg_host, "port": s.pg_port, "database": s.sample_source_db}},
            "extraction": {"mode": "snapshot", "table": f"bench.{table}", "primary_key": ["id"]},
            "scrubbing": {"custom_rules": [{"field": "email", "action": "hash"}, {"field": "ssn", "action": "remove"},
                                           {"pattern": "phone_*", "action": "mask"}]},
            "output": {"prefix": f"bench/{table}"},
        },
    }, "bench")


def ensure_table(rows: int) -> str:
    import psycopg

    from include.settings import get_settings

    s = get_settings()
    name = f"customers_{rows}"
    with psycopg.connect(s.dsn(s.sample_source_db), autocommit=True) as c:
        c.execute(TABLE_SQL.format(name=name))
        have = c.execute(f"SELECT count(*) FROM bench.{name}").fetchone()[0]
        if have != rows:
            c.execute(f"TRUNCATE bench.{name}")
            c.execute(FILL_SQL.format(name=name), (rows,))
            c.execute(f"VACUUM ANALYZE bench.{name}")
        c.execute("GRANT USAGE ON SCHEMA bench TO sting_reader")
        c.execute(f"GRANT SELECT ON bench.{name} TO sting_reader")
        c.execute(f"SELECT count(*) FROM bench.{name}")  # warm the cache for both sides
    return name


PARQUET = Path(os.environ.get("TMPDIR", "/tmp")) / "sting-bench-comb.parquet"


def child(kind: str, table: str) -> dict:
    from include.settings import get_settings

    s = get_settings()
    t0 = time.perf_counter()
    if kind == "copy":
        import psycopg

        n = 0
        with psycopg.connect(s.dsn(s.sample_source_db)) as c, c.cursor() as cur:
            with cur.copy(f"COPY (SELECT * FROM bench.{table}) TO STDOUT") as cp:
                for block in cp:
                    n += len(block)
        result = {"bytes": n}
    elif kind == "upload":
        from include import storage

        storage.s3_client().upload_file(str(PARQUET), s.comb_output_bucket, f"bench/upload/{table}.parquet")
        result = {"bytes": PARQUET.stat().st_size}
    else:
        from include import vault
        from include.honeycomb.pipeline import extract_and_publish, extract_to_file
        from include.honeycomb.sources.database import Credentials
        from include.honeycomb.windows import resolve_window

        comb = comb_for(table)
        path = comb.configuration.connection.vault_path
        creds = Credentials.from_secret(vault.read_secret(path), path)
        secret = vault.read_secret("sting/scrubbing")
        key, version = secret["hash_key"], secret.get("hash_key_version", "1")
        window = resolve_window(comb, window_end="2026-11-01T00:00:00Z")
        t0 = time.perf_counter()  # both from here: secrets read, as in the task
        if kind == "comb_local":
            out = extract_to_file(comb, window, creds, key, str(PARQUET), hash_key_version=version)
            out["bytes"] = PARQUET.stat().st_size
        else:
            out = extract_and_publish(comb, window, creds, key, hash_key_version=version)
        result = {"rows": out["records_processed"], "bytes": out["bytes"]}
    result["seconds"] = time.perf_counter() - t0
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_child(kind: str, table: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    out = subprocess.run([sys.executable, __file__, "--child", kind, table], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=250_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(*a.child)))
        return 0
    big, small = ensure_table(a.rows), ensure_table(a.small)
    kinds = ("copy", "comb_local", "upload", "comb")  # comb_local writes the file upload sends
    best: dict[str, dict] = {}
    for _ in range(a.repeat):  # interleaved, best of N: every variant sees the same machine state
        for kind in kinds:
            r = run_child(kind, big)
            if kind not in best or r["seconds"] < best[kind]["seconds"]:
                best[kind] = r
    small_comb = min((run_child("comb", small) for _ in range(a.repeat)), key=lambda r: r["seconds"])
    base = best["copy"]["seconds"]
    labels = {
        "copy": "bare COPY (SELECT *) TO STDOUT",
        "upload": "bare upload of the Parquet bytes",
        "comb_local": "comb -> local Parquet (no S3)",
        "comb": "comb end to end -> S3",
    }
    print(f"{a.rows:,} rows, best of {a.repeat}, each variant in a fresh process")
    for kind in kinds:
        r = best[kind]
        what = f"{r['bytes'] / 1e6:.0f} MB {'COPY text' if kind == 'copy' else 'Parquet'}"
        print(f"  {labels[kind]:36s} {r['seconds']:6.2f} s  {a.rows / r['seconds']:>9,.0f} rows/s  "
              f"peak RSS {r['peak_rss_mb']:4.0f} MB  ({what})")
    local = best["comb_local"]["seconds"] / base
    e2e_base = base + best["upload"]["seconds"]
    e2e = best["comb"]["seconds"] / e2e_base
    print(f"comb -> local Parquet / bare COPY:                 {local:4.2f}  (target <= 1.5: {'met' if local <= 1.5 else 'NOT met'})")
    print(f"comb -> S3 / (bare COPY + bare upload = {e2e_base:.2f} s): {e2e:4.2f}  "
          f"(target <= 1.1: {'met' if e2e <= 1.1 else 'NOT met'})")
    comb = best["comb"]
    print(f"comb peak RSS: {small_comb['peak_rss_mb']:.0f} MB at {a.small:,} rows, {comb['peak_rss_mb']:.0f} MB at "
          f"{a.rows:,} rows (ratio {comb['peak_rss_mb'] / small_comb['peak_rss_mb']:.2f}; flat = 1.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The register of a database comb's published windows (table honey_comb_output_windows): which
outputs a run's read range overlaps, found by their recorded windows (any length, any month),
not by listing the partitions of the last month. Takes a psycopg connection (autocommit)."""

from __future__ import annotations

import logging
from datetime import datetime

from include import storage
from include.honeycomb.windows import OutputLocation, parse_interval_from_key

log = logging.getLogger(__name__)


def ensure_indexed(conn, loc: OutputLocation) -> None:
    """Outputs published before the register existed: the prefix is listed into it once."""
    if conn.execute("SELECT 1 FROM honey_comb_output_prefixes WHERE bucket = %s AND prefix = %s",
                    (loc.bucket, loc.prefix)).fetchone():
        return
    rows = []
    for obj in storage.list_keys(loc.bucket, f"{loc.prefix}/year="):
        iv = parse_interval_from_key(obj["Key"])
        if iv and iv[0] < iv[1]:
            rows.append((loc.bucket, loc.prefix, obj["Key"], iv[0], iv[1]))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO honey_comb_output_windows (bucket, prefix, key, window_start, window_end)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT (bucket, key) DO NOTHING""", rows)
    conn.execute("""INSERT INTO honey_comb_output_prefixes (bucket, prefix, objects) VALUES (%s, %s, %s)
                    ON CONFLICT DO NOTHING""", (loc.bucket, loc.prefix, len(rows)))
    if rows:
        log.info("comb outputs s3://%s/%s: %d existing window(s) registered", loc.bucket, loc.prefix, len(rows))


def register(conn, loc: OutputLocation, key: str, start: datetime, end: datetime, kind: str = "window") -> None:
    conn.execute(
        """INSERT INTO honey_comb_output_windows (bucket, prefix, key, window_start, window_end, kind)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (bucket, key) DO UPDATE SET window_start = EXCLUDED.window_start,
               window_end = EXCLUDED.window_end, registered_at = NOW()""",
        (loc.bucket, loc.prefix, key, start, end, kind))


def overlapping(conn, loc: OutputLocation, lo: datetime, hi: datetime, exclude: str | None = None) -> list[str]:
    """Keys of registered outputs whose window overlaps [lo, hi)."""
    ensure_indexed(conn, loc)
    rows = conn.execute(
        """SELECT key FROM honey_comb_output_windows
            WHERE bucket = %s AND prefix = %s AND window_end > %s AND window_start < %s AND key <> %s
            ORDER BY window_start, key""", (loc.bucket, loc.prefix, lo, hi, exclude or "")).fetchall()
    return [r[0] if isinstance(r, tuple) else r["key"] for r in rows]


def containing(conn, loc: OutputLocation, values: list[datetime]) -> list[tuple[str, datetime, datetime]]:
    """(key, start, end) of registered outputs whose window holds one of `values`."""
    ensure_indexed(conn, loc)
    rows = conn.execute(
        """SELECT DISTINCT w.key, w.window_start, w.window_end FROM honey_comb_output_windows w
             JOIN unnest(%s::timestamptz[]) AS v(t) ON w.window_start <= v.t AND v.t < w.window_end
            WHERE w.bucket = %s AND w.prefix = %s ORDER BY w.window_start""",
        (values, loc.bucket, loc.prefix)).fetchall()
    return [tuple(r) if isinstance(r, tuple) else (r["key"], r["window_start"], r["window_end"]) for r in rows]

"""Retention sweeps for the seed's policies (include/lifecycle/retention.yaml).

Every sweep function takes the run's clients, the policies, the instant the cut-offs count back
from (the run's interval end: the same logical date always means the same cut-offs) and `dry_run`.
A dry run computes exactly what the real sweep removes (the same predicates, the same holds) and
changes nothing. The real sweep works in bounded batches, each a short transaction under
`lock_timeout`, so it never blocks ingestion for long: a batch that cannot get its lock fails that
action with a message naming it, and the next run finishes the work. A second run is a no-op.

Legal holds (`legal_holds`): a jar, a user or a time range of events on hold is never deleted
(archiving copies, so it is allowed; the copy's deletion is held too).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

CONFIG_PATH = Path(__file__).with_name("retention.yaml")
POLICIES = ("events", "user_data", "ai_embeddings", "buckets", "system")


# ---------------------------------------------------------------- configuration
def load_policies(path: Path | None = None, overrides: dict | None = None) -> dict:
    """The policies: the seed's defaults (retention.yaml) with a deployment's file and a run's
    overrides merged over them. Unknown policies or keys fail, naming them."""
    import os

    import yaml

    base = yaml.safe_load(CONFIG_PATH.read_text())
    extra = os.environ.get("STING_RETENTION_CONFIG")
    for layer in ([yaml.safe_load(Path(extra).read_text()) or {}] if extra else []) + [overrides or {}]:
        for pol, values in layer.items():
            if pol not in base:
                raise ValueError(f"unknown retention policy '{pol}' (known: {', '.join(base)})")
            if not isinstance(values, dict):
                raise ValueError(f"retention policy '{pol}' must be a mapping, got {type(values).__name__}")
            for k, v in values.items():
                if k not in base[pol] and pol != "buckets":
                    raise ValueError(f"unknown key '{k}' in retention policy '{pol}' (known: {', '.join(base[pol])})")
                if v is not None and not isinstance(v, (int, str)) or isinstance(v, bool):
                    raise ValueError(f"retention policy '{pol}.{k}' must be a number of days or null, got {v!r}")
                if isinstance(v, int) and v < 0:
                    raise ValueError(f"retention policy '{pol}.{k}' must not be negative, got {v}")
            base[pol] = {**base[pol], **copy.deepcopy(values)}
    return base


@dataclass
class Action:
    """One line of a sweep's report (and one `retention_runs` row)."""

    policy: str
    tier: str
    action: str
    cutoff: datetime | None
    rows: int = 0
    objects: int = 0
    bytes: int = 0
    held: int = 0
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cutoff"] = self.cutoff.isoformat() if self.cutoff else None
        return d


class SweepError(RuntimeError):
    pass


@contextlib.contextmanager
def batch(clients, lock_timeout_ms: int, what: str):
    """One bounded transaction: waits at most `lock_timeout_ms` for a lock, then fails naming
    `what` (the next run retries)."""
    import psycopg

    try:
        with clients.db() as conn:
            conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            conn.execute("SET LOCAL statement_timeout = '10min'")
            yield conn
    except psycopg.errors.LockNotAvailable as e:
        raise SweepError(f"{what}: lock not granted within {lock_timeout_ms} ms (ingestion busy); "
                         "the next sweep retries") from e


# ---------------------------------------------------------------- legal holds
@dataclass(frozen=True)
class Holds:
    jars: frozenset[str]
    users: frozenset[str]
    ranges: tuple[tuple[datetime, datetime], ...]

    @classmethod
    def load(cls, conn) -> Holds:
        rows = conn.execute("SELECT scope, honeyjar_id, user_id, range_start, range_end FROM legal_holds "
                            "WHERE released_at IS NULL").fetchall()
        users = frozenset(str(r["user_id"]) for r in rows if r["scope"] == "user")
        jars = {str(r["honeyjar_id"]) for r in rows if r["scope"] == "jar"}
        if users:  # a user's hold covers the jars they own
            jars |= {str(r["id"]) for r in conn.execute("SELECT id FROM honey_jars WHERE owner_id = ANY(%s::uuid[])",
                                                          (list(users),))}
        ranges = tuple((r["range_start"], r["range_end"]) for r in rows if r["scope"] == "event_range")
        return cls(frozenset(jars), users, ranges)

    def event_filter(self, alias: str = "") -> tuple[str, dict]:
        """SQL that is true for an event on hold (parameters named hold_*)."""
        p = f"{alias}." if alias else ""
        parts, params = ["false"], {"hold_jars": list(self.jars)}
        if self.jars:
            parts.append(f"{p}honeyjar_id = ANY(%(hold_jars)s::uuid[])")
        for i, (lo, hi) in enumerate(self.ranges):
            parts.append(f"({p}created_at >= %(hold_lo{i})s AND {p}created_at < %(hold_hi{i})s)")
            params[f"hold_lo{i}"], params[f"hold_hi{i}"] = lo, hi
        return "(" + " OR ".join(parts) + ")", params

    def covers_time(self, lo: datetime, hi: datetime) -> bool:
        return any(a < hi and lo < b for a, b in self.ranges)


def place_hold(conn, *, scope: str, reason: str, honeyjar_id: str | None = None, user_id: str | None = None,
               range_start: datetime | None = None, range_end: datetime | None = None, created_by: str | None = None) -> str:
    return str(conn.execute(
        "INSERT INTO legal_holds (scope, honeyjar_id, user_id, range_start, range_end, reason, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (scope, honeyjar_id, user_id, range_start, range_end, reason, created_by)).fetchone()["id"])


def release_hold(conn, hold_id: str) -> None:
    conn.execute("UPDATE legal_holds SET released_at = NOW() WHERE id = %s", (hold_id,))


# ---------------------------------------------------------------- events
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PART_RE = re.compile(r"^events_(\d{4})_(\d{2})$")
ARCHIVE_COLUMNS_SQL = """SELECT column_name, data_type FROM information_schema.columns
                          WHERE table_schema = current_schema() AND table_name = 'events' ORDER BY ordinal_position"""


def _month_bounds(y: int, m: int) -> tuple[datetime, datetime]:
    lo = datetime(y, m, 1, tzinfo=UTC)
    hi = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    return lo, hi


def row_checksum(ids_and_times) -> str:
    """An archive's content checksum: the sum of md5(id:created_at in microseconds) prefixes (order
    free, additive), computed over the rows exported and again over the Parquet read back."""
    total = 0
    for i, t in ids_and_times:
        us = (t - EPOCH) // timedelta(microseconds=1)
        total += int(hashlib.md5(f"{i}:{us}".encode()).hexdigest()[:15], 16)
    return str(total)


def event_months(conn, cutoff: datetime) -> list[dict]:
    """Months wholly older than `cutoff` that still have events in PostgreSQL: monthly partitions
    and rows of the default partition (moved into a partition before archiving)."""
    months: dict[tuple[int, int], dict] = {}
    for r in conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                          "WHERE i.inhparent = 'events'::regclass"):
        m = PART_RE.match(r["relname"])
        if m:
            lo, hi = _month_bounds(int(m[1]), int(m[2]))
            if hi <= cutoff:
                months[(lo.year, lo.month)] = {"partition": r["relname"], "lo": lo, "hi": hi, "exists": True}
    for r in conn.execute("SELECT DISTINCT date_trunc('month', created_at) AS m FROM events_default "
                          "WHERE created_at < %s", (cutoff,)):
        lo, hi = _month_bounds(r["m"].year, r["m"].month)
        if hi <= cutoff:
            months.setdefault((lo.year, lo.month), {"partition": f"events_{lo:%Y_%m}", "lo": lo, "hi": hi, "exists": False})
    return [months[k] for k in sorted(months)]


def _events_to_parquet(conn, lo: datetime, hi: datetime, batch_rows: int) -> tuple[bytes, int, list[str], str]:
    """The month's events not in an archive yet (not in the session's `archived_ids`) as Parquet
    (text for uuid/inet/jsonb), written in row groups: (bytes, rows, jars, row checksum)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = conn.execute(ARCHIVE_COLUMNS_SQL).fetchall()
    select, fields = [], []
    for c in cols:
        name, t = c["column_name"], c["data_type"]
        if t == "timestamp with time zone":
            select.append(f"e.{name}")
            fields.append(pa.field(name, pa.timestamp("us", tz="UTC")))
        elif t in ("smallint", "integer", "bigint"):
            select.append(f"e.{name}")
            fields.append(pa.field(name, pa.int64()))
        elif t in ("real", "double precision"):
            select.append(f"e.{name}")
            fields.append(pa.field(name, pa.float64()))
        else:  # uuid, inet, jsonb, text, char: text
            select.append(f"e.{name}::text AS {name}")
            fields.append(pa.field(name, pa.string()))
    schema = pa.schema(fields, metadata={b"sting.table": b"events",
                                         b"sting.range": f"{lo.isoformat()}/{hi.isoformat()}".encode()})
    from psycopg.rows import tuple_row

    names = [f.name for f in fields]
    i_id, i_jar, i_at = names.index("id"), names.index("honeyjar_id"), names.index("created_at")
    buf = io.BytesIO()
    n, jars, pairs = 0, set(), []
    with pq.ParquetWriter(buf, schema, compression="zstd") as w, \
            conn.cursor(name="archive_events", row_factory=tuple_row) as cur:
        cur.itersize = batch_rows
        cur.execute(f"SELECT {', '.join(select)} FROM events e WHERE e.created_at >= %s AND e.created_at < %s "
                    "AND NOT EXISTS (SELECT 1 FROM archived_ids a WHERE a.id = e.id AND a.created_at = e.created_at) "
                    "ORDER BY e.created_at, e.id", (lo, hi))
        while True:
            rows = cur.fetchmany(batch_rows)
            if not rows:
                break
            cols = list(zip(*rows, strict=True))
            w.write_table(pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, fields, strict=True)],
                                               schema=schema))
            jars.update(cols[i_jar])
            pairs += zip(cols[i_id], cols[i_at], strict=True)
            n += len(rows)
    return buf.getvalue(), n, sorted(jars), row_checksum(pairs)


def read_archive(s3, bucket: str, key: str):
    """An archive read back from S3: (pyarrow table, sha256 of the object)."""
    import pyarrow.parquet as pq

    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)), hashlib.sha256(body).hexdigest()


def verify_archive(s3, rec: dict):
    """Read an archive back from S3 and check it against what was written (object checksum, row
    count, row checksum); returns the table."""
    where = f"s3://{rec['bucket']}/{rec['key']}"
    try:
        table, sha = read_archive(s3, rec["bucket"], rec["key"])
    except Exception as e:
        raise SweepError(f"archive {where} cannot be read back: {type(e).__name__}: {str(e)[:200]}") from e
    if sha != rec["sha256"]:
        raise SweepError(f"archive {where}: checksum read back {sha[:12]} != written {rec['sha256'][:12]}")
    if table.num_rows != rec["rows"]:
        raise SweepError(f"archive {where}: {table.num_rows} rows read back, {rec['rows']} written")
    got = row_checksum(zip(table.column("id").to_pylist(), table.column("created_at").to_pylist(), strict=True))
    if got != rec["row_checksum"]:
        raise SweepError(f"archive {where}: row checksum read back differs from the rows written")
    return table


def _load_archived_ids(conn, s3, recs: list[dict], tables: list | None = None) -> int:
    """The ids of a month's archives, each read back from S3 and verified (or, `tables`, already
    verified), into the session's temp table `archived_ids`: only rows found there are ever
    removed from PostgreSQL."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS archived_ids (id uuid, created_at timestamptz)")
    conn.execute("TRUNCATE archived_ids")
    n = 0
    for t in tables if tables is not None else (verify_archive(s3, rec) for rec in recs):
        buf = io.StringIO()
        for i, c in zip(t.column("id").to_pylist(), t.column("created_at").to_pylist(), strict=True):
            buf.write(f"{i}\t{c.isoformat()}\n")
        with conn.cursor().copy("COPY archived_ids (id, created_at) FROM STDIN") as cp:
            cp.write(buf.getvalue())
        n += t.num_rows
    conn.execute("ANALYZE archived_ids")
    return n


def sweep_events(clients, pol: dict, now: datetime, dry_run: bool, batch_size: int, lock_ms: int) -> list[Action]:
    ep = pol["events"]
    hot_cut, warm_cut, del_cut = (now - timedelta(days=ep[k]) for k in ("hot_days", "warm_days", "delete_days"))
    bucket = ep["archive_bucket"]
    out: list[Action] = [_trim_redis_hot(clients, hot_cut, dry_run)]
    with clients.db() as conn:
        holds = Holds.load(conn)
        months = event_months(conn, warm_cut)
    held_sql, held_params = holds.event_filter()
    archive = Action("events", "warm", "archive", warm_cut)
    drop = Action("events", "warm", "delete", warm_cut)
    planned: list[dict] = []  # (dry run) archives the real run would write
    for m in months:
        lo, hi, part = m["lo"], m["hi"], m["partition"]
        with clients.db() as conn:
            recs = conn.execute("SELECT * FROM event_archives WHERE range_start = %s AND deleted_at IS NULL "
                                "ORDER BY archived_at", (lo,)).fetchall()
            verified = [verify_archive(clients.s3, rec) for rec in recs]
            _load_archived_ids(conn, clients.s3, recs, verified)
            q = {"lo": lo, "hi": hi, **held_params}
            c = conn.execute(
                f"""SELECT count(*) AS n,
                           count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM archived_ids a
                                            WHERE a.id = events.id AND a.created_at = events.created_at)) AS unarchived,
                           count(*) FILTER (WHERE {held_sql}) AS held,
                           array_agg(DISTINCT honeyjar_id::text) FILTER (WHERE NOT EXISTS (SELECT 1 FROM archived_ids a
                                            WHERE a.id = events.id AND a.created_at = events.created_at)) AS jars
                      FROM events WHERE created_at >= %(lo)s AND created_at < %(hi)s""", q).fetchone()
            size = conn.execute("SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0) AS b", (part,)).fetchone()["b"]
        n, unarchived, held = c["n"], c["unarchived"], c["held"]
        if n == held and not (held == 0 and m["exists"]):
            drop.held += held
            continue  # nothing to archive or remove (only held rows left)
        archive.rows += unarchived
        archive.objects += 1 if unarchived else 0
        drop.rows += n - held
        drop.held += held
        drop.bytes += size if held == 0 else 0
        drop.detail.setdefault("months", []).append({"partition": part, "rows": n, "held": held, "archived_now": unarchived,
                                                     "drop_partition": held == 0})
        if dry_run:
            if unarchived:  # the archive this month would get: the cold tier may delete it in the same run
                planned.append({"range_start": lo, "range_end": hi, "rows": unarchived,
                                "jar_ids": [j for j in (c["jars"] or []) if j], "partition_name": part})
            continue
        if not m["exists"]:  # rows in the default partition: into their month's partition first
            with batch(clients, lock_ms, f"events: creating partition {part}") as conn:
                conn.execute("SELECT sting_ensure_event_partitions(%s, %s)", (lo.date(), lo.date()))
        if unarchived:
            with clients.db() as conn:  # every archive of the month ever written (deleted ones too)
                seq = conn.execute("SELECT count(*) AS n FROM event_archives WHERE range_start = %s", (lo,)).fetchone()["n"]
            name = part if not seq else f"{part}~{seq}"
            key = f"events/{lo:%Y}/{lo:%m}/{name}.parquet"
            with clients.db() as conn:
                data, rows, jars, checksum = _events_to_parquet(conn, lo, hi, batch_size)
            sha = hashlib.sha256(data).hexdigest()
            clients.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/vnd.apache.parquet",
                                  Metadata={"rows": str(rows), "sha256": sha})
            rec = {"partition_name": name, "bucket": bucket, "key": key, "rows": rows, "sha256": sha, "row_checksum": checksum}
            verified.append(verify_archive(clients.s3, rec))  # read back before anything is dropped
            archive.bytes += len(data)
            with clients.db() as conn:
                conn.execute(
                    """INSERT INTO event_archives (partition_name, range_start, range_end, bucket, key, rows, bytes, sha256,
                                                   row_checksum, verified_at, jar_ids)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NOW(), %s::uuid[])""",
                    (name, lo, hi, bucket, key, rows, len(data), sha, checksum, jars))
                recs = conn.execute("SELECT * FROM event_archives WHERE range_start = %s AND deleted_at IS NULL "
                                    "ORDER BY archived_at", (lo,)).fetchall()
        with clients.db() as conn:  # the ids of every verified archive of the month, the new one included
            _load_archived_ids(conn, clients.s3, recs, verified)
        _remove_month(clients, part, lo, hi, held, held_sql, held_params, batch_size, lock_ms)
    out += [archive, drop]
    out.append(_delete_event_archives(clients, holds, del_cut, dry_run, planned))
    return out


def _remove_month(clients, part, lo, hi, held, held_sql, held_params, batch_size, lock_ms) -> None:
    """The month's archived rows (the session's `archived_ids`) out of PostgreSQL: the partition
    detached and dropped when nothing in it is held (checked, under the detach's lock, to hold only
    archived rows), else the archived rows not on hold deleted in batches (the partition stays
    with the held rows)."""
    in_archive = ("EXISTS (SELECT 1 FROM archived_ids a WHERE a.id = {t}.id AND a.created_at = {t}.created_at)")
    e_held = re.sub(r"\b(created_at|honeyjar_id)\b", r"e.\1", held_sql)
    while True:  # alerts keep their row, the reference cleared (the FK's ON DELETE SET NULL)
        with batch(clients, lock_ms, f"events {part}: clearing alert references") as conn:
            n = conn.execute(
                f"""UPDATE alerts SET event_id = NULL, event_created_at = NULL WHERE id IN (
                       SELECT a.id FROM alerts a JOIN events e ON e.id = a.event_id AND e.created_at = a.event_created_at
                        WHERE a.event_created_at >= %(lo)s AND a.event_created_at < %(hi)s AND NOT {e_held}
                          AND {in_archive.format(t='e')} LIMIT %(n)s)""",
                {"lo": lo, "hi": hi, "n": batch_size, **held_params}).rowcount
        if n < batch_size:
            break
    if held == 0:
        with batch(clients, lock_ms, f"events {part}: detaching the partition") as conn:
            if conn.execute("SELECT to_regclass(%s) AS r", (part,)).fetchone()["r"] is not None:
                conn.execute(f'ALTER TABLE events DETACH PARTITION "{part}"')
                stray = conn.execute(f'SELECT count(*) AS n FROM "{part}" p WHERE NOT {in_archive.format(t="p")}'
                                     ).fetchone()["n"]
                if stray:  # arrived after the export: rolled back, archived by the next run
                    raise SweepError(f"events {part}: {stray} rows arrived after the archive was written; "
                                     "partition kept, the next sweep archives them")
                conn.execute(f'DROP TABLE "{part}"')
        with clients.db() as conn:
            conn.execute("UPDATE event_archives SET dropped_at = NOW(), held_rows = 0 WHERE range_start = %s "
                         "AND deleted_at IS NULL", (lo,))
        return
    while True:
        with batch(clients, lock_ms, f"events {part}: deleting archived rows not on hold") as conn:
            n = conn.execute(f'DELETE FROM "{part}" WHERE ctid IN (SELECT ctid FROM "{part}" WHERE NOT {held_sql} '
                             f'AND {in_archive.format(t=chr(34) + part + chr(34))} LIMIT %(n)s)',
                             {"n": batch_size, **held_params}).rowcount
        if n < batch_size:
            break
    with clients.db() as conn:
        conn.execute("UPDATE event_archives SET held_rows = %s WHERE range_start = %s AND deleted_at IS NULL", (held, lo))


def _delete_event_archives(clients, holds: Holds, cutoff: datetime, dry_run: bool,
                           planned: list[dict] | None = None) -> Action:
    """Archives past the cold cut-off deleted. A dry run also counts the archives the same real
    run would write first (`planned`, by the warm tier) and then delete: the same predicates, so
    the dry run's report equals what the real run does (their bytes are not known before they are
    written: counted under `detail.planned`)."""
    act = Action("events", "cold", "delete", cutoff)
    with clients.db() as conn:
        recs = conn.execute("SELECT * FROM event_archives WHERE deleted_at IS NULL AND range_end <= %s "
                            "ORDER BY range_start", (cutoff,)).fetchall()
    if dry_run and planned:
        new = [p for p in planned if p["range_end"] <= cutoff]
        recs = [*recs, *({**p, "bytes": 0} for p in new)]
        act.detail["planned"] = len(new)
    for rec in recs:
        if holds.covers_time(rec["range_start"], rec["range_end"]) or holds.jars & {str(j) for j in rec["jar_ids"]}:
            act.held += rec["rows"]
            continue
        act.rows += rec["rows"]
        act.objects += 1
        act.bytes += rec["bytes"]
        if not dry_run:
            _delete_keys(clients.s3, rec["bucket"], [rec["key"]])
            with clients.db() as conn:
                conn.execute("UPDATE event_archives SET deleted_at = NOW() WHERE partition_name = %s", (rec["partition_name"],))
    return act


STATS_PATTERN = "stats:honeyjar:*:hourly"
EVENT_STREAM = "queue:events:pending"


def _trim_redis_hot(clients, cutoff: datetime, dry_run: bool) -> Action:
    """Hot tier: stats hash fields for hours before the cut-off, and stream entries older than it
    that every consumer group has acknowledged (a pending entry is never trimmed)."""
    act = Action("events", "hot", "trim", cutoff, detail={"store": "redis"})
    r = clients.redis
    for key in r.scan_iter(match=STATS_PATTERN, count=500):
        old = [f for f in r.hkeys(key)
               if datetime.fromisoformat(f.decode() if isinstance(f, bytes) else f) < cutoff]
        act.objects += len(old)
        if old and not dry_run:
            r.hdel(key, *old)
    if r.exists(EVENT_STREAM):
        minid = max(0, int(cutoff.timestamp() * 1000))  # stream ids are milliseconds since 1970
        for g in r.xinfo_groups(EVENT_STREAM):
            pend = r.xpending(EVENT_STREAM, g["name"])
            if pend and pend.get("pending") and pend.get("min"):
                low = pend["min"].decode() if isinstance(pend["min"], bytes) else pend["min"]
                minid = min(minid, int(low.split("-")[0]))
            last = g.get("last-delivered-id") or b"0-0"
            last = last.decode() if isinstance(last, bytes) else last
            minid = min(minid, int(last.split("-")[0]) + 1)
        n = 0
        start = "-"
        while minid > 0:  # count what XTRIM MINID removes, in pages
            page = r.xrange(EVENT_STREAM, min=start, max=f"({minid}-0", count=1000)
            n += len(page)
            if len(page) < 1000:
                break
            last_id = page[-1][0].decode() if isinstance(page[-1][0], bytes) else page[-1][0]
            start = "(" + last_id
        act.rows += n
        act.detail["stream_entries"] = n
        if n and not dry_run:
            r.xtrim(EVENT_STREAM, minid=f"{minid}-0", approximate=False)
    return act


# ---------------------------------------------------------------- user data
USER_PREFIXES = ("profiles/{uid}/", "documents/{uid}/")


def sweep_user_data(clients, pol: dict, now: datetime, dry_run: bool, batch_size: int, lock_ms: int) -> list[Action]:
    up = pol["user_data"]
    inactive_cut = now - timedelta(days=up["inactive_days"])
    purge_cut = now - timedelta(days=up["soft_delete_days"])
    deact = Action("user_data", "inactive", "deactivate", inactive_cut)
    purge = Action("user_data", "deleted", "delete", purge_cut)
    with clients.db() as conn:
        holds = Holds.load(conn)
        inactive = conn.execute(
            """SELECT id FROM users WHERE is_active AND deleted_at IS NULL
                 AND coalesce(last_login, created_at) < %s ORDER BY id""", (inactive_cut,)).fetchall()
        deact.rows = len(inactive)
        if inactive and not dry_run:
            ids = [r["id"] for r in inactive]
            conn.execute("UPDATE users SET is_active = false, deactivated_at = %s, updated_at = NOW() "
                         "WHERE id = ANY(%s)", (now, ids))
            deact.detail["jars_suspended"] = conn.execute(
                "UPDATE honey_jars SET status = 'suspended', updated_at = NOW() WHERE owner_id = ANY(%s) "
                "AND type = 'private' AND status = 'active'", (ids,)).rowcount
        doomed = conn.execute("SELECT id FROM users WHERE deleted_at IS NOT NULL AND deleted_at < %s ORDER BY id",
                              (purge_cut,)).fetchall()
    for u in doomed:
        uid = str(u["id"])
        with clients.db() as conn:
            jars = [str(r["id"]) for r in conn.execute("SELECT id FROM honey_jars WHERE owner_id = %s", (uid,))]
            held_sql, held_params = holds.event_filter("e")
            range_held = conn.execute(
                f"SELECT count(*) AS n FROM events e WHERE e.honeyjar_id = ANY(%(jars)s::uuid[]) AND {held_sql}",
                {"jars": jars, **held_params}).fetchone()["n"] if holds.ranges and jars else 0
            if uid in holds.users or holds.jars & set(jars) or range_held:
                purge.held += 1
                continue
            counts = conn.execute(
                """SELECT (SELECT count(*) FROM documents WHERE honey_jar_id = ANY(%(j)s::uuid[])) AS documents,
                          (SELECT count(*) FROM events WHERE honeyjar_id = ANY(%(j)s::uuid[])) AS events,
                          (SELECT count(*) FROM file_assets WHERE owner_id = %(u)s) AS files""",
                {"j": jars, "u": uid}).fetchone()
        keys = _user_objects(clients, uid)
        vectors = _jar_vector_ids(jars)
        purge.rows += 1 + len(jars) + counts["documents"] + counts["events"] + counts["files"]
        purge.objects += len(keys)
        purge.bytes += sum(size for _, size in keys)
        purge.detail.setdefault("users", []).append({"user": uid, "jars": len(jars), **counts, "objects": len(keys),
                                                     "vectors": len(vectors)})
        if dry_run:
            continue
        erased = _delete_keys(clients.s3, "user-files", [k for k, _ in keys])
        purge.detail["users"][-1]["erased"] = erased
        if vectors:
            from include.documents import vectorstore

            vectorstore.delete_ids(vectorstore.collection(), vectors)
        with batch(clients, lock_ms, f"user_data: purging user {uid}") as conn:
            conn.execute("UPDATE alerts SET assigned_to = NULL WHERE assigned_to = %s", (uid,))
            conn.execute("UPDATE honey_combs SET owner_id = NULL WHERE owner_id = %s", (uid,))
            conn.execute("DELETE FROM file_permissions WHERE user_id = %s OR granted_by = %s", (uid, uid))
            conn.execute("DELETE FROM file_assets WHERE owner_id = %s", (uid,))
            conn.execute("DELETE FROM honey_jars WHERE owner_id = %s", (uid,))  # documents, events cascade
            conn.execute("DELETE FROM users WHERE id = %s", (uid,))
    return [deact, purge]


def _user_objects(clients, uid: str) -> list[tuple[str, int]]:
    """Every key under the user's prefixes that has any version (a key whose current version was
    deleted still holds readable earlier versions), with its largest version's size."""
    sizes: dict[str, int] = {}
    for p in USER_PREFIXES:
        for page in clients.s3.get_paginator("list_object_versions").paginate(Bucket="user-files",
                                                                               Prefix=p.format(uid=uid)):
            for v in page.get("Versions", []):
                sizes[v["Key"]] = max(sizes.get(v["Key"], 0), v["Size"])
            for m in page.get("DeleteMarkers", []):
                sizes.setdefault(m["Key"], 0)
    return sorted(sizes.items())


def _delete_keys(s3, bucket: str, keys: list[str]) -> dict:
    """Erase the keys for good: every version, delete markers and the replica's copies
    (include/lifecycle/erasure.py), not only a delete marker above readable versions."""
    from include.lifecycle.erasure import erase_keys

    return erase_keys(s3, bucket, keys)


def _jar_vector_ids(jars: list[str]) -> list[str]:
    if not jars:
        return []
    from include.documents import vectorstore

    return vectorstore.ids_where(vectorstore.collection(), {"honey_jar_id": {"$in": jars}})


# ---------------------------------------------------------------- ai embeddings
# "Current": a jar's vectors are current while the jar was used within `current_days`: searched
# (honey_jars.last_accessed), a document processed into it, or created. A jar idle longer has its
# vectors archived to S3 (ids, embeddings, documents, metadata) and removed from Chroma; a search
# or `restore_jar_vectors` brings them back. Archives are deleted `archive_days` after archiving.
JAR_ACTIVITY_SQL = """
SELECT j.id::text AS id, greatest(j.last_accessed, j.created_at,
       (SELECT max(coalesce(d.processed_at, d.created_at)) FROM documents d WHERE d.honey_jar_id = j.id)) AS active_at
  FROM honey_jars j WHERE j.vectors_archived_at IS NULL"""


def collection_table(coll, where: dict | None = None, page: int = 2000):
    """A Chroma collection's records (all, or those matching `where`) as an Arrow table in id
    order: id, embedding (float32), document, metadata (JSON text). The one reader of vectors out
    of Chroma: the vector archive, the Chroma snapshot and the drills' read-back."""
    import json

    import pyarrow as pa

    ids, embs, docs, metas = [], [], [], []
    while True:
        got = coll.get(where=where, include=["embeddings", "documents", "metadatas"], limit=page, offset=len(ids))
        if not got["ids"]:
            break
        ids += got["ids"]
        embs += [list(map(float, e)) for e in got["embeddings"]]
        docs += got["documents"]
        metas += got["metadatas"]
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return pa.table({
        "id": [ids[i] for i in order],
        "embedding": pa.array([embs[i] for i in order], type=pa.list_(pa.float32())),
        "document": [docs[i] for i in order],
        "metadata": [json.dumps(metas[i], sort_keys=True) if metas[i] is not None else None for i in order],
    })


def table_records(table) -> tuple[list, list, list, list]:
    """ids, embeddings, documents, metadatas of a `collection_table` (for an upsert)."""
    import json

    return (table.column("id").to_pylist(), table.column("embedding").to_pylist(), table.column("document").to_pylist(),
            [json.loads(m) if m else None for m in table.column("metadata").to_pylist()])


def export_jar_vectors(jar_id: str, collection_name: str | None = None) -> tuple[bytes, int, str]:
    """A jar's vectors from Chroma as Parquet: (bytes, vectors, embedding checksum)."""
    import pyarrow.parquet as pq

    from include.documents import vectorstore

    table = collection_table(vectorstore.collection(collection_name or vectorstore.DOCUMENTS), {"honey_jar_id": jar_id})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue(), table.num_rows, embedding_checksum(table)


def embedding_checksum(table) -> str:
    """sha256 over ids and float32 embeddings in id order (the same for Chroma and its archive)."""
    import numpy as np

    h = hashlib.sha256()
    ids = table.column("id").to_pylist()
    embs = table.column("embedding").to_pylist()
    for i in sorted(range(len(ids)), key=ids.__getitem__):
        h.update(ids[i].encode())
        h.update(np.asarray(embs[i], dtype=np.float32).tobytes())
    return h.hexdigest()


def restore_jar_vectors(clients, jar_id: str) -> dict:
    """Bring an archived jar's vectors back into Chroma from its newest archive (verified)."""
    from include.documents import vectorstore

    with clients.db() as conn:
        rec = conn.execute("SELECT * FROM embedding_archives WHERE honeyjar_id = %s AND deleted_at IS NULL "
                           "ORDER BY archived_at DESC LIMIT 1", (jar_id,)).fetchone()
    if rec is None:
        raise SweepError(f"jar {jar_id}: no archive of its vectors to restore")
    table, sha = read_archive(clients.s3, rec["bucket"], rec["key"])
    if sha != rec["sha256"] or embedding_checksum(table) != rec["embedding_checksum"]:
        raise SweepError(f"jar {jar_id}: archive s3://{rec['bucket']}/{rec['key']} fails its checksum")
    vectorstore.upsert(vectorstore.collection(rec["collection"]), *table_records(table))
    with clients.db() as conn:
        conn.execute("UPDATE embedding_archives SET restored_at = NOW() WHERE id = %s", (rec["id"],))
        conn.execute("UPDATE honey_jars SET vectors_archived_at = NULL, last_accessed = NOW() WHERE id = %s", (jar_id,))
    return {"jar": jar_id, "vectors": table.num_rows, "archive": f"s3://{rec['bucket']}/{rec['key']}"}


def sweep_embeddings(clients, pol: dict, now: datetime, dry_run: bool, batch_size: int, lock_ms: int) -> list[Action]:
    from include.documents import vectorstore

    ap = pol["ai_embeddings"]
    cur_cut = now - timedelta(days=ap["current_days"])
    arch_cut = now - timedelta(days=ap["archive_days"])
    archive = Action("ai_embeddings", "current", "archive", cur_cut)
    expire = Action("ai_embeddings", "archive", "delete", arch_cut)
    with clients.db() as conn:
        holds = Holds.load(conn)
        idle = [r["id"] for r in conn.execute(JAR_ACTIVITY_SQL) if r["active_at"] is not None and r["active_at"] < cur_cut]
    coll = vectorstore.collection()
    for jar in idle:
        ids = vectorstore.ids_where(coll, {"honey_jar_id": jar})
        if not ids:
            continue
        archive.rows += len(ids)
        archive.objects += 1
        if dry_run:
            continue
        data, n, checksum = export_jar_vectors(jar)
        key = f"embeddings/{jar}/{now:%Y%m%dT%H%M%S}.parquet"
        sha = hashlib.sha256(data).hexdigest()
        clients.s3.put_object(Bucket=ap["archive_bucket"], Key=key, Body=data)
        table, back = read_archive(clients.s3, ap["archive_bucket"], key)
        if back != sha or embedding_checksum(table) != checksum or table.num_rows != n:
            raise SweepError(f"jar {jar}: vector archive s3://{ap['archive_bucket']}/{key} did not read back intact")
        archive.bytes += len(data)
        with clients.db() as conn:
            conn.execute("INSERT INTO embedding_archives (honeyjar_id, collection, bucket, key, vectors, bytes, sha256, "
                         "embedding_checksum) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                         (jar, vectorstore.DOCUMENTS, ap["archive_bucket"], key, n, len(data), sha, checksum))
            conn.execute("UPDATE honey_jars SET vectors_archived_at = %s WHERE id = %s", (now, jar))
        vectorstore.delete_ids(coll, table.column("id").to_pylist())
    with clients.db() as conn:
        old = conn.execute("SELECT * FROM embedding_archives WHERE deleted_at IS NULL AND archived_at < %s "
                           "AND restored_at IS NULL", (arch_cut,)).fetchall()
    for rec in old:
        if str(rec["honeyjar_id"]) in holds.jars:
            expire.held += rec["vectors"]
            continue
        expire.rows += rec["vectors"]
        expire.objects += 1
        expire.bytes += rec["bytes"]
        if not dry_run:
            _delete_keys(clients.s3, rec["bucket"], [rec["key"]])
            with clients.db() as conn:
                conn.execute("UPDATE embedding_archives SET deleted_at = NOW() WHERE id = %s", (rec["id"],))
    return [archive, expire]


# ---------------------------------------------------------------- buckets
KEY_DATE_RE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def lifecycle_rules(days: int | None) -> dict:
    rules = [{"ID": "sting-abort-incomplete-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
    if days is not None:
        rules.append({"ID": f"sting-expire-{days}d", "Status": "Enabled", "Filter": {"Prefix": ""},
                      "Expiration": {"Days": int(days)}})
    return {"Rules": rules}


def object_date(key: str, last_modified: datetime) -> datetime:
    """An object's data date: the date in its key (the seed's layouts carry one), else its
    LastModified. A backfilled object written late is aged by its data's date."""
    m = KEY_DATE_RE.search(key)
    if m:
        with contextlib.suppress(ValueError):
            return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
    return last_modified


def sweep_buckets(clients, pol: dict, now: datetime, dry_run: bool, batch_size: int, lock_ms: int) -> list[Action]:
    """Lifecycle rules set on each bucket (what S3 / MinIO apply) and the same rules enforced here
    (the local S3 endpoint stores rules but never applies them)."""
    out = []
    with clients.db() as conn:
        holds = Holds.load(conn)
    for bucket, days in pol["buckets"].items():
        act = Action("buckets", bucket, "delete", now - timedelta(days=days) if days is not None else None)
        if not dry_run:
            clients.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=lifecycle_rules(days))
            act.detail["lifecycle_rules"] = "set"
        if days is None:
            act.detail["kept"] = "indefinite"
            out.append(act)
            continue
        doomed: list[str] = []
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                when = object_date(o["Key"], o["LastModified"])
                if when >= act.cutoff:
                    continue
                jar_ids = set(UUID_RE.findall(o["Key"]))
                if jar_ids & holds.jars or holds.covers_time(when, when + timedelta(days=1)):
                    act.held += 1
                    continue
                act.objects += 1
                act.bytes += o["Size"]
                doomed.append(o["Key"])
                if not dry_run and len(doomed) >= 1000:
                    _delete_keys(clients.s3, bucket, doomed)
                    doomed = []
        if not dry_run and doomed:
            _delete_keys(clients.s3, bucket, doomed)
        out.append(act)
    return out


# ---------------------------------------------------------------- what the system accumulates
SYSTEM_TABLES = (
    # (name, setting, table, time column, extra predicate)
    ("comb_executions", "comb_executions_days", "honey_comb_executions", "started_at", "status <> 'running'"),
    ("job_runs", "job_runs_days", "job_runs", "started_at", "status <> 'running'"),
    ("event_receipts", "event_receipts_days", "event_receipts", "received_at", "true"),
    ("token_audit", "token_audit_days", "privacy_token_audit", "at", "true"),
    ("retention_runs", "retention_runs_days", "retention_runs", "created_at", "true"),
)


def sweep_system(clients, pol: dict, now: datetime, dry_run: bool, batch_size: int, lock_ms: int,
                 *, staging_bucket: str | None = None, staging_max_age: timedelta = timedelta(hours=6),
                 airflow_clean: bool = False) -> list[Action]:
    sp = pol["system"]
    out = []
    for name, setting, table, col, extra in SYSTEM_TABLES:
        cut = now - timedelta(days=sp[setting])
        act = Action("system", name, "delete", cut)
        pk = "ctid"
        where = f"{col} < %(cut)s AND {extra}"
        with clients.db() as conn:
            act.rows = conn.execute(f"SELECT count(*) AS n FROM {table} WHERE {where}", {"cut": cut}).fetchone()["n"]
        if not dry_run:
            while True:
                with batch(clients, lock_ms, f"system: {table}") as conn:
                    n = conn.execute(f"DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM {table} WHERE {where} "
                                     "LIMIT %(n)s)", {"cut": cut, "n": batch_size}).rowcount
                if n < batch_size:
                    break
        out.append(act)
    if staging_bucket:
        cut = now - staging_max_age
        act = Action("system", "staging", "delete", cut, detail={"bucket": staging_bucket})
        doomed = []
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=staging_bucket, Prefix="_staging/"):
            for o in page.get("Contents", []):
                if o["LastModified"] < cut:
                    doomed.append(o["Key"])
                    act.objects += 1
                    act.bytes += o["Size"]
        if doomed and not dry_run:
            _delete_keys(clients.s3, staging_bucket, doomed)
        out.append(act)
    if airflow_clean:
        factory = getattr(clients, "airflow_metadata_url_factory", None)
        url = factory() if factory else None
        cutoff = now - timedelta(days=sp["airflow_metadata_days"])
        if url is None:
            import logging

            logging.getLogger(__name__).warning(
                "airflow db clean skipped: no maintenance connection to Airflow's metadata database "
                "(sting_airflow_metadata) is configured")
            out.append(Action("system", "airflow_metadata", "skipped", cutoff,
                              detail={"reason": "no sting_airflow_metadata connection"}))
        else:
            out.append(clean_airflow_metadata(cutoff, dry_run, url))
    return out


def clean_airflow_metadata(cutoff: datetime, dry_run: bool, metadata_url: str | None = None) -> Action:
    """`airflow db clean` before the cut-off, failing when any table fails (it exits 0 on a failed
    table unless told `--error-on-cleanup-failure`). `metadata_url`: the metadata database the
    command works on (from the maintenance connection; an Airflow 3 task's own configuration
    points nowhere). The URL is passed in the child's environment only, and its password is
    redacted from anything kept or raised."""
    import os
    import subprocess
    import sys
    from urllib.parse import unquote, urlsplit

    from include.redaction import Redactor

    argv = [sys.executable, "-m", "airflow", "db", "clean", "--clean-before-timestamp", cutoff.isoformat(),
            "--skip-archive", "--yes", "--error-on-cleanup-failure"]
    if dry_run:
        argv.append("--dry-run")
    env = dict(os.environ)
    redact = Redactor([])
    if metadata_url:
        for k in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET"):
            env.pop(k, None)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url
        password = urlsplit(metadata_url).password
        redact = Redactor([metadata_url, unquote(password)] if password else [metadata_url])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=3600, env=env)
    output = redact((p.stdout + p.stderr)[-3000:])
    act = Action("system", "airflow_metadata", "delete", cutoff, detail={"exit": p.returncode,
                                                                        "output": output[-1500:]})
    if p.returncode != 0:
        raise SweepError(f"airflow db clean failed (exit {p.returncode}): {output[-800:]}")
    return act


# ---------------------------------------------------------------- audit
def record(clients, run_id: str, actions: list[Action], dry_run: bool) -> None:
    from psycopg.types.json import Jsonb

    with clients.db() as conn:
        for a in actions:
            conn.execute(
                "INSERT INTO retention_runs (run_id, policy, tier, action, cutoff, dry_run, rows, objects, bytes, held, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (run_id, a.policy, a.tier, a.action, a.cutoff, dry_run, a.rows, a.objects, a.bytes, a.held,
                 Jsonb(_jsonable(a.detail))))


def _jsonable(v: Any):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return v


def summary(actions: list[Action]) -> dict:
    """Counts for the step's result: policy.tier.action -> rows/objects/bytes/held."""
    return {f"{a.policy}.{a.tier}.{a.action}": {"rows": a.rows, "objects": a.objects, "bytes": a.bytes, "held": a.held}
            for a in actions}

"""Exactly once whatever the window length: a one-off catch-up over a quarter, a quarterly
schedule and hourly runs after them find each other's outputs through the register of published
windows (a listing of the last month's partitions missed the catch-up's, filed under its start
month, and delivered its last rows twice). A row delivered without a cursor value that later gets
a value inside a window already cut is delivered once, by the next run, and a re-cut of that
window does not deliver it again."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from include.intervals import window_for_date
from include.settings import get_settings
from tests.combtools import clear_test_outputs, read_output, run_steps, utc, write_def
from tests.test_comb_types import _pg_comb


@pytest.fixture
def pg(source_db, combs_dir):
    dsn, schema = source_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE TABLE "{schema}".typed (id BIGINT PRIMARY KEY, note TEXT, updated_at TIMESTAMPTZ)')
    yield dsn, schema, combs_dir
    clear_test_outputs(schema)


def _all_outputs(name: str, schema: str) -> list[int]:
    """Every row id in every output object of the comb (windows, null-cursor, filled-in-past)."""
    from include import storage

    bucket = get_settings().comb_output_bucket
    ids = []
    for o in storage.list_keys(bucket, f"tests/{schema}/"):
        if "/null_cursor/" in o["Key"]:
            continue  # rows without a cursor now: counted apart
        t, _ = read_output(bucket, o["Key"])
        ids += t.column("id").to_pylist()
    return ids


def test_catch_up_quarterly_then_hourly_deliver_every_row_once(pg):
    dsn, schema, d = pg
    quarterly = "0 0 1 */3 *"
    comb = _pg_comb(schema, schedule=quarterly, lookback="2h")
    name = write_def(d, comb)
    jan, apr, jul = utc(2026, 1, 1), utc(2026, 4, 1), utc(2026, 7, 1)
    rows, i = [], 0
    for boundary in (jan, apr, jul, jul + timedelta(hours=1), jul + timedelta(hours=2)):
        for minutes in (-90, -30, -1, 0, 1, 30):  # both sides of every boundary, inside the lookback
            i += 1
            rows.append((i, f"row {i}", boundary + timedelta(minutes=minutes)))
    for day in range(0, 181, 3):  # and the quarters' insides
        i += 1
        rows.append((i, f"row {i}", jan + timedelta(days=day, hours=7)))
    with psycopg.connect(dsn, autocommit=True) as c:
        with c.cursor().copy(f'COPY "{schema}".typed (id, note, updated_at) FROM STDIN') as cp:
            for r in rows:
                cp.write_row(r)
    # (the catch-up reads from its start minus the lookback: late commits before January too)
    expected = sorted(r[0] for r in rows if jan - timedelta(hours=2) <= r[2] < jul + timedelta(hours=2))
    # a one-off catch-up over the first quarter (window params), filed under month=01
    _, _, catchup, _ = run_steps(name, "catchup", window_start=jan, window_end=apr)
    assert "/month=01/" in catchup["key"]
    # the quarterly schedule's next tick: [Apr 1, Jul 1), its lookback reaching into the catch-up
    q_start, q_end = window_for_date(quarterly, jul)
    assert (q_start, q_end) == (apr, jul)
    _, _, q, _ = run_steps(name, "quarterly", window_start=q_start, window_end=q_end)
    assert q["duplicates_skipped"] >= 3  # the catch-up's last rows, read again through the lookback
    # hourly after them (the comb's schedule changed to hourly): reach back into the quarter's output
    write_def(d, {**comb, "configuration": {**comb["configuration"], "extraction": {
        **comb["configuration"]["extraction"], "schedule": "0 * * * *"}}})
    skipped = 0
    for h in (1, 2):
        s, e = window_for_date("0 * * * *", jul + timedelta(hours=h))
        _, _, hr, _ = run_steps(name, f"hourly{h}", window_start=s, window_end=e)
        skipped += hr["duplicates_skipped"]
    assert skipped >= 3
    ids = _all_outputs(name, schema)
    assert sorted(ids) == expected, sorted(set(x for x in ids if ids.count(x) > 1))
    # rerunning the catch-up afterwards (its own key replaced) changes nothing
    run_steps(name, "catchup", window_start=jan, window_end=apr)
    assert sorted(_all_outputs(name, schema)) == expected


def test_a_null_cursor_filled_in_a_past_window_is_delivered_once(pg):
    dsn, schema, d = pg
    t0 = utc(2026, 10, 5, 0)
    w = [(t0 + timedelta(hours=h), t0 + timedelta(hours=h + 1)) for h in range(5)]
    name = write_def(d, _pg_comb(schema))
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'INSERT INTO "{schema}".typed VALUES (1, %s, %s), (2, %s, NULL), (3, %s, NULL)',
                  ("a", t0 + timedelta(minutes=5), "no cursor yet", "no cursor yet"))
    run_steps(name, "r0", window_start=w[0][0], window_end=w[0][1])
    _, _, out1, _ = run_steps(name, "r1", window_start=w[1][0], window_end=w[1][1])
    assert out1["null_cursor"]["rows"] == 2
    # row 2 gets a value inside window 0 (cut, and behind window 2's read range); row 3 one in window 4
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'UPDATE "{schema}".typed SET updated_at = %s WHERE id = 2', (t0 + timedelta(minutes=10),))
        c.execute(f'UPDATE "{schema}".typed SET updated_at = %s WHERE id = 3', (w[4][0] + timedelta(minutes=1),))
    run, _, out2, loaded = run_steps(name, "r2", window_start=w[2][0], window_end=w[2][1])
    late = out2["null_cursor"]["filled_in_past"]
    assert late["rows"] == 1 and late["left_null"] == 2, late
    t, _ = read_output(late["bucket"], late["key"])
    assert t.column("id").to_pylist() == [2]
    from include.notifications import comb_note

    note = comb_note({**loaded, "null_cursor": out2["null_cursor"]})
    assert "1 row(s) that had a NULL cursor got a value in an earlier window" in note and late["uri"] in note
    from include.db import connect

    with connect() as conn:  # a document of the jar, like every output
        docs = {r["upload_path"] for r in conn.execute(
            "SELECT upload_path FROM documents WHERE honey_jar_id = %s", (loaded["jar_id"],)).fetchall()}
    assert late["uri"] in docs
    # a retry of the same run: the same object, nothing delivered twice
    _, _, out2b, _ = run_steps(name, "r2", window_start=w[2][0], window_end=w[2][1])
    assert out2b["null_cursor"]["filled_in_past"]["key"] == late["key"]
    # window 0 re-cut (an operator's fix, or a backfill): row 2 is already delivered
    _, _, out0b, _ = run_steps(name, "r0", window_start=w[0][0], window_end=w[0][1])
    assert out0b["records_processed"] == 1 and out0b["duplicates_skipped"] == 1
    for h in (3, 4):
        run_steps(name, f"r{h}", window_start=w[h][0], window_end=w[h][1])
    assert sorted(_all_outputs(name, schema)) == [1, 2, 3]
    with connect() as conn:  # registered with the span of its values: what a re-cut found
        reg = conn.execute("SELECT window_start, window_end, kind FROM honey_comb_output_windows WHERE key = %s",
                           (late["key"],)).fetchone()
    assert reg["kind"] == "filled_in_past" and reg["window_start"] == t0 + timedelta(minutes=10)

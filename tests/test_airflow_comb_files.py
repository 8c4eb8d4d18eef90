"""Hostile files in the comb folder, through the stack's real DAG processor: 30,000 nested `[`
(libyaml's composer used to overflow the C stack and kill the parse of every comb), a named pipe
(used to block the import until its timeout), a 512 MB sparse file (used to be read whole), a
symlink loop, and a directory named like a comb. Each becomes its own invalid-config DAG; every
valid comb DAG stays active over several parses."""

from __future__ import annotations

import os
import time
from datetime import datetime

import pytest

from include.honeycomb.config import comb_files, combs_dir, invalid_dag_id

pytestmark = pytest.mark.airflow
VALID = ["honey_comb__sample_customers", "honey_comb__sample_threat_feed_api", "honey_comb__sample_events_stream",
         "honey_comb__sample_sessions_files", "honey_comb__sample_assets_mariadb"]


def _parsed(dag: dict) -> datetime:
    return datetime.fromisoformat(dag["last_parsed_time"].replace("Z", "+00:00"))


@pytest.fixture
def hostile(airflow):
    d = combs_dir()  # the folder the stack's DAG processor reads
    assert "STING_COMBS_DIR" not in os.environ or d.resolve() == combs_dir().resolve()
    made = {
        "deep": d / "zz_hostile_deep.yaml",
        "fifo": d / "zz_hostile_fifo.yaml",
        "sparse": d / "zz_hostile_sparse.yaml",
        "loop": d / "zz_hostile_loop.yaml",
        "dir": d / "zz_hostile_dir.yaml",
    }
    made["deep"].write_text("[" * 30_000 + "]" * 30_000)
    os.mkfifo(made["fifo"])
    with made["sparse"].open("wb") as f:
        f.truncate(512 * 1024 * 1024)
    made["loop"].symlink_to(made["loop"].name)
    made["dir"].mkdir()
    try:
        yield made
    finally:
        for p in made.values():
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
            else:
                p.unlink(missing_ok=True)
        for p in made.values():
            try:
                airflow._req("DELETE", f"/api/v2/dags/{invalid_dag_id(p)}")
            except RuntimeError:
                pass


def test_hostile_comb_files_never_deactivate_a_valid_comb(airflow, hostile):
    assert set(hostile.values()) <= set(comb_files())
    before = {d: _parsed(airflow.wait_for_dag(d)) for d in VALID}
    t0 = time.time()
    # each hostile file shows up as its own invalid-config DAG: the comb DAG file was parsed
    # with all of them in the folder
    invalid = {k: airflow.wait_for_dag(invalid_dag_id(p), timeout=240) for k, p in hostile.items()}
    print(f"invalid-config DAGs after {time.time() - t0:.0f} s")
    for k, dag in invalid.items():
        assert "invalid-config" in [t["name"] for t in dag["tags"]], k
    assert "nests deeper" in invalid["deep"]["description"]
    assert "named pipe" in invalid["fifo"]["description"]
    assert "refused unread" in invalid["sparse"]["description"]
    assert "symlink loop" in invalid["loop"]["description"]
    assert "directory" in invalid["dir"]["description"]
    # two more parses of the comb DAG file with the files still there: nothing goes stale
    for _ in range(2):
        ref = {d: _parsed(airflow.wait_for_dag(d)) for d in VALID}
        deadline = time.time() + 180
        while time.time() < deadline:
            now = {d: airflow.wait_for_dag(d) for d in VALID}
            if all(_parsed(now[d]) > ref[d] for d in VALID):
                break
            time.sleep(5)
        else:
            raise AssertionError(f"the comb DAGs were not parsed again: {ref}")
        assert [d for d in VALID if now[d]["is_stale"]] == []
        assert all(_parsed(now[d]) > before[d] for d in VALID)

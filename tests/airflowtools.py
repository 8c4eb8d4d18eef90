"""Driving Airflow from tests: its own CLI for backfills (default concurrency), then the REST API."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime

from include.devstack.stack import VENV_BIN


def backfill_and_wait(api, dag: str, ticks: list[datetime], reprocess: str | None = None) -> list[dict]:
    """`airflow backfill create` over the ticks (default concurrency), then wait for its runs."""
    args = ["backfill", "create", "--dag-id", dag, "--from-date", ticks[0].isoformat(), "--to-date",
            ticks[-1].isoformat()]
    if reprocess:
        args += ["--reprocess-behavior", reprocess]
    started = time.time()
    for _ in range(60):  # one backfill per DAG at a time: wait for an earlier one
        p = subprocess.run([str(VENV_BIN / "airflow"), *args], env=os.environ.copy(), capture_output=True, text=True,
                           timeout=300)
        if p.returncode == 0:
            break
        assert "already" in (p.stdout + p.stderr).lower(), p.stdout[-2000:] + p.stderr[-2000:]
        time.sleep(5)
    want = {t.isoformat().replace("+00:00", "Z") for t in ticks}
    deadline = time.time() + 600
    runs: list[dict] = []
    while time.time() < deadline:
        runs = [r for r in api.runs_between(dag, ticks[0].isoformat(), ticks[-1].isoformat())
                if r["run_type"] == "backfill" and r["logical_date"] in want]
        done = [r for r in runs if r["state"] in ("success", "failed") and r.get("end_date")
                and datetime.fromisoformat(r["end_date"].replace("Z", "+00:00")).timestamp() > started]
        if len(done) == len(ticks):
            return done
        time.sleep(3)
    raise TimeoutError(f"backfill runs not done: {[(r['logical_date'], r['state']) for r in runs]}")

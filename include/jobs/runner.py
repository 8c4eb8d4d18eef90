"""Runs a job's steps and records every run (`job_runs`) and every step attempt (`job_run_steps`):
status, interval, counts and the error that failed it. Used by the Airflow DAG builder
(one task per step) and, without Airflow, by `python -m include.jobs` and the tests."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from include.clients import Clients
from include.intervals import Interval, IntervalError, resolve_interval, to_utc
from include.jobs.base import Job, JobContext
from include.run_params import unknown_conf_keys

INTERVAL_PARAMS = ("interval_start", "interval_end")
MAX_ERROR = 2000


def job_params(job: Job, params: dict | None, conf: dict | None = None) -> dict:
    """The run's parameters: the job's defaults, then the trigger's. Unknown keys are refused
    (a misspelt key must not silently run with the default)."""
    known = set(job.params) | set(INTERVAL_PARAMS)
    unknown = unknown_conf_keys(conf, known)
    if unknown:
        raise ValueError(f"job '{job.name}': unknown parameter(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    out = job.defaults()
    out.update({k: v for k, v in (params or {}).items() if k in known})
    out.update(conf or {})
    return out


def interval_for(job: Job, params: dict, logical_date=None, run_after=None) -> Interval:
    if job.schedule:
        return resolve_interval(job.schedule, logical_date=logical_date, run_after=run_after,
                                interval_start=params.get("interval_start"), interval_end=params.get("interval_end"))
    s, e = to_utc(params.get("interval_start")), to_utc(params.get("interval_end"))
    if s and e:
        return Interval(s, e)
    if s or e:
        raise IntervalError("give both interval_start and interval_end, or neither")
    end = to_utc(logical_date) or to_utc(run_after) or to_utc(datetime.now(UTC))
    return Interval(end - job.default_span, end)


def begin(job: Job, clients: Clients, *, run_key: str, params: dict | None = None, conf: dict | None = None,
          logical_date=None, run_after=None, dag_id: str | None = None) -> dict:
    """Record the run (a rerun of the same Airflow run reopens its row) and return its reference:
    run id, interval and parameters (what every step task receives through XCom)."""
    p = job_params(job, params, conf)
    interval = interval_for(job, p, logical_date, run_after)
    p = {k: v for k, v in p.items() if k not in INTERVAL_PARAMS}
    with clients.db() as conn:
        row = conn.execute(
            """INSERT INTO job_runs (job, run_key, dag_id, interval_start, interval_end, params)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (job, run_key) DO UPDATE SET
                   interval_start = EXCLUDED.interval_start, interval_end = EXCLUDED.interval_end,
                   params = EXCLUDED.params, status = 'running', failed_step = NULL, error = NULL,
                   ended_at = NULL, started_at = NOW()
               RETURNING id""",
            (job.name, run_key, dag_id, interval.start, interval.end, json.dumps(p, default=str)),
        ).fetchone()
    return {"run_id": str(row["id"]), "job": job.name, "interval": interval.as_dict(), "params": p}


def _earlier_results(conn, run_id: str) -> dict[str, dict]:
    rows = conn.execute(
        """SELECT DISTINCT ON (step) step, counts FROM job_run_steps
            WHERE run_id = %s AND status = 'success' ORDER BY step, try_number DESC""", (run_id,)).fetchall()
    return {r["step"]: r["counts"] or {} for r in rows}


def run_step(job: Job, step_name: str, run: dict, clients: Clients, try_number: int = 1) -> dict:
    """Run one step for the run's interval and record the attempt; re-raises the step's error."""
    step = job.step(step_name)
    run_id = run["run_id"]
    with clients.db() as conn:
        conn.execute(
            """INSERT INTO job_run_steps (run_id, step, try_number, host, pid) VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (run_id, step, try_number) DO UPDATE SET status = 'running', counts = NULL,
                   error = NULL, started_at = NOW(), ended_at = NULL, host = EXCLUDED.host, pid = EXCLUDED.pid""",
            (run_id, step.name, try_number, socket.gethostname(), os.getpid()))
        results = _earlier_results(conn, run_id)
    ctx = JobContext(job=job.name, run_id=run_id, interval=Interval.from_dict(run["interval"]),
                     params=dict(run.get("params") or {}), clients=clients, results=results)
    t0 = time.monotonic()
    try:
        counts = dict(step.func(ctx) or {})
    except BaseException as e:
        message = (str(e).strip() or type(e).__name__)[:MAX_ERROR]
        try:
            with clients.db() as conn:
                conn.execute(
                    """UPDATE job_run_steps SET status = 'failed', error = %s, ended_at = NOW()
                        WHERE run_id = %s AND step = %s AND try_number = %s""",
                    (f"{type(e).__name__}: {message}", run_id, step.name, try_number))
        except Exception:  # the step's own error matters more than its audit
            pass
        raise
    counts.setdefault("seconds", round(time.monotonic() - t0, 3))
    with clients.db() as conn:
        conn.execute(
            """UPDATE job_run_steps SET status = 'success', counts = %s, ended_at = NOW()
                WHERE run_id = %s AND step = %s AND try_number = %s""",
            (json.dumps(counts, default=str), run_id, step.name, try_number))
        conn.execute("UPDATE job_runs SET counts = counts || jsonb_build_object(%s::text, %s::jsonb) WHERE id = %s",
                     (step.name, json.dumps(counts, default=str), run_id))
    return counts


def finish(run: dict, clients: Clients) -> dict:
    with clients.db() as conn:
        row = conn.execute(
            "UPDATE job_runs SET status = 'success', ended_at = NOW() WHERE id = %s RETURNING counts",
            (run["run_id"],)).fetchone()
    return row["counts"] if row else {}


def fail(run: dict | None, clients: Clients) -> str:
    """Mark the run failed with the error of its failed step (the latest failed attempt)."""
    if not run:
        return ""
    with clients.db() as conn:
        f = conn.execute(
            """SELECT step, error FROM job_run_steps WHERE run_id = %s AND status = 'failed'
                ORDER BY ended_at DESC NULLS LAST LIMIT 1""", (run["run_id"],)).fetchone()
        step, error = (f["step"], f["error"]) if f else (None, "a step did not complete")
        conn.execute(
            "UPDATE job_runs SET status = 'failed', failed_step = %s, error = %s, ended_at = NOW() WHERE id = %s",
            (step, error, run["run_id"]))
    return f"step {step}: {error}" if step else error


def run_job(job: Job, clients: Clients, *, run_key: str, params: dict | None = None, conf: dict | None = None,
            logical_date=None, run_after=None) -> dict[str, Any]:
    """All steps in order in this process (the command line and the tests): the counts per step."""
    run = begin(job, clients, run_key=run_key, params=params, conf=conf, logical_date=logical_date,
                run_after=run_after)
    try:
        for s in job.steps:
            run_step(job, s.name, run, clients)
    except BaseException:
        fail(run, clients)
        raise
    return finish(run, clients)


def lineage(job: Job, step_name: str, run: dict, clients: Clients, counts: dict) -> dict:
    """The step's inputs and outputs as dataset URIs (for OpenLineage): tables as
    postgres://host:port/db/public/<table>, objects as s3://bucket/key."""
    from include.settings import get_settings

    step = job.step(step_name)
    s = get_settings()

    def table(name: str) -> str:
        return f"postgres://{s.app_pg_host}:{s.app_pg_port}/{s.app_db}/public/{name}"

    def objects(v) -> list[str]:
        if isinstance(v, str):
            return [v] if v.startswith("s3://") else []
        if isinstance(v, dict):
            return [u for x in v.values() for u in objects(x)]
        if isinstance(v, list | tuple):
            return [u for x in v for u in objects(x)]
        return []

    inputs, earlier = [], None
    for r in step.reads:
        if callable(r):
            inputs.extend(r(run.get("params") or {}))
            continue
        if r.startswith("table:"):
            inputs.append(table(r[6:]))
            continue
        if earlier is None:
            with clients.db() as conn:
                earlier = _earlier_results(conn, run["run_id"])
        src, key = r.split(".", 1)
        v = (earlier.get(src) or {}).get(key)
        if isinstance(v, str) and v.startswith("s3://"):
            inputs.append(v)
    outputs = [table(w[6:]) for w in step.writes if w.startswith("table:")]
    outputs += list(dict.fromkeys(objects(counts)))
    return {"inputs": inputs, "outputs": outputs}

"""What a scheduled job is: a schedule, typed parameters, and steps that are plain functions of a
`JobContext` (the run's interval, its parameters, plain clients, the counts of earlier steps).

A step owns its interval's outputs: run again, it rewrites them (idempotent), so a retry, a rerun
in any order and a backfill all converge on the same state. It returns a small dict of counts,
recorded in `job_run_steps` and shown in the task log; data never goes through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from include.clients import Clients
from include.intervals import Interval


@dataclass(frozen=True)
class Param:
    """A typed trigger-form field (JSON schema type, default, description, extra schema keys)."""

    default: Any
    type: str | list[str]
    description: str
    schema: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    func: Callable[[JobContext], dict]
    doc: str = ""
    retries: int | None = None  # None: the job's default
    timeout: timedelta = timedelta(hours=1)
    pool: str | None = None
    # all_success: runs when the steps before it succeeded; all_done: runs after them whatever
    # their outcome (e.g. correlation with the indicators that did import when one feed failed)
    trigger_rule: str = "all_success"
    # lineage: what the step reads, "table:<name>" (the application database), "<step>.<key>" (an
    # s3:// URI an earlier step's counts name) or a function of the run's parameters returning
    # URIs (e.g. the feeds' endpoints); what it writes: `writes` ("table:<name>") and every s3://
    # URI in its own counts (nested ones too)
    reads: tuple[str | Callable[[dict], list[str]], ...] = ()
    writes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str | None
    description: str
    steps: tuple[Step, ...]
    params: dict[str, Param] = field(default_factory=dict)
    start_date: date = date(2026, 1, 1)
    retries: int = 2
    retry_delay: timedelta = timedelta(seconds=30)
    max_active_runs: int = 1
    tags: tuple[str, ...] = ()
    # Where it runs (Airflow: plugins/sting_airflow/workloads.py): None is the `jobs` pool; a job
    # with its own pool (event_ingestion: `events`) is never queued behind the others. Priority
    # orders the tasks waiting for the same pool (None: the pool's).
    pool: str | None = None
    priority: int | None = None
    # Interval used when a run has no schedule to derive one from (manual-only jobs).
    default_span: timedelta = timedelta(hours=1)
    # Whether a new deployment creates the DAG paused (Airflow's default). Backups are on from day
    # one: WAL archived with no base backup, or object storage without a replica, protects nothing.
    paused_at_creation: bool = True

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"job '{self.name}' has no step '{name}'")

    def defaults(self) -> dict:
        return {k: p.default for k, p in self.params.items()}


@dataclass
class JobContext:
    job: str
    run_id: str
    interval: Interval
    params: dict
    clients: Clients
    results: dict[str, dict] = field(default_factory=dict)  # counts of the steps before this one
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("sting.jobs"))

"""Where each kind of work runs, so that ingestion, extraction and scheduled jobs cannot starve
each other, on any executor:

- a **pool** per workload (slots in `pools.json`, imported by `make stack-up` and docker-compose's
  `airflow-init`): a comb backfill fills the `combs` slots, never the `events` slot; the local
  stack's parallelism is the sum of the pools, so no workload waits for another's executor slot;
- a **priority** inside a pool (absolute: the task's own weight, not its DAG's shape);
- a **Celery queue** per workload (CeleryExecutor: docker-compose, `make stack-up
  EXECUTOR=celery`): workers subscribe to the queues they serve (the documents worker preloads
  the embedding model; the others do not need it). The LocalExecutor ignores queues.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    pool: str
    queue: str
    priority: int

    def task_args(self) -> dict:
        """default_args entries for a DAG of this workload."""
        return {"pool": self.pool, "queue": self.queue, "priority_weight": self.priority, "weight_rule": "absolute"}


# Honeypot events: the real-time path, its own slot, first in line.
EVENTS = Workload(pool="events", queue="events", priority=100)
# Honey comb extraction, scrubbing and delivery (also the manual privacy_scrub of a user file).
COMBS = Workload(pool="combs", queue="combs", priority=10)
# Scheduled jobs (aggregation, intelligence, lifecycle, backups, training); backups first.
JOBS = Workload(pool="jobs", queue="jobs", priority=5)
# Document ingestion: embedding one task at a time (it uses every core), the other steps beside it.
DOCUMENTS = Workload(pool="documents", queue="documents", priority=1)
EMBEDDING = Workload(pool="embedding", queue="documents", priority=1)

ALL = (EVENTS, COMBS, JOBS, DOCUMENTS, EMBEDDING)
QUEUES = tuple(dict.fromkeys(w.queue for w in ALL))


def for_job(pool: str | None, priority: int | None) -> Workload:
    """A scheduled job's workload: `jobs` unless the job names its own pool (event_ingestion:
    `events`)."""
    base = next((w for w in ALL if w.pool == pool), JOBS)
    return Workload(pool=base.pool, queue=base.queue, priority=priority if priority is not None else base.priority)

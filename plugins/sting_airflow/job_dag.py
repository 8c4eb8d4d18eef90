"""Builds the DAG of a scheduled job (include/jobs/<job>.py): one task per step, chained, after a
`begin` task that records the run and fixes its interval. The builder owns what every job shares:
the schedule (a trigger timetable: logical date X owns [last tick before X, X) on every trigger
path), the typed trigger form, retries, the run records, clients from provider hooks, and the
failure handler that marks the run failed with its step's error. Parse time: the job's
declaration only (dataclasses), no step code and no client."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, CronTriggerTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from include.jobs.base import Job, Step
from sting_airflow.notify import failure_callbacks
from sting_airflow.workloads import for_job


def job_params(job: Job) -> dict[str, Param]:
    params = {name: Param(p.default, type=p.type, description=p.description, **p.schema)
              for name, p in job.params.items()}
    params["interval_start"] = Param(
        None, type=["null", "string"], format="date-time",
        description="override the interval start (ISO-8601, UTC if no offset), with interval_end. Without them "
                    "the run's logical date X owns [last schedule tick before X, X)")
    params["interval_end"] = Param(None, type=["null", "string"], format="date-time",
                                   description="override the interval end (exclusive)")
    return params


def _step_task(job_name: str, step: Step):
    def run_step(run: dict, **context) -> dict:
        from include.jobs import load_job
        from include.jobs.runner import run_step as run_it
        from sting_airflow.audit import try_number
        from sting_airflow.hooks import airflow_clients

        job = load_job(job_name)
        with airflow_clients() as clients:
            try:
                counts = run_it(job, step.name, run, clients, try_number(context))
            except Exception as e:
                if getattr(e, "permanent", False):  # no retry can help: fail now, with the step's message
                    raise AirflowFailException(f"{step.name}: {e}") from None
                raise
            from include.jobs.runner import lineage
            from sting_airflow.lineage import report_job_lineage

            try:  # best effort: describing lineage never fails a step that did its work
                described = lineage(job, step.name, run, clients, counts)
            except Exception as e:  # noqa: BLE001
                print(f"lineage not reported: {type(e).__name__}: {str(e)[:200]}")
            else:
                report_job_lineage(described)
        w = run["interval"]
        print(f"{job_name}.{step.name} [{w['start']}, {w['end']}): {counts}")
        return counts

    run_step.__doc__ = step.doc
    kwargs = {"task_id": step.name, "execution_timeout": step.timeout, "multiple_outputs": False,
              "trigger_rule": step.trigger_rule}
    if step.retries is not None:
        kwargs["retries"] = step.retries
    if step.pool:
        kwargs["pool"] = step.pool
    return task(**kwargs)(run_step)


def build_job_dag(job: Job) -> DAG:
    schedule = CronTriggerTimetable(job.schedule, timezone="UTC") if job.schedule else None
    steps_doc = "\n".join(f"- `{s.name}`: {s.doc}" for s in job.steps)
    with DAG(
        dag_id=job.name,
        description=job.description,
        schedule=schedule,
        start_date=datetime.combine(job.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=False,
        is_paused_upon_creation=job.paused_at_creation,
        max_active_runs=job.max_active_runs,
        default_args={"owner": "sting-data", "retries": job.retries, "retry_delay": job.retry_delay,
                      "retry_exponential_backoff": True, "on_failure_callback": failure_callbacks(),
                      # the `jobs` pool and queue (event_ingestion: `events`), plugins/sting_airflow/workloads.py
                      **for_job(job.pool, job.priority).task_args()},
        params=job_params(job),
        tags=["job", *job.tags],
        doc_md=f"**{job.name}** (`include/jobs/{job.name}.py`), schedule `{job.schedule}`.\n\n{job.description}\n\n"
               f"{steps_doc}\n\nEvery run is recorded in `job_runs` (status, interval, counts per step, error); "
               "every step attempt in `job_run_steps`.",
    ) as dag:

        @task(retries=0, multiple_outputs=False)
        def begin(**context) -> dict:
            from include.jobs.runner import begin as begin_run
            from sting_airflow.hooks import airflow_clients

            dr = context["dag_run"]
            try:
                with airflow_clients() as clients:
                    run = begin_run(job, clients, run_key=context["run_id"], params=dict(context["params"]),
                                    conf=dict(getattr(dr, "conf", None) or {}),
                                    logical_date=getattr(dr, "logical_date", None),
                                    run_after=getattr(dr, "run_after", None), dag_id=job.name)
            except ValueError as e:  # unknown parameter, bad or empty interval
                raise AirflowFailException(str(e)) from None
            print(f"{job.name}: interval [{run['interval']['start']}, {run['interval']['end']}), params {run['params']}")
            return run

        run = begin()
        prev, tasks = run, []
        for step in job.steps:
            t = _step_task(job.name, step)(run)
            if prev is not run:
                prev >> t
            prev = t
            tasks.append(t)

        @task(retries=0, multiple_outputs=False)
        def finish(run: dict, **context) -> dict:
            from include.jobs.runner import finish as finish_run
            from include.notifications import job_note
            from sting_airflow.hooks import airflow_clients
            from sting_airflow.notify import set_run_note

            with airflow_clients() as clients:
                counts = finish_run(run, clients)
            w = run["interval"]
            set_run_note(context, f"[{w['start']}, {w['end']}) {job_note(counts)}")
            return counts

        # (the failed step already notified: this consequence of it does not again)
        @task(trigger_rule="one_failed", retries=0, on_failure_callback=[])
        def finalize_on_failure(run: dict | None = None, **context) -> None:
            from include.jobs.runner import fail
            from sting_airflow.hooks import airflow_clients
            from sting_airflow.notify import set_run_note

            with airflow_clients() as clients:
                message = fail(run, clients)
            set_run_note(context, f"failed: {message or 'see the failed step'}")
            raise AirflowFailException(f"job '{job.name}' failed: {message or 'see the failed step'}")

        done = finish(run)
        prev >> done
        [*tasks, done] >> finalize_on_failure(run)
    return dag

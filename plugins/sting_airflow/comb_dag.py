"""Builds one DAG per honey comb definition. Parse-time work is reading and validating YAML: no
database, no Vault, no heavy imports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from include.honeycomb.config import CombDefinition
from include.settings import get_settings
from sting_airflow.notify import failure_callbacks
from sting_airflow.operators import HoneyCombExtractOperator, HoneyCombParquetOutputOperator, load_comb
from sting_airflow.workloads import COMBS

DEFAULT_ARGS = {
    "owner": "sting-data",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
    # the `combs` pool and queue, priority 10 (plugins/sting_airflow/workloads.py)
    **COMBS.task_args(),
    # a task failed for good: mail and webhook (plugins/sting_airflow/notify.py)
    "on_failure_callback": failure_callbacks(),
}


def output_asset(comb: CombDefinition) -> Asset:
    out = comb.configuration.output
    bucket = out.bucket or get_settings().comb_output_bucket
    return Asset(uri=f"s3://{bucket}/{(out.prefix or comb.name).strip('/')}/", name=f"honey_comb_output__{comb.name}")


def _source_label(comb: CombDefinition) -> str:
    """The source as lineage names it (include/lineage.py): namespace and name, never a credential."""
    from include.lineage import comb_source

    src = comb_source(comb)
    return f"{src['namespace']} {src['name']}"


def comb_params(comb: CombDefinition) -> dict[str, Param]:
    return {
        "mode": Param(
            comb.configuration.extraction.mode, type="string", enum=["incremental", "snapshot"],
            description="incremental: the run's window; snapshot: the whole source",
        ),
        "execution_type": Param(
            comb.execution_type, type="string", enum=["continuous_flow", "snapshot_generation"],
            description="continuous_flow adds to the comb's jar; snapshot_generation makes a new jar",
        ),
        "window_start": Param(
            None, type=["null", "string"], format="date-time",
            description="override the window start (ISO-8601, UTC if no offset); with window_end. Without "
                        "them, logical date X extracts [last schedule tick before X, X)",
        ),
        "window_end": Param(
            None, type=["null", "string"], format="date-time", description="override the window end",
        ),
    }


def build_comb_dag(comb: CombDefinition) -> DAG:
    ex = comb.configuration.extraction
    # A run's logical date X names the window [last tick before X, X), derived by `begin` on
    # every trigger path. The trigger timetable gives every path the same logical date for the
    # same tick (scheduled and backfill runs: the tick; `dags test DAG X`, UI/REST with X: X). A
    # data-interval timetable would not: its scheduled runs carry the interval's start, its
    # manual runs the interval's end.
    schedule = CronTriggerTimetable(ex.schedule, timezone="UTC") if ex.schedule else None
    start = datetime.combine(comb.start_date, datetime.min.time(), tzinfo=UTC)
    with DAG(
        dag_id=comb.dag_id,
        description=comb.description or f"Honey comb {comb.name}",
        schedule=schedule,
        start_date=start,
        catchup=False,
        # One scheduled run at a time; backfills run up to 10 at once, and correctness never
        # depends on this: deliveries of a comb are serialised by its delivery lock.
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        params=comb_params(comb),
        tags=["honey_comb", comb.type, comb.subtype, *comb.tags],
        doc_md=(
            f"**Honey comb `{comb.name}`** ({comb.type}/{comb.subtype}, {comb.execution_type}).\n\n"
            f"Source `{_source_label(comb)}`, mode `{ex.mode}`, schedule `{ex.schedule}`. "
            "Definition: `include/combs/" + comb.name + ".yaml`."
        ),
    ) as dag:

        @task(retries=0, multiple_outputs=False)
        def begin(**context) -> dict:
            from include.honeycomb.tasks import begin as begin_run
            from sting_airflow.audit import try_number
            from sting_airflow.hooks import app_dsn

            dr = context["dag_run"]
            try:
                run = begin_run(
                    load_comb(comb.name),
                    run_key=context["run_id"],
                    params=dict(context["params"]),
                    conf=dict(getattr(dr, "conf", None) or {}),
                    logical_date=getattr(dr, "logical_date", None),
                    run_after=getattr(dr, "run_after", None),
                    dsn=app_dsn(),
                    dag_id=comb.dag_id,
                    try_number=try_number(context),
                )
            except ValueError as e:
                raise AirflowFailException(str(e)) from None
            from sting_airflow.notify import close_orphaned_executions

            close_orphaned_executions(comb.name, context["run_id"], app_dsn())
            w = run["window"]
            print(f"window: {w['start'] or '(whole source)'} -> {w['end']} ({w['mode']}, {run['execution_type']})")
            return run

        run = begin()
        staged = HoneyCombExtractOperator(
            task_id="extract", comb_name=comb.name, run=run,
            # Deliveries of one comb are serialised (database combs: the delivery lock;
            # checkpointed combs: the read lease): queue them in the scheduler instead of
            # holding worker slots while they wait.
            max_active_tis_per_dag=1,
        )
        if comb.window_driven:  # the extract step publishes under the delivery lock
            published = staged
        else:
            published = HoneyCombParquetOutputOperator(
                task_id="write_parquet", comb_name=comb.name, run=run, staged=staged.output
            )
        asset = output_asset(comb)

        @task(outlets=[asset], multiple_outputs=False)
        def load_honey_jar(run: dict, output: dict, **context) -> dict:
            from include.honeycomb.tasks import load
            from sting_airflow.audit import audited_step
            from sting_airflow.hooks import app_dsn

            dsn = app_dsn()
            with audited_step(run, "load_honey_jar", context, dsn):
                result = load(load_comb(comb.name), run, output, dsn=dsn)
            w = result["window"]
            print(
                f"window {w['start'] or '(whole source)'} -> {w['end']}: {result['records_processed']} rows "
                f"({result['records_scrubbed']} scrubbed, {result['records_skipped']} already delivered, "
                f"{result['records_rejected']} rejected) -> {result['uri']} -> jar '{result['jar_name']}' "
                f"({result['document_count']} documents)"
            )
            # What the run delivered, where users look: the asset event of the output and the run's note.
            context["outlet_events"][asset].extra = {
                k: result[k] for k in ("uri", "window", "records_processed", "records_scrubbed", "records_rejected",
                                       "records_skipped", "null_cursor", "document_id")}
            from include.notifications import comb_note
            from sting_airflow.notify import set_run_note

            set_run_note(context, comb_note(result))
            return result

        loaded = load_honey_jar(run, published.output)

        # (the failed task already notified: this consequence of it does not again)
        @task(trigger_rule="one_failed", retries=0, on_failure_callback=[])
        def finalize_on_failure(run: dict | None = None, **context) -> None:
            from include.honeycomb.tasks import finalize_failed
            from sting_airflow.hooks import app_dsn
            from sting_airflow.notify import guard_failing_comb, set_run_note

            dsn = app_dsn()
            message = finalize_failed(load_comb(comb.name), run, dsn=dsn, run_key=context["run_id"])
            set_run_note(context, f"failed: {message or 'see the failed step'}")
            guard_failing_comb(context, comb.name, comb.pause_after_failures, dsn)
            raise AirflowFailException(f"honey comb '{comb.name}' run failed: {message or 'see the failed step'}")

        steps = [staged, loaded] if comb.window_driven else [staged, published, loaded]
        if comb.type == "stream" and comb.subtype == "redis_streams":

            @task(multiple_outputs=False)
            def acknowledge(run: dict, **context) -> int:
                """Acknowledge the messages the committed checkpoint covers: only now is their
                output durable (published and registered)."""
                from include.honeycomb.checkpointed import acknowledge as ack
                from sting_airflow.audit import audited_step
                from sting_airflow.hooks import HoneyCombVaultHook, app_dsn

                c = load_comb(comb.name)
                dsn = app_dsn()
                with audited_step(run, "acknowledge", context, dsn):
                    return ack(c, run, HoneyCombVaultHook().source_secret(c.configuration.connection.vault_path),
                               dsn=dsn)

            acked = acknowledge(run)
            loaded >> acked
            steps.append(acked)
        steps >> finalize_on_failure(run)
    return dag


def build_invalid_comb_dag(path: Path, error: Exception) -> DAG:
    """A comb whose definition is invalid still shows up, paused-by-default and unscheduled, with
    the validation error as its description and as the failure of its only task: one bad file
    never hides the other combs."""
    from include.honeycomb.config import invalid_dag_id

    message = str(error)[:4000]
    with DAG(
        dag_id=invalid_dag_id(path),
        description=f"INVALID CONFIG: {message}"[:1000],
        # runs once a day (and at once when it appears): its failure notifies until the file is fixed
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        is_paused_upon_creation=False,
        default_args={"on_failure_callback": failure_callbacks()},
        tags=["honey_comb", "invalid-config"],
        doc_md=f"**Invalid honey comb definition** `{path.name}`:\n\n```\n{message}\n```",
    ) as dag:

        @task(retries=0)
        def invalid_config() -> None:
            raise AirflowFailException(message)

        invalid_config()
    return dag

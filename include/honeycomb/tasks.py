"""Plain-Python steps of a comb run around extract/publish: begin (register, jar, audit row),
load (jar document + completion, one transaction) and finalize-on-failure. Airflow calls these from
TaskFlow tasks; tests and benchmarks call them directly."""

from __future__ import annotations

import hashlib
from datetime import datetime

from include.db import connect
from include.honeycomb import catalog
from include.honeycomb.config import CombDefinition, combs_dir, load_raw
from include.honeycomb.windows import RunWindow, WindowError, resolve_window
from include.run_params import unknown_conf_keys


class RunParamsError(ValueError):
    pass


# What a run accepts in its conf (the DAG's typed params).
RUN_PARAMS = ("mode", "execution_type", "window_start", "window_end")


def begin(
    comb: CombDefinition,
    *,
    run_key: str,
    params: dict | None = None,
    conf: dict | None = None,
    logical_date: datetime | None = None,
    run_after: datetime | None = None,
    dsn: str | None = None,
    dag_id: str | None = None,
    try_number: int = 1,
) -> dict:
    """Register the comb, resolve the window, make sure the target jar exists and open the
    execution's audit row. Returns the run descriptor (ids + window) the other steps take.

    `conf` is what the trigger sent: a key that is not one of the run's params is rejected (a
    typo such as `windw_start` must not run the default window)."""
    params = params or {}
    execution_type = params.get("execution_type") or comb.execution_type
    raw_path = combs_dir() / f"{comb.name}.yaml"
    with connect(dsn) as conn:
        comb_id = catalog.register_comb(conn, comb, load_raw(raw_path) if raw_path.exists() else None)
    try:
        unknown = unknown_conf_keys(conf, RUN_PARAMS)
        if unknown:
            raise RunParamsError(f"unknown conf key(s) {', '.join(map(repr, unknown))} "
                                 f"(known: {', '.join(RUN_PARAMS)})")
        if execution_type not in ("continuous_flow", "snapshot_generation"):
            raise RunParamsError(f"param execution_type: unknown value '{execution_type}'")
        window = resolve_window(
            comb,
            mode=params.get("mode") or None,
            logical_date=logical_date,
            run_after=run_after,
            window_start=params.get("window_start"),
            window_end=params.get("window_end"),
        )
    except (WindowError, RunParamsError) as e:
        # Audited as a failed execution (no jar, nothing extracted), then the run fails.
        with connect(dsn) as conn:
            # the caller's mistake, not the source's: it never counts toward the comb's auto-pause
            ex_id = catalog.start_execution(conn, comb_id, comb.execution_type, None, run_key,
                                            {"dag_id": dag_id, "run_id": run_key, "params": params,
                                             "cause": "run_parameters"})
            catalog.start_attempt(conn, ex_id, "begin", try_number)
            catalog.end_attempt(conn, ex_id, "begin", try_number, f"bad run parameters: {e}")
            catalog.record_failure(conn, ex_id, "begin", f"bad run parameters: {e}", try_number)
        raise RunParamsError(f"comb '{comb.name}': bad run parameters: {e}") from None
    with connect(dsn) as conn:
        previous = None if comb.window_driven else catalog.completed_output(conn, comb_id, run_key)
        jar_id = catalog.ensure_jar(conn, comb, comb_id, execution_type, window)
        execution_id = catalog.start_execution(
            conn, comb_id, execution_type, jar_id, run_key,
            {"dag_id": dag_id, "run_id": run_key, "window": window.as_dict(), "params": params,
             "logical_date": logical_date.isoformat() if logical_date else None},
        )
        catalog.start_attempt(conn, execution_id, "begin", try_number)
    # What killed runs of this comb left in staging (not even their failure handler ran).
    from include.honeycomb.pipeline import sweep_staging
    from include.settings import get_settings

    swept = sweep_staging(comb, get_settings().staging_max_age)
    with connect(dsn) as conn:
        catalog.end_attempt(conn, execution_id, "begin", try_number)
    run = {
        "staging_swept": swept,
        "comb": comb.name,
        "comb_id": comb_id,
        "jar_id": jar_id,
        "execution_id": execution_id,
        "execution_type": execution_type,
        "window": window.as_dict(),
    }
    if not comb.window_driven:
        # Two runs of one interval (a manual run beside the scheduled one) read different data
        # (each resumes from the checkpoint): their outputs must not overwrite each other.
        run["output_suffix"] = "__run" + hashlib.sha256(run_key.encode()).hexdigest()[:10]
        if previous:
            # This run completed before and moved the checkpoint: its data is the output it
            # published. A rerun republishes that output instead of reading past the checkpoint
            # (which would replace it with newer data and lose it).
            run["replay"] = previous
    return run


def load(comb: CombDefinition, run: dict, output: dict, dsn: str | None = None) -> dict:
    """Upsert the output's document into the jar and complete the execution, atomically."""
    with connect(dsn) as conn:
        doc_id = catalog.load_output_into_jar(conn, run["jar_id"], comb, output, run["execution_id"])
        nc = output.get("null_cursor")
        if nc and nc.get("uri"):  # the comb's rows without a cursor value: one document, rewritten
            catalog.load_output_into_jar(conn, run["jar_id"], comb, nc, run["execution_id"])
        late = (nc or {}).get("filled_in_past") or {}
        if late.get("uri"):  # rows that got a value in an earlier window since the last run
            catalog.load_output_into_jar(conn, run["jar_id"], comb, late, run["execution_id"])
        catalog.complete_execution(conn, run["execution_id"], output, doc_id)
        checkpoint = None
        if output.get("replay"):
            from include.honeycomb.checkpointed import mark_replayed

            mark_replayed(conn, run)
        elif not comb.window_driven:  # checkpoint + file ledger move with the completion, atomically
            from include.honeycomb.checkpointed import commit

            checkpoint = commit(conn, comb, run, output)["checkpoint"]
        jar = conn.execute(
            "SELECT id, name, document_count FROM honey_jars WHERE id = %s", (run["jar_id"],)
        ).fetchone()
    if output.get("manifest_key") and not output.get("replay"):
        from include import storage

        storage.delete(output["bucket"], output["manifest_key"])  # committed: staging is empty now
    return {
        "document_id": doc_id,
        "jar_id": str(jar["id"]),
        "jar_name": jar["name"],
        "document_count": jar["document_count"],
        "uri": output["uri"],
        "records_processed": output["records_processed"],
        "records_scrubbed": output["records_scrubbed"],
        "records_rejected": output.get("records_rejected", 0),
        "checkpoint": checkpoint,
        "window": output.get("window") or run["window"],
        "records_skipped": output.get("duplicates_skipped", 0),
        "null_cursor": output.get("null_cursor"),
    }


def finalize_failed(comb: CombDefinition, run: dict | None, dsn: str | None = None,
                    run_key: str | None = None) -> str | None:
    """After a failed step: the staging object, its manifest and any incomplete upload are
    removed, attempts left 'running' are marked killed, and the audit row says failed with the
    failing step and its error (returned). Published outputs of earlier runs are untouched.
    When `begin` itself failed (no run), the error it audited for `run_key` (bad parameters)."""
    from include.honeycomb.pipeline import discard_staging

    if not run:
        if not run_key:
            return None
        with connect(dsn) as conn:
            row = conn.execute(
                """SELECT e.error_message FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
                    WHERE c.name = %s AND e.run_key = %s""", (comb.name, run_key)).fetchone()
        return row["error_message"] if row else None
    discard_staging(comb, RunWindow.from_dict(run["window"]), run["execution_type"], run.get("output_suffix", ""))
    with connect(dsn) as conn:
        if not comb.window_driven:
            from include.honeycomb.checkpointed import release_lease

            release_lease(conn, run)  # the next run may read from the (unmoved) checkpoint
        return catalog.close_failed_execution(conn, run["execution_id"])

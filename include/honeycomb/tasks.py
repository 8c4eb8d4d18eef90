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


class RunParamsError(ValueError):
    pass


def begin(
    comb: CombDefinition,
    *,
    run_key: str,
    params: dict | None = None,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
    run_after: datetime | None = None,
    dsn: str | None = None,
    dag_id: str | None = None,
) -> dict:
    """Register the comb, resolve the window, make sure the target jar exists and open the
    execution's audit row. Returns the run descriptor (ids + window) the other steps take."""
    params = params or {}
    execution_type = params.get("execution_type") or comb.execution_type
    raw_path = combs_dir() / f"{comb.name}.yaml"
    with connect(dsn) as conn:
        comb_id = catalog.register_comb(conn, comb, load_raw(raw_path) if raw_path.exists() else None)
    try:
        if execution_type not in ("continuous_flow", "snapshot_generation"):
            raise RunParamsError(f"param execution_type: unknown value '{execution_type}'")
        window = resolve_window(
            comb,
            mode=params.get("mode") or None,
            data_interval_start=data_interval_start,
            data_interval_end=data_interval_end,
            run_after=run_after,
            window_start=params.get("window_start"),
            window_end=params.get("window_end"),
        )
    except (WindowError, RunParamsError) as e:
        # Audited as a failed execution (no jar, nothing extracted), then the run fails.
        with connect(dsn) as conn:
            ex_id = catalog.start_execution(conn, comb_id, comb.execution_type, None, run_key,
                                            {"dag_id": dag_id, "run_id": run_key, "params": params})
            catalog.record_failure(conn, ex_id, "begin", f"bad run parameters: {e}")
        raise RunParamsError(f"comb '{comb.name}': bad run parameters: {e}") from None
    with connect(dsn) as conn:
        previous = None if comb.window_driven else catalog.completed_output(conn, comb_id, run_key)
        jar_id = catalog.ensure_jar(conn, comb, comb_id, execution_type, window)
        execution_id = catalog.start_execution(
            conn, comb_id, execution_type, jar_id, run_key,
            {"dag_id": dag_id, "run_id": run_key, "window": window.as_dict(), "params": params},
        )
    run = {
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
    }


def finalize_failed(comb: CombDefinition, run: dict | None, dsn: str | None = None) -> None:
    """After a failed step: the audit row says failed (keeping the step's own error) and the
    staging object, if any, is removed. Published outputs of earlier runs are untouched."""
    from include.honeycomb.pipeline import discard_staging

    if not run:
        return
    with connect(dsn) as conn:
        catalog.record_failure(conn, run["execution_id"], "finalize", "a step failed (see task logs)")
    discard_staging(comb, RunWindow.from_dict(run["window"]), run["execution_type"], run.get("output_suffix", ""))

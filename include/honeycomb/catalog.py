"""The application database side of a comb run: the comb registry, the target honey jar, the
documents that point at its outputs, and the `honey_comb_executions` audit trail.

Every write is an upsert on a natural key, so a rerun replaces rather than adds.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from psycopg.types.json import Jsonb

from include.honeycomb.config import CombDefinition
from include.honeycomb.windows import RunWindow

MAX_ERROR_CHARS = 4000


def split_definition(raw: dict[str, Any]) -> tuple[dict, dict | None]:
    """A comb file as honey_combs stores it: `configuration` (with execution_type and target
    folded in) and `scrubbing_config` apart."""
    configuration = copy.deepcopy(raw.get("configuration") or {})
    scrubbing = configuration.pop("scrubbing", None)
    configuration["execution_type"] = raw.get("execution_type", "continuous_flow")
    configuration["target"] = raw.get("target") or {}
    return configuration, scrubbing


def register_comb(conn, comb: CombDefinition, raw: dict[str, Any] | None = None) -> str:
    """Upsert the comb (by name) into honey_combs; returns its id. Stores the definition as written
    (placeholders unresolved: environment values are not copied into the database)."""
    configuration, scrubbing = split_definition(raw or json.loads(comb.model_dump_json()))
    row = conn.execute(
        """
        INSERT INTO honey_combs (name, description, type, subtype, configuration, scrubbing_config)
        VALUES (%(name)s, %(description)s, %(type)s, %(subtype)s, %(configuration)s, %(scrubbing)s)
        ON CONFLICT (name) WHERE NOT is_template DO UPDATE
           SET description = EXCLUDED.description, type = EXCLUDED.type, subtype = EXCLUDED.subtype,
               configuration = EXCLUDED.configuration, scrubbing_config = EXCLUDED.scrubbing_config,
               updated_at = CASE WHEN honey_combs.configuration IS DISTINCT FROM EXCLUDED.configuration
                                   OR honey_combs.scrubbing_config IS DISTINCT FROM EXCLUDED.scrubbing_config
                                 THEN NOW() ELSE honey_combs.updated_at END
        RETURNING id
        """,
        {
            "name": comb.name,
            "description": comb.description,
            "type": comb.type,
            "subtype": comb.subtype,
            "configuration": Jsonb(configuration),
            "scrubbing": Jsonb(scrubbing) if scrubbing is not None else None,
        },
    ).fetchone()
    return str(row["id"])


def jar_key(comb: CombDefinition, execution_type: str, window: RunWindow) -> str:
    if execution_type == "snapshot_generation":
        return f"comb:{comb.name}:{window.tag}"
    return f"comb:{comb.name}"


def ensure_jar(conn, comb: CombDefinition, comb_id: str, execution_type: str, window: RunWindow) -> str:
    """continuous_flow: the comb's one jar (created on first use). snapshot_generation: a new jar
    per run, keyed by the run's window, so rerunning that run reuses it."""
    key = jar_key(comb, execution_type, window)
    if execution_type == "snapshot_generation":
        name = f"{comb.name} snapshot {window.end:%Y-%m-%d %H:%M}Z"
        description = f"Snapshot of honey comb '{comb.name}' ({window.tag})"
    else:
        name = comb.jar_name
        description = f"Continuously fed by honey comb '{comb.name}'"
    config = {"jar_key": key, "source": {"honey_comb_id": comb_id, "honey_comb": comb.name}}
    row = conn.execute(
        """
        INSERT INTO honey_jars (name, type, description, config)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT ((config->>'jar_key')) WHERE config ? 'jar_key'
        DO UPDATE SET last_accessed = NOW()
        RETURNING id
        """,
        (name, comb.target.jar_type, description, Jsonb(config)),
    ).fetchone()
    return str(row["id"])


def start_execution(
    conn, comb_id: str, execution_type: str, jar_id: str | None, run_key: str, metadata: dict
) -> str:
    """One row per execution (DAG run). A cleared run reuses its row: status goes back to running
    and `restarts` goes up; each step's attempts are in honey_comb_execution_attempts."""
    row = conn.execute(
        """
        INSERT INTO honey_comb_executions
               (comb_id, execution_type, target_honey_jar_id, run_key, status, metadata)
        VALUES (%(comb)s, %(etype)s, %(jar)s, %(run_key)s, 'running', %(meta)s)
        ON CONFLICT (comb_id, run_key) DO UPDATE
           SET status = 'running', execution_type = EXCLUDED.execution_type,
               target_honey_jar_id = EXCLUDED.target_honey_jar_id, started_at = NOW(),
               completed_at = NULL, error_message = NULL, records_processed = 0, records_scrubbed = 0,
               metadata = EXCLUDED.metadata || jsonb_build_object(
                   'attempts', COALESCE((honey_comb_executions.metadata->>'attempts')::int, 1),
                   'restarts', COALESCE((honey_comb_executions.metadata->>'restarts')::int, 0) + 1)
        RETURNING id
        """,
        {"comb": comb_id, "etype": execution_type, "jar": jar_id, "run_key": run_key,
         "meta": Jsonb({**metadata, "attempts": 1})},
    ).fetchone()
    conn.execute("UPDATE honey_combs SET usage_count = usage_count + 1 WHERE id = %s", (comb_id,))
    return str(row["id"])


def completed_output(conn, comb_id: str, run_key: str) -> dict | None:
    """The output reference of this run's earlier execution if that one committed (its checkpoint
    moved), whatever happened after (a failed acknowledge step does not undo the commit)."""
    row = conn.execute(
        """SELECT records_processed, records_scrubbed, metadata FROM honey_comb_executions
            WHERE comb_id = %s AND run_key = %s AND (metadata->>'committed')::boolean""",
        (comb_id, run_key)).fetchone()
    out = (row or {}).get("metadata", {}).get("output") if row else None
    if not out or not out.get("uri"):
        return None
    bucket, key = out["uri"].removeprefix("s3://").split("/", 1)
    return {**out, "bucket": bucket, "key": key, "records_processed": row["records_processed"],
            "records_scrubbed": row["records_scrubbed"], "replay": True}


def record_failure(conn, execution_id: str, step: str, message: str, try_number: int | None = None) -> None:
    """Mark the execution failed with the failing step and its error (the latest failure: a retry
    that fails differently replaces it). The attempt itself is closed by `end_attempt`."""
    where = f"{step} (attempt {try_number})" if try_number else step
    text = f"{where}: {message}"[:MAX_ERROR_CHARS]
    conn.execute(
        """
        UPDATE honey_comb_executions
           SET status = 'failed', completed_at = NOW(), error_message = %s
         WHERE id = %s
        """,
        (text, execution_id),
    )


def start_attempt(conn, execution_id: str, step: str, try_number: int, hostname: str | None = None,
                  pid: int | None = None) -> None:
    """An attempt of a step begins. Earlier attempts of the run still 'running' never recorded an
    end: their process died (SIGKILL, OOM, lost worker), so they are marked killed."""
    conn.execute(
        """UPDATE honey_comb_execution_attempts SET state = 'killed', ended_at = NOW(),
                  error = 'the process ended without recording a result (killed or lost)'
            WHERE execution_id = %s AND state = 'running'""", (execution_id,))
    conn.execute(
        """INSERT INTO honey_comb_execution_attempts (execution_id, step, try_number, hostname, pid)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (execution_id, step, try_number) DO UPDATE
              SET state = 'running', started_at = NOW(), ended_at = NULL, error = NULL,
                  hostname = EXCLUDED.hostname, pid = EXCLUDED.pid""",
        (execution_id, step, try_number, hostname, pid))
    conn.execute(
        """UPDATE honey_comb_executions
              -- a retry after a failure runs again; a step after the completion (acknowledge)
              -- leaves the completed execution as it is
              SET completed_at = CASE WHEN status = 'failed' THEN NULL ELSE completed_at END,
                  status = CASE WHEN status = 'failed' THEN 'running' ELSE status END,
                  metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('attempts',
                      (SELECT max(try_number) FROM honey_comb_execution_attempts WHERE execution_id = %s))
            WHERE id = %s""", (execution_id, execution_id))


def end_attempt(conn, execution_id: str, step: str, try_number: int, error: str | None = None) -> None:
    conn.execute(
        """UPDATE honey_comb_execution_attempts SET state = %s, ended_at = NOW(), error = %s
            WHERE execution_id = %s AND step = %s AND try_number = %s""",
        ("failed" if error else "success", error[:MAX_ERROR_CHARS] if error else None, execution_id, step,
         try_number))


def close_failed_execution(conn, execution_id: str) -> str:
    """After the run failed: attempts still 'running' were killed; the execution's error names
    the failing step and its error (from the last failed or killed attempt when no step could
    record one). Returns the error message."""
    conn.execute(
        """UPDATE honey_comb_execution_attempts SET state = 'killed', ended_at = NOW(),
                  error = 'the process ended without recording a result (killed or lost)'
            WHERE execution_id = %s AND state = 'running'""", (execution_id,))
    row = conn.execute("SELECT status, error_message FROM honey_comb_executions WHERE id = %s",
                       (execution_id,)).fetchone()
    last = conn.execute(
        """SELECT step, try_number, state, error FROM honey_comb_execution_attempts
            WHERE execution_id = %s AND state IN ('failed', 'killed') ORDER BY ended_at DESC, id DESC LIMIT 1""",
        (execution_id,)).fetchone()
    message = row["error_message"] if row and row["error_message"] else None
    if last and (not message or last["state"] == "killed"):
        message = f"{last['step']} (attempt {last['try_number']}): {last['state']}: {last['error']}"
    message = message or "the run failed before any step recorded an error (see the task logs)"
    conn.execute(
        """UPDATE honey_comb_executions SET status = 'failed', completed_at = NOW(), error_message = %s
            WHERE id = %s""", (message[:MAX_ERROR_CHARS], execution_id))
    return message


def complete_execution(conn, execution_id: str, output: dict, document_id: str | None) -> None:
    meta = {
        "output": {k: output.get(k) for k in ("uri", "bytes", "sha256", "columns", "window", "hash_key_version")},
        "duplicates_skipped": output.get("duplicates_skipped", 0),
        "null_cursor": ({k: output["null_cursor"].get(k) for k in ("rows", "uri", "policy")}
                        if output.get("null_cursor") else None),
        "scrub_plan": output.get("scrub_plan", {}),
        "document_id": document_id,
    }
    conn.execute(
        """
        UPDATE honey_comb_executions
           SET status = 'completed', completed_at = NOW(), error_message = NULL,
               records_processed = %s, records_scrubbed = %s,
               metadata = COALESCE(metadata, '{}'::jsonb) || %s
         WHERE id = %s
        """,
        (output["records_processed"], output["records_scrubbed"], Jsonb(meta), execution_id),
    )


def load_output_into_jar(conn, jar_id: str, comb: CombDefinition, output: dict, execution_id: str) -> str | None:
    """Upsert the document that represents one output object in the jar (keyed by its path).

    An empty interval keeps its (empty) Parquet object as a marker but is not a document; if a
    rerun finds an interval empty that had rows before, its document is removed.
    """
    if output["records_processed"] == 0:
        conn.execute("DELETE FROM documents WHERE honey_jar_id = %s AND upload_path = %s", (jar_id, output["uri"]))
        return None
    meta = {
        "source": "honey_comb",
        "honey_comb": comb.name,
        "execution_id": execution_id,
        "window": output["window"],
        "row_count": output["records_processed"],
        "records_scrubbed": output["records_scrubbed"],
        "schema": output["columns"],
        # The document pipeline embeds the configured (already scrubbed) text fields of each record.
        "embedding": (
            {"status": "pending", "text_fields": comb.configuration.output.embed_text_fields,
             "key_fields": comb.configuration.extraction.primary_key}
            if comb.configuration.output.embed_text_fields else {"status": "not_configured"}
        ),
    }
    status = "pending" if comb.configuration.output.embed_text_fields else "completed"
    title = output["key"].rsplit("/", 1)[-1]
    row = conn.execute(
        """
        INSERT INTO documents (honey_jar_id, title, file_type, file_size, content_hash, upload_path,
                               metadata, processing_status, processed_at, tags)
        VALUES (%s, %s, 'parquet', %s, %s, %s, %s, %s, CASE WHEN %s = 'completed' THEN NOW() END, %s)
        ON CONFLICT (honey_jar_id, upload_path) DO UPDATE
           SET title = EXCLUDED.title, file_size = EXCLUDED.file_size,
               content_hash = EXCLUDED.content_hash,
               -- a rerun with identical bytes keeps the embedding state (nothing to re-embed)
               metadata = CASE WHEN documents.content_hash = EXCLUDED.content_hash
                                AND documents.metadata->'embedding'->>'status' = 'embedded'
                               THEN EXCLUDED.metadata || jsonb_build_object('embedding', documents.metadata->'embedding')
                               ELSE EXCLUDED.metadata END,
               processing_status = CASE WHEN documents.content_hash = EXCLUDED.content_hash
                                         AND documents.processing_status = 'completed'
                                        THEN 'completed' ELSE EXCLUDED.processing_status END,
               processed_at = CASE WHEN EXCLUDED.processing_status = 'completed' THEN NOW()
                                   ELSE documents.processed_at END
        RETURNING id
        """,
        (jar_id, title, output["bytes"], output["sha256"], output["uri"], Jsonb(meta), status, status,
         ["honey_comb", comb.name]),
    ).fetchone()
    return str(row["id"])


def running_executions(conn, comb_name: str, exclude_run_key: str) -> list[dict]:
    """The comb's other executions still marked running: (id, run_key, dag_id)."""
    return conn.execute(
        """SELECT e.id::text AS id, e.run_key, e.metadata->>'dag_id' AS dag_id
             FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
            WHERE c.name = %s AND e.status = 'running' AND e.run_key <> %s""",
        (comb_name, exclude_run_key)).fetchall()


def close_orphaned(conn, execution_id: str, reason: str, cause: str) -> None:
    """An execution whose DAG run is gone or over without closing it: failed with the reason, its
    attempts still marked running killed. `cause` keeps it out of the comb's auto-pause count."""
    conn.execute(
        """UPDATE honey_comb_execution_attempts SET state = 'killed', ended_at = NOW(), error = %s
            WHERE execution_id = %s AND state = 'running'""", (reason[:MAX_ERROR_CHARS], execution_id))
    conn.execute(
        """UPDATE honey_comb_executions
              SET status = 'failed', completed_at = NOW(), error_message = %s,
                  metadata = metadata || jsonb_build_object('cause', %s::text)
            WHERE id = %s AND status = 'running'""", (reason[:MAX_ERROR_CHARS], cause, execution_id))


def reconcile_orphans(conn, comb_name: str, current_run_key: str, run_state) -> list[dict]:
    """Close the comb's executions whose DAG run no longer exists (Airflow deleted it: `airflow
    dags test` replaces a run of the same logical date, a user deleted it) or ended without
    closing them. `run_state(dag_id, run_id)` answers the run's state, 'missing', or None when
    it cannot tell (then nothing is touched). Returns what was closed."""
    closed = []
    for ex in running_executions(conn, comb_name, current_run_key):
        if not ex["dag_id"]:
            continue
        state = run_state(ex["dag_id"], ex["run_key"])
        if state == "missing":
            reason = ("abandoned: its DAG run no longer exists in Airflow (deleted, or replaced by `airflow dags "
                      "test` for the same logical date); what it published stays, later runs see it")
            close_orphaned(conn, ex["id"], reason, "run_deleted")
        elif state in ("success", "failed"):
            reason = f"abandoned: its DAG run ended {state} without closing this execution"
            close_orphaned(conn, ex["id"], reason, "run_ended")
        else:
            continue
        closed.append({**ex, "state": state})
    return closed

"""Every attempt is in the audit, and staging is empty after success, failure and kill: a
database comb's extract step SIGKILLed while it holds the comb's delivery lock, then retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import psycopg
import pytest

from include import storage
from include.db import connect
from include.settings import get_settings
from tests.combtools import insert, read_output, run_steps, utc, write_comb

T0 = utc(2026, 10, 5, 0)
W = {"window_start": T0, "window_end": T0 + timedelta(hours=1)}


@pytest.fixture
def env(comb_env):
    """The shared comb environment with 200 rows in the first window."""
    tmp_path, dsn, schema = comb_env
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert(conn, schema, [(i, f"u{i}@example.org", "123-45-6789", "+1 555 0100", "n", T0 + timedelta(seconds=i))
                              for i in range(1, 201)])
    return comb_env


def _attempts(run_key: str, comb: str) -> list[tuple]:
    with connect() as conn:
        rows = conn.execute(
            """SELECT a.step, a.try_number, a.state, a.error FROM honey_comb_execution_attempts a
                 JOIN honey_comb_executions e ON e.id = a.execution_id JOIN honey_combs c ON c.id = e.comb_id
                WHERE c.name = %s AND e.run_key = %s ORDER BY a.started_at, a.id""", (comb, run_key)).fetchall()
    return [(r["step"], r["try_number"], r["state"], r["error"]) for r in rows]


def _execution(comb: str, run_key: str) -> str:
    with connect() as conn:
        return conn.execute("""SELECT e.id FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
                                WHERE c.name = %s AND e.run_key = %s""", (comb, run_key)).fetchone()["id"]


def _staging_empty(schema: str) -> bool:
    """No staging object and no incomplete upload anywhere under the comb's prefixes."""
    bucket = get_settings().comb_output_bucket
    uploads = [u for prefix in (f"_staging/tests/{schema}/", f"tests/{schema}/")
               for u in storage.s3_client().list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])]
    return not list(storage.list_keys(bucket, f"_staging/tests/{schema}/")) and not uploads


def test_killed_extract_is_audited_and_its_retry_cleans_staging(env):
    tmp, dsn, schema = env
    name = write_comb(tmp, schema)
    bucket = get_settings().comb_output_bucket
    from include.honeycomb.windows import OutputLocation, RunWindow

    loc = OutputLocation(bucket, f"tests/{schema}", name)
    final = loc.final_key(RunWindow("incremental", W["window_start"], W["window_end"]))
    # What a writer killed in the middle of its upload leaves: an incomplete multipart upload
    # (database combs stream to the final key; the object appears only when the upload completes).
    storage.s3_client().create_multipart_upload(Bucket=bucket, Key=final)
    # The source is busy (a lock on the table): attempt 1 blocks inside its query, holding the
    # comb's delivery lock, and is SIGKILLed there.
    blocker = psycopg.connect(dsn)
    blocker.execute(f'LOCK TABLE "{schema}".orders IN ACCESS EXCLUSIVE MODE')
    code = ("import sys; sys.path[:0] = ['.', 'plugins']\n"
            "from tests.combtools import run_steps\n"
            "run_steps(sys.argv[1], 'run-k', 1, window_start=sys.argv[2], window_end=sys.argv[3])\n")
    p = subprocess.Popen([sys.executable, "-c", code, name, W["window_start"].isoformat(), W["window_end"].isoformat()],
                         env={**os.environ, "STING_COMBS_DIR": str(tmp)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and ("extract", 1, "running", None) not in _attempts("run-k", name):
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    blocker.rollback()
    blocker.close()
    assert ("extract", 1, "running", None) in _attempts("run-k", name)
    # Attempt 2 (Airflow's retry): the killed process's lock is gone, the leftover upload aborted.
    _, _, out, _ = run_steps(name, "run-k", 2, **W)
    t, _ = read_output(out["bucket"], out["key"])
    assert t.num_rows == 200
    attempts = _attempts("run-k", name)
    assert ("extract", 1, "killed", "the process ended without recording a result (killed or lost)") in attempts
    assert ("extract", 2, "success", None) in attempts and ("load_honey_jar", 2, "success", None) not in attempts
    assert _staging_empty(schema)
    with connect() as conn:
        ex = conn.execute("SELECT status, metadata FROM honey_comb_executions WHERE id = %s",
                          (_execution(name, "run-k"),)).fetchone()
    assert ex["status"] == "completed" and ex["metadata"]["attempts"] == 2


def test_failed_run_names_step_attempt_and_error_and_leaves_no_staging(env):
    tmp, dsn, schema = env
    name = write_comb(tmp, schema, table=f"{schema}.missing_table")
    from types import SimpleNamespace

    from include.honeycomb.tasks import begin, finalize_failed
    from sting_airflow.operators import HoneyCombExtractOperator, load_comb

    run = begin(load_comb(name), run_key="run-f", params={k: v.isoformat() for k, v in W.items()})
    for n in (1, 2, 3):  # Airflow's retries: each attempt recorded with its error
        with pytest.raises(Exception, match="query failed"):
            HoneyCombExtractOperator(task_id="extract", comb_name=name, run=run).execute(
                {"ti": SimpleNamespace(try_number=n)})
    message = finalize_failed(load_comb(name), run)  # the DAG's failure handler
    assert message.startswith("extract (attempt 3): comb") and "query failed" in message
    attempts = _attempts("run-f", name)
    assert [(s, n, st) for s, n, st, _ in attempts if s == "extract"] == \
        [("extract", 1, "failed"), ("extract", 2, "failed"), ("extract", 3, "failed")]
    with connect() as conn:
        ex = conn.execute("SELECT status, error_message FROM honey_comb_executions WHERE id = %s",
                          (run["execution_id"],)).fetchone()
    assert ex["status"] == "failed" and ex["error_message"] == message
    assert _staging_empty(schema)


def test_a_failed_upload_leaves_the_previous_output_untouched(stack):
    """Database combs stream to the final key: the object is replaced only by a completed upload."""
    from include.storage import MultipartSink, atomic_upload

    bucket = get_settings().comb_output_bucket
    key = f"tests/atomic/{time.time_ns()}.bin"
    storage.s3_client().put_object(Bucket=bucket, Key=key, Body=b"previous output")
    sink_box = []
    with pytest.raises(RuntimeError, match="source died"), atomic_upload(bucket, key) as sink:
        sink.part_size = 5 * 1024 * 1024
        sink_box.append(sink)
        for _ in range(4):  # 4 parts already sent when the source fails
            sink.write(os.urandom(5 * 1024 * 1024 + 1))
        assert sink._upload_id is not None
        raise RuntimeError("source died")
    assert storage.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"previous output"
    assert not storage.s3_client().list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads")
    # and a completed one replaces it, byte for byte, with the content hash of what was written
    data = os.urandom(11 * 1024 * 1024)
    s = MultipartSink(bucket, key, part_size=5 * 1024 * 1024)
    s.write(data)
    s.complete()
    assert storage.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read() == data
    import hashlib

    assert s.sha256.hexdigest() == hashlib.sha256(data).hexdigest() and s.size == len(data)
    storage.delete(bucket, key)


def test_a_step_after_the_completion_leaves_the_execution_completed(env):
    """The Redis comb's `acknowledge` runs after `load_honey_jar` completed the execution: its
    attempt is audited without reopening the execution (completed_at stays)."""
    from types import SimpleNamespace

    from sting_airflow.audit import audited_step

    tmp, dsn, schema = env
    name = write_comb(tmp, schema)
    run, _, _, _ = run_steps(name, "run-c", **W)
    with connect() as conn:
        before = conn.execute("SELECT status, completed_at FROM honey_comb_executions WHERE id = %s",
                              (run["execution_id"],)).fetchone()
    with audited_step(run, "acknowledge", {"ti": SimpleNamespace(try_number=1)}):
        pass
    with connect() as conn:
        after = conn.execute("SELECT status, completed_at FROM honey_comb_executions WHERE id = %s",
                             (run["execution_id"],)).fetchone()
    assert before["status"] == after["status"] == "completed" and after["completed_at"] == before["completed_at"]
    assert ("acknowledge", 1, "success", None) in _attempts("run-c", name)

"""Every attempt of every comb step in the audit (`honey_comb_execution_attempts`): started,
ended, failed with its error, or found killed by the next attempt or the failure handler."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager


def try_number(context) -> int:
    ti = (context or {}).get("ti")
    return int(getattr(ti, "try_number", None) or 1)


@contextmanager
def audited_step(run: dict | None, step: str, context, dsn: str | None = None):
    """Record the attempt's start, then its success or its error (and the execution's failure,
    naming the step and the attempt). Audit writes never hide the step's own error."""
    from include.db import connect
    from include.honeycomb import catalog

    execution_id = (run or {}).get("execution_id")
    n = try_number(context)
    if not execution_id:
        yield n
        return
    with connect(dsn) as conn:
        catalog.start_attempt(conn, execution_id, step, n, socket.gethostname(), os.getpid())
    try:
        yield n
    except BaseException as e:
        message = str(e).strip() or type(e).__name__
        try:
            with connect(dsn) as conn:
                catalog.end_attempt(conn, execution_id, step, n, message)
                catalog.record_failure(conn, execution_id, step, message, n)
        except Exception:
            pass
        raise
    with connect(dsn) as conn:
        catalog.end_attempt(conn, execution_id, step, n)

"""Operators hear about failures, and see outcomes where they look.

Configured in one place, Airflow connections plus one setting:
- `smtp_default` (SMTP provider): the mail server (the local stack: its aiosmtpd sink), with
  `from_email` in its extra; recipients: STING_NOTIFY_EMAILS (comma-separated);
- `sting_notify_webhook` (HTTP provider): the URL a JSON notice is POSTed to (chat, incident tool);
- `sting_airflow_api`: the Airflow REST API (a service account), to write run notes and to pause
  a comb that keeps failing.

Every DAG's tasks carry `failure_callbacks()` through the builders' default_args: a task that
fails for good (its retries spent) sends one notice by each channel. A channel that is down or
not configured is logged and skipped; it never changes the task's outcome.
"""

from __future__ import annotations

import logging

from airflow.sdk import BaseHook, BaseNotifier

from include.notifications import Notice, short_error

SMTP_CONN = "smtp_default"
WEBHOOK_CONN = "sting_notify_webhook"
API_CONN = "sting_airflow_api"
log = logging.getLogger("sting.notify")


def _masked(text: str) -> str:
    """Airflow's secrets masker over the text (every secret a connection or variable revealed)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # a later Airflow moved it: the text is already the sources' redacted one
        return text
    return str(redact(text))


def send(notice: Notice) -> dict:
    """Mail and webhook; returns which channels took it."""
    from include.settings import get_settings

    sent = {"mail": False, "webhook": False}
    notice = Notice(**{**notice.__dict__, "error": _masked(notice.error)})
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=SMTP_CONN) as smtp:
            smtp.send_email_smtp(to=list(get_settings().notify_emails), subject=notice.subject,
                                 html_content=notice.html(), from_email=smtp.from_email or "sting-airflow@localhost")
        sent["mail"] = True
    except Exception as e:  # noqa: BLE001 - a notification channel never fails the task
        log.warning("failure mail not sent (%s): %s", SMTP_CONN, short_error(e)[:300])
    try:
        from airflow.providers.http.hooks.http import HttpHook

        HttpHook(method="POST", http_conn_id=WEBHOOK_CONN).run(endpoint=None, json=notice.payload(),
                                                                extra_options={"timeout": 10})
        sent["webhook"] = True
    except Exception as e:  # noqa: BLE001
        log.warning("failure webhook not sent (%s): %s", WEBHOOK_CONN, short_error(e)[:300])
    log.info("notice '%s' sent: %s", notice.subject, sent)
    return sent


def notice_from_context(context, kind: str = "task_failed", **details) -> Notice:
    ti = context.get("ti") or context.get("task_instance")
    ld = context.get("logical_date")
    return Notice(kind=kind, dag_id=getattr(ti, "dag_id", None) or context["dag"].dag_id,
                  run_id=getattr(ti, "run_id", None), task_id=getattr(ti, "task_id", None),
                  try_number=getattr(ti, "try_number", None), logical_date=ld.isoformat() if ld else None,
                  error=short_error(context.get("exception")), log_url=getattr(ti, "log_url", None), details=details)


class StingFailureNotifier(BaseNotifier):
    """A task failed for good: mail and webhook (see the module)."""

    template_fields = ()

    def notify(self, context) -> None:
        send(notice_from_context(context))


def failure_callbacks() -> list:
    return [StingFailureNotifier()]


# ----------------------------------------------------------------------------- the REST API
class AirflowApi:
    """The Airflow REST API as the connection `sting_airflow_api` (http, login/password)."""

    def __init__(self, conn_id: str = API_CONN, timeout: float = 10):
        import httpx

        c = BaseHook.get_connection(conn_id)
        host = c.host or "127.0.0.1"
        base = host if "://" in host else f"{c.schema or 'http'}://{host}"
        if c.port:
            base = f"{base}:{c.port}"
        self.http = httpx.Client(base_url=base.rstrip("/"), timeout=timeout)
        r = self.http.post("/auth/token", json={"username": c.login, "password": c.password})
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def patch(self, path: str, mask: str, body: dict) -> dict:
        r = self.http.patch(path, params={"update_mask": mask}, json=body)
        r.raise_for_status()
        return r.json()

    def set_note(self, dag_id: str, run_id: str, note: str) -> None:
        from urllib.parse import quote

        self.patch(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", "note", {"note": note[:1000]})

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The DAG run's state, 'missing' when Airflow has no such run, None when it cannot tell."""
        from urllib.parse import quote

        r = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        if r.status_code == 404:
            return "missing"
        return r.json().get("state") if r.status_code == 200 else None

    def pause(self, dag_id: str) -> None:
        self.patch(f"/api/v2/dags/{dag_id}", "is_paused", {"is_paused": True})


def set_run_note(context, note: str) -> bool:
    """The DAG run's note (the UI shows it on the run): the outcome in a line. Best effort."""
    ti = context.get("ti")
    try:
        AirflowApi().set_note(ti.dag_id, ti.run_id, _masked(note))
        return True
    except Exception as e:  # noqa: BLE001 - the note is a courtesy; the outcome is in the audit tables
        log.warning("run note not set (%s): %s", API_CONN, short_error(e)[:300])
        return False


def pause_dag(dag_id: str) -> bool:
    try:
        AirflowApi().pause(dag_id)
        return True
    except Exception as e:  # noqa: BLE001
        log.warning("DAG %s not paused (%s): %s", dag_id, API_CONN, short_error(e)[:300])
        return False


def close_orphaned_executions(comb_name: str, run_id: str, dsn: str) -> list[dict]:
    """The comb's audit rows left running by DAG runs Airflow deleted or ended (include/honeycomb/
    catalog.py `reconcile_orphans`), checked through the REST API. Best effort: a failure here
    never fails the run."""
    from include.db import connect
    from include.honeycomb.catalog import reconcile_orphans

    try:
        api = AirflowApi()

        def state(dag_id: str, rid: str) -> str | None:
            try:
                return api.run_state(dag_id, rid)
            except Exception:  # noqa: BLE001
                return None

        with connect(dsn) as conn:
            closed = reconcile_orphans(conn, comb_name, run_id, state)
    except Exception as e:  # noqa: BLE001
        log.warning("orphaned executions of %s not checked (%s): %s", comb_name, API_CONN, short_error(e)[:300])
        return []
    for c in closed:
        log.warning("comb %s: execution of run %s closed: its DAG run is %s", comb_name, c["run_key"], c["state"])
    return closed


def guard_failing_comb(context, comb_name: str, limit: int, dsn: str) -> bool:
    """After a failed comb run: when its last `limit` runs all failed, pause its DAG and say so.
    Returns whether it was paused. `limit` 0: never pause."""
    from include.db import connect
    from include.notifications import failure_streak

    if limit <= 0:
        return False
    with connect(dsn) as conn:
        streak = failure_streak(conn, comb_name, limit)
    if streak < limit:
        return False
    ti = context.get("ti")
    paused = pause_dag(ti.dag_id)
    send(notice_from_context(context, kind="comb_paused", failures_in_a_row=streak, paused=paused,
                             unpause=f"fix the cause, then unpause {ti.dag_id} (UI toggle, or PATCH /api/v2/dags/"
                                     f"{ti.dag_id} is_paused=false)"))
    return paused

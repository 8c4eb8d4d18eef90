"""What operators are told: failure notifications (mail and webhook), run notes, and the
consecutive-failure streak that pauses a comb. Plain Python: the Airflow side
(plugins/sting_airflow/notify.py) sends what this module writes, through the SMTP and HTTP
providers' hooks.

No secret reaches a message: the error text is the task's own (already redacted by the sources),
cut to its first lines, and the Airflow side passes it through Airflow's secrets masker too.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field

MAX_ERROR = 1500


@dataclass(frozen=True)
class Notice:
    kind: str  # task_failed | comb_paused | invalid_definition
    dag_id: str
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    logical_date: str | None = None
    error: str = ""
    log_url: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def subject(self) -> str:
        what = {"task_failed": f"{self.task_id} failed", "comb_paused": "paused after repeated failures",
                "invalid_definition": "invalid definition"}.get(self.kind, self.kind)
        return f"[STING] {self.dag_id}: {what}"[:200]

    def text(self) -> str:
        lines = [self.subject, ""]
        for k, v in (("DAG", self.dag_id), ("run", self.run_id), ("task", self.task_id), ("try", self.try_number),
                     ("logical date", self.logical_date), ("log", self.log_url)):
            if v not in (None, ""):
                lines.append(f"{k}: {v}")
        for k, v in self.details.items():
            lines.append(f"{k}: {v}")
        if self.error:
            lines += ["", "error:", self.error]
        return "\n".join(lines)

    def html(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"

    def payload(self) -> dict:
        return {"source": "sting-data-pipelines", "subject": self.subject, **asdict(self)}


def short_error(exc: BaseException | str | None) -> str:
    """The error as operators should read it: its first lines, bounded."""
    if exc is None:
        return ""
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, str):
        text = f"{type(exc).__name__}: {text}"
    lines = text.splitlines()
    out = "\n".join(lines[:12])
    return out[:MAX_ERROR] + ("..." if len(out) > MAX_ERROR or len(lines) > 12 else "")


def failure_streak(conn, comb_name: str, limit: int) -> int:
    """How many of the comb's latest runs failed in a row (up to `limit`). Runs refused for the
    caller's parameters (a typo in a trigger's conf) are left out: they say nothing of the source."""
    rows = conn.execute(
        """SELECT e.status FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
            WHERE c.name = %s AND coalesce(e.metadata->>'cause', '') NOT IN ('run_parameters', 'run_deleted', 'run_ended')
            ORDER BY e.started_at DESC LIMIT %s""", (comb_name, limit)).fetchall()
    n = 0
    for r in rows:
        if r["status"] != "failed":
            break
        n += 1
    return n


def comb_note(result: dict) -> str:
    """A comb run's outcome in one line: the DAG run's note."""
    w = result.get("window") or {}
    note = (f"{result.get('records_processed', 0)} rows delivered ({result.get('records_scrubbed', 0)} scrubbed, "
            f"{result.get('records_rejected', 0)} rejected, {result.get('records_skipped', 0)} already delivered); "
            f"window {w.get('start') or '(whole source)'} -> {w.get('end')}; output {result.get('uri')}; "
            f"honey jar '{result.get('jar_name')}'")
    late = ((result.get("null_cursor") or {}).get("filled_in_past") or {})
    if late.get("rows"):
        note += (f"; {late['rows']} row(s) that had a NULL cursor got a value in an earlier window "
                 f"({late.get('values_from')} .. {late.get('values_to')}): delivered in {late.get('uri')}")
    return note


def job_note(counts: dict) -> str:
    """A job run's outcome: each step's counts, briefly."""
    parts = []
    for step, c in counts.items():
        if not isinstance(c, dict):
            continue
        kv = ", ".join(f"{k} {v}" for k, v in c.items() if k != "seconds" and isinstance(v, (int, float, str, bool))
                       and len(str(v)) <= 80)
        parts.append(f"{step}: {kv}" if kv else step)
    return "; ".join(parts)[:2000]

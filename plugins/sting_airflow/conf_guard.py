"""An API-server middleware (registered by plugins/sting_conf_guard_plugin.py) that refuses a
trigger whose conf carries keys the DAG does not declare as params, before any run exists: HTTP
400 naming the key (and the close match), instead of a run created, failed in its first task,
and counted toward the comb's auto-pause. Airflow validates declared params only.

Covers `POST /api/v2/dags/{dag_id}/dagRuns` (REST, the UI's trigger form) and
`POST /api/v2/backfills` (`dag_run_conf`), for every DAG that declares params. Requests without
credentials pass through untouched (Airflow answers them 401: param names are not told to
anonymous callers)."""

from __future__ import annotations

import asyncio
import json
import logging
import re

log = logging.getLogger(__name__)
_TRIGGER = re.compile(r"/api/v2/dags/(?P<dag>[^/]+)/dagRuns/?$")
_BACKFILL = re.compile(r"/api/v2/backfills/?$")
MAX_BODY = 1024 * 1024


def _declared_params(dag_id: str) -> list[str] | None:
    """The DAG's declared params (None: unknown DAG, or no params: nothing to enforce)."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    if dag is None or not dag.params:
        return None
    return list(dag.params.keys())


class ConfGuardMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        trigger, backfill = _TRIGGER.search(path), _BACKFILL.search(path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not (trigger or backfill) or not ("authorization" in headers or "_token" in headers.get("cookie", "")):
            return await self.app(scope, receive, send)
        messages, size = [], 0
        while True:  # the body, kept to be replayed to Airflow unchanged
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return await self.app(scope, _replay(messages, receive), send)
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
            if size > MAX_BODY:  # not ours to judge: Airflow answers it
                return await self.app(scope, _replay(messages, receive), send)
        body = b"".join(m.get("body", b"") for m in messages)
        replay = _replay(messages, receive)
        try:
            payload = json.loads(body or b"{}")
            dag_id = trigger.group("dag") if trigger else payload.get("dag_id")
            conf = payload.get("conf") if trigger else payload.get("dag_run_conf")
        except (ValueError, AttributeError):
            return await self.app(scope, replay, send)
        if not dag_id or not conf:
            return await self.app(scope, replay, send)
        from urllib.parse import unquote

        from include.run_params import explain, unknown_conf_keys

        dag_id = unquote(dag_id)
        try:
            known = await asyncio.to_thread(_declared_params, dag_id)
        except Exception:  # noqa: BLE001 - the guard never stands in Airflow's way
            log.exception("conf guard: cannot read the params of %s", dag_id)
            known = None
        unknown = unknown_conf_keys(conf, known) if known is not None else []
        if not unknown:
            return await self.app(scope, replay, send)
        detail = explain(dag_id, unknown, known)
        data = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


def _replay(messages: list[dict], receive):
    """A `receive` that hands over the messages already read, then reads on."""
    queue = list(messages)

    async def again():
        return queue.pop(0) if queue else await receive()

    return again

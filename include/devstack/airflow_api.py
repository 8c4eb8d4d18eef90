"""A small client for Airflow's REST API v2 (what the demo and the end-to-end tests use)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from include.settings import get_settings

TERMINAL = {"success", "failed"}


class AirflowAPI:
    def __init__(self, base_url: str | None = None, username: str = "admin", password: str | None = None):
        s = get_settings()
        self.base = (base_url or s.airflow_url).rstrip("/")
        if password is None:
            from include.devstack.stack import stack_secrets

            password = stack_secrets()["admin_password"]
        self.username, self.password = username, password
        self._token: str | None = None

    def _req(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path} -> {e.code}: {e.read().decode(errors='replace')[:2000]}") from None

    def token(self) -> str:
        if self._token is None:
            r = self._req("POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False)
            self._token = r["access_token"]
        return self._token

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        deadline = time.time() + timeout
        while True:
            try:
                return self._req("GET", f"/api/v2/dags/{dag_id}")
            except RuntimeError:
                if time.time() > deadline:
                    raise
                time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self._req("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None, run_id: str | None = None) -> dict:
        body = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self._req("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)

    def run(self, dag_id: str, run_id: str) -> dict:
        return self._req("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")

    def runs(self, dag_id: str) -> list[dict]:
        return self._req("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")["dag_runs"]

    def runs_between(self, dag_id: str, gte: str, lte: str) -> list[dict]:
        q = f"logical_date_gte={urllib.request.quote(gte)}&logical_date_lte={urllib.request.quote(lte)}"
        return self._req("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&{q}")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        q = urllib.request.quote(run_id, safe="")
        return self._req("GET", f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances")["task_instances"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        deadline = time.time() + timeout
        while True:
            r = self.run(dag_id, run_id)
            if r["state"] in TERMINAL:
                return r
            if time.time() > deadline:
                raise TimeoutError(f"{dag_id} / {run_id} still {r['state']} after {timeout:.0f}s")
            time.sleep(2)

    def backfill(self, dag_id: str, from_date: str, to_date: str, reprocess: str = "none", max_active_runs: int = 1,
                 wait_for_running: float = 300) -> dict:
        """Create a backfill; if one is still running for the DAG (Airflow allows one), wait for it."""
        body = {"dag_id": dag_id, "from_date": from_date, "to_date": to_date,
                "reprocess_behavior": reprocess, "max_active_runs": max_active_runs}
        deadline = time.time() + wait_for_running
        while True:
            try:
                return self._req("POST", "/api/v2/backfills", body)
            except RuntimeError as e:
                if "409" not in str(e) or time.time() > deadline:
                    raise
                time.sleep(3)

    def wait_backfill(self, backfill_id: int, timeout: float = 300) -> dict:
        deadline = time.time() + timeout
        while True:
            b = self._req("GET", f"/api/v2/backfills/{backfill_id}")
            if b.get("completed_at"):
                return b
            if time.time() > deadline:
                raise TimeoutError(f"backfill {backfill_id} not completed after {timeout:.0f}s")
            time.sleep(2)

    def xcoms(self, dag_id: str, run_id: str, task_id: str, key: str | None = "return_value") -> list[dict]:
        """XCom entries of a task instance, with their values."""
        q = urllib.request.quote(run_id, safe="")
        base = f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances/{task_id}/xcomEntries"
        entries = [e for e in self._req("GET", base)["xcom_entries"] if key is None or e["key"] == key]
        return [self._req("GET", f"{base}/{urllib.request.quote(e['key'], safe='')}?deserialize=true"
                                 f"&map_index={e.get('map_index', -1)}")
                for e in entries]

"""What a trigger may send: the conf keys a DAG declares as params (its typed form). Pure Python:
the API server's guard (plugins/sting_airflow/conf_guard.py) and the DAGs' first tasks ask the
same question."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_conf_keys(conf: object, known: Iterable[str]) -> list[str]:
    """Keys of `conf` that are not declared params (a typo such as `windw_start` must not run the
    default window). A conf that is not an object is all unknown."""
    if conf in (None, {}):
        return []
    if not isinstance(conf, dict):
        return ["(conf is not an object)"]
    known = set(known)
    return sorted(k for k in conf if k not in known)


def explain(dag_id: str, unknown: list[str], known: Iterable[str]) -> str:
    known = sorted(known)
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, known, n=1)
        hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return (f"DAG {dag_id}: unknown conf key(s) {', '.join(hints)}; known: {', '.join(known) or '(none)'}. "
            "No run was created.")

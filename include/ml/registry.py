"""The model registry: versioned artifacts in the `ai-models` bucket, their rows in `ml_models`,
the promotion gate, promotion history and rollback.

    s3://ai-models/models/{model_name}/{version}/model.skops   the model (skops: no pickle)
    s3://ai-models/models/{model_name}/{version}/card.json     its model card

A version is `v{YYYYMMDD}-{data hash[:8]}` of the run's interval end: a rerun of the same
logical date over the same data rewrites the same version (the same bytes: training is seeded);
new data (late events) makes another version, and the gate decides between them.

Loading never unpickles: skops reads the file, and only types from scikit-learn, pyod and numpy
(and builtins) are trusted; a file naming anything else is refused, naming the type.

    python -m include.ml.registry list [MODEL]
    python -m include.ml.registry rollback MODEL [--to VERSION]
    python -m include.ml.registry promote MODEL VERSION
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime

from psycopg.types.json import Jsonb

BUCKET = "ai-models"
MODELS = ("anomaly_detector", "threat_classifier")
GATE_METRIC = {"anomaly_detector": "pr_auc", "threat_classifier": "macro_f1"}
TRUSTED_PREFIXES = ("sklearn.", "pyod.", "numpy.", "builtins.", "scipy.")


class UntrustedModel(ValueError):
    pass


def model_key(name: str, version: str, leaf: str = "model.skops") -> str:
    return f"models/{name}/{version}/{leaf}"


def version_for(interval_end: datetime, data_hash: str) -> str:
    return f"v{interval_end:%Y%m%d}-{data_hash[:8]}"


# ----------------------------------------------------------------------------- artifacts
# skops looks a function's module up by walking sys.modules; Airflow's deprecated-import shims warn
# on every attribute asked of them (a thousand lines in a task log): that walk runs without warnings.
def dumps(pipe) -> bytes:
    import warnings

    import skops.io as sio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sio.dumps(pipe)


def loads(data: bytes):
    import warnings

    import skops.io as sio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        untrusted = sio.get_untrusted_types(data=data)
        bad = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
        if bad:
            raise UntrustedModel(f"model file names types outside scikit-learn/pyod/numpy: {', '.join(sorted(bad)[:5])}")
        return sio.loads(data, trusted=untrusted)


def library_versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("scikit-learn", "pyod", "skops", "numpy", "scipy", "pandas")}


def code_version() -> str:
    """The git commit of this checkout when there is one, else the package's declared version."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "include"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def save(conn, s3, name: str, version: str, trained: dict, card: dict) -> dict:
    """Write the artifact and its card, record the version as a candidate (or refresh it)."""
    blob = dumps(trained["pipeline"])
    sha = hashlib.sha256(blob).hexdigest()
    card = {**card, "model_name": name, "version": version, "algorithm": trained["algorithm"], "sha256": sha,
            "format": "skops", "features": trained["features"]}
    put = s3.put_object(Bucket=BUCKET, Key=model_key(name, version), Body=blob, ContentType="application/octet-stream",
                        Metadata={"sha256": sha, "data-classification": "internal"})
    s3.put_object(Bucket=BUCKET, Key=model_key(name, version, "card.json"), ContentType="application/json",
                  Body=json.dumps(card, indent=2, sort_keys=True, default=str).encode(),
                  Metadata={"data-classification": "internal"})
    uri = f"s3://{BUCKET}/{model_key(name, version)}"
    conn.execute(
        """INSERT INTO ml_models (model_name, version, algorithm, uri, object_version, sha256, metrics, card)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (model_name, version) DO UPDATE SET algorithm = EXCLUDED.algorithm, uri = EXCLUDED.uri,
               object_version = EXCLUDED.object_version, sha256 = EXCLUDED.sha256, metrics = EXCLUDED.metrics,
               card = EXCLUDED.card, updated_at = NOW()""",
        (name, version, trained["algorithm"], uri, put.get("VersionId"), sha, Jsonb(card.get("metrics") or {}),
         Jsonb(card)))
    return {"uri": uri, "sha256": sha, "bytes": len(blob), "object_version": put.get("VersionId")}


def load(s3, row: dict):
    """The pipeline of a registry row: the pinned object version, checked against its sha256."""
    key = row["uri"].split(f"s3://{BUCKET}/", 1)[1]
    kw = {"VersionId": row["object_version"]} if row.get("object_version") else {}
    blob = s3.get_object(Bucket=BUCKET, Key=key, **kw)["Body"].read()
    if hashlib.sha256(blob).hexdigest() != row["sha256"].strip():
        raise UntrustedModel(f"{row['model_name']} {row['version']}: artifact does not match its sha256")
    return loads(blob)


# ----------------------------------------------------------------------------- registry
def promoted(conn, name: str) -> dict | None:
    return conn.execute("SELECT * FROM ml_models WHERE model_name = %s AND status = 'promoted'", (name,)).fetchone()


def get(conn, name: str, version: str) -> dict | None:
    return conn.execute("SELECT * FROM ml_models WHERE model_name = %s AND version = %s", (name, version)).fetchone()


def _lock(conn, name: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ml_models:{name}",))


def _event(conn, name: str, version: str, action: str, reason: str, details: dict | None = None) -> None:
    conn.execute("INSERT INTO ml_model_events (model_name, version, action, reason, details) VALUES (%s, %s, %s, %s, %s)",
                 (name, version, action, reason, Jsonb(details or {})))


def _set_promoted(conn, name: str, version: str) -> None:
    conn.execute("UPDATE ml_models SET status = 'retired', updated_at = NOW() WHERE model_name = %s AND status = 'promoted'"
                 " AND version <> %s", (name, version))
    conn.execute("UPDATE ml_models SET status = 'promoted', updated_at = NOW() WHERE model_name = %s AND version = %s",
                 (name, version))


def decide(name: str, candidate: dict, current: dict | None, tolerance: float,
           floors: dict[str, float] | None = None) -> tuple[bool, str]:
    """The gate: (promote?, reason). `candidate`/`current`: metrics on the same holdout."""
    key = GATE_METRIC[name]
    c = candidate.get(key)
    if c is None:
        return False, f"no {key} on the holdout (no labelled windows of both kinds): nothing shows it works"
    for k, f in (floors or {}).items():
        v = candidate.get(k)
        if v is None or v < f:
            return False, f"{k} {v} is below the floor {f:.4f}"
    if current is None:
        return True, f"{key} {c:.4f}; no version promoted before"
    cur = current.get(key)
    if cur is None:
        return True, f"{key} {c:.4f}; the promoted version could not be scored on this holdout"
    if c >= cur - tolerance:
        return True, f"{key} {c:.4f} >= promoted {cur:.4f} - tolerance {tolerance:.4f}"
    return False, f"{key} {c:.4f} < promoted {cur:.4f} - tolerance {tolerance:.4f}: worse, not promoted"


def gate(conn, name: str, version: str, candidate: dict, current_version: str | None, current: dict | None,
         tolerance: float, floors: dict[str, float] | None = None) -> dict:
    """Decide and record, under the model's lock. A candidate that is already the promoted version
    (a rerun) stays promoted when it still passes."""
    with conn.transaction():
        _lock(conn, name)
        now = promoted(conn, name)
        if (now["version"] if now else None) not in (current_version, version):
            # another run promoted a version after this one evaluated the old one: a retry
            # evaluates against the new one
            raise RuntimeError(f"{name}: the promoted version changed during the run "
                               f"({current_version} -> {now['version'] if now else None})")
        ok, reason = decide(name, candidate, current if current_version != version else None, tolerance, floors)
        details = {"candidate": candidate, "current_version": current_version, "current": current,
                   "tolerance": tolerance, "floors": floors}
        if ok:
            _set_promoted(conn, name, version)
            _event(conn, name, version, "promoted", reason, details)
        else:
            if not (now and now["version"] == version):
                conn.execute("UPDATE ml_models SET status = 'rejected', updated_at = NOW() WHERE model_name = %s"
                             " AND version = %s", (name, version))
            _event(conn, name, version, "rejected", reason, details)
    return {"promoted": ok, "reason": reason, "version": version}


def promote(conn, name: str, version: str, reason: str = "promoted by hand") -> dict:
    with conn.transaction():
        _lock(conn, name)
        if not get(conn, name, version):
            raise KeyError(f"{name} has no version {version}")
        _set_promoted(conn, name, version)
        _event(conn, name, version, "promoted", reason)
    return {"model": name, "promoted": version}


def rollback(conn, name: str, to: str | None = None) -> dict:
    """Promote the version promoted before the current one (or `to`); the current one is retired."""
    with conn.transaction():
        _lock(conn, name)
        cur = promoted(conn, name)
        if to is None:
            row = conn.execute(
                """SELECT e.version FROM ml_model_events e JOIN ml_models m USING (model_name, version)
                    WHERE e.model_name = %s AND e.action IN ('promoted', 'rolled_back') AND e.version <> %s
                    ORDER BY e.id DESC LIMIT 1""", (name, cur["version"] if cur else "")).fetchone()
            if not row:
                raise LookupError(f"{name}: no earlier promoted version to roll back to")
            to = row["version"]
        if not get(conn, name, to):
            raise KeyError(f"{name} has no version {to}")
        _set_promoted(conn, name, to)
        _event(conn, name, to, "rolled_back", f"rolled back from {cur['version'] if cur else 'none'}",
               {"from": cur["version"] if cur else None})
    return {"model": name, "from": cur["version"] if cur else None, "to": to}


def listing(conn, name: str | None = None) -> list[dict]:
    return conn.execute(
        """SELECT model_name, version, algorithm, status, metrics, created_at FROM ml_models
            WHERE %s::text IS NULL OR model_name = %s ORDER BY model_name, created_at DESC""", (name, name)).fetchall()


def main(argv: list[str] | None = None) -> int:
    from include.db import connect

    ap = argparse.ArgumentParser(prog="python -m include.ml.registry", description="the model registry")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list")
    ls.add_argument("model", nargs="?")
    rb = sub.add_parser("rollback", help="promote the previously promoted version again")
    rb.add_argument("model", choices=MODELS)
    rb.add_argument("--to", help="a specific version")
    pr = sub.add_parser("promote")
    pr.add_argument("model", choices=MODELS)
    pr.add_argument("version")
    a = ap.parse_args(argv)
    with connect(autocommit=True) as conn:
        try:
            if a.cmd == "list":
                for r in listing(conn, a.model):
                    m = r["metrics"] or {}
                    key = GATE_METRIC.get(r["model_name"])
                    print(f"{r['model_name']:18} {r['version']:22} {r['status']:9} {r['algorithm']:24} "
                          f"{key}={m.get(key)} {r['created_at']:%Y-%m-%d %H:%M}")
            elif a.cmd == "rollback":
                print(json.dumps(rollback(conn, a.model, a.to)))
            else:
                print(json.dumps(promote(conn, a.model, a.version)))
        except (LookupError, KeyError) as e:
            print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

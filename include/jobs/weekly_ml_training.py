"""weekly_ml_training (`0 3 * * 0`, the seed's ETL job): window features, an anomaly detector and
a threat classifier trained, gated and versioned; a drift report.

The run with logical date X owns the week [X-7d, X) for its drift report and trains on the
`training_days` before X (default 28). Its dataset is kept at
ai-models/datasets/weekly_ml_training/{X:%Y-%m-%d}/features.parquet (with its data hash), so
every step of a run, and a rerun, reads the same rows. Versions are `v{X:%Y%m%d}-{hash[:8]}`
(include/ml/registry.py): a rerun over the same data rewrites the same version.

Steps:
- prepare_training_data: events -> (source, hour) windows -> features (include/ml/features.py),
  joined with the labels known for those windows (`ml_labels`), the rule's threat level kept as
  a baseline.
- train_anomaly_detector: IsolationForest and ECOD compared (include/ml/models.py), the best on
  validation saved (skops) with its model card, then gated against the promoted version on the
  same holdout: promoted only if no worse than it by more than `tolerance`.
- update_threat_classifier: the same for the classifier of the threat kind.
- drift_report: the week's features against the training window's, per feature (PSI, KS).
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

from include.jobs.base import Job, JobContext, Param, Step

BUCKET = "ai-models"


def dataset_key(ctx: JobContext) -> str:
    return f"datasets/weekly_ml_training/{ctx.interval.end:%Y-%m-%d}/features.parquet"


def prepare_training_data(ctx: JobContext) -> dict:
    """The training window's events as labelled (source, hour) feature rows, kept in S3."""
    import pandas as pd

    from include.ml import features as F

    end = ctx.interval.end
    start = end - timedelta(days=int(ctx.params["training_days"]))
    with ctx.clients.db() as conn:
        events = F.fetch_events(conn, start, end)
        labels = pd.DataFrame(conn.execute(
            "SELECT host(source_ip) AS source_ip, window_start, label FROM ml_labels"
            " WHERE window_start >= %s AND window_start < %s", (start, end)).fetchall(),
            columns=["source_ip", "window_start", "label"])
    ctx.log.info("prepare_training_data: %d events of [%s, %s)", len(events), start.isoformat(), end.isoformat())
    frame = F.hourly_windows(events)
    if not events.empty:
        ev = events.assign(window_start=events["created_at"].map(lambda t: t.replace(minute=0, second=0, microsecond=0)))
        rule = ev.groupby(["source_ip", "window_start"])["threat_level"].max().rename("rule_level").reset_index()
        frame = frame.merge(rule, on=["source_ip", "window_start"], how="left")
    else:
        frame["rule_level"] = []
    frame = frame.merge(labels, on=["source_ip", "window_start"], how="left") if not frame.empty else \
        frame.assign(label=[])
    h = F.data_hash(frame)
    buf = io.BytesIO()
    frame.assign(window_start=pd.to_datetime(frame["window_start"], utc=True)).to_parquet(buf, index=False)
    ctx.clients.s3.put_object(Bucket=BUCKET, Key=dataset_key(ctx), Body=buf.getvalue(),
                              ContentType="application/vnd.apache.parquet",
                              Metadata={"sha256-features": h, "data-classification": "confidential"})
    hours = frame["window_start"].nunique() if len(frame) else 0
    return {"dataset": f"s3://{BUCKET}/{dataset_key(ctx)}", "data_hash": h, "events": int(len(events)),
            "windows": int(len(frame)), "labelled": int(frame["label"].notna().sum()) if len(frame) else 0,
            "hours": int(hours), "training_start": start.isoformat(), "training_end": end.isoformat()}


def _dataset(ctx: JobContext):
    import pandas as pd

    body = ctx.clients.s3.get_object(Bucket=BUCKET, Key=dataset_key(ctx))["Body"].read()
    frame = pd.read_parquet(io.BytesIO(body))
    frame["window_start"] = frame["window_start"].map(lambda t: t.to_pydatetime())
    return frame


def _train_and_gate(ctx: JobContext, name: str) -> dict:
    from include.ml import models, registry

    prep = ctx.results.get("prepare_training_data") or {}
    frame = _dataset(ctx)
    if len(frame) == 0:
        return {"skipped": "no events in the training window"}
    parts = models.split_by_time(frame)
    trained = models.train_detector(parts) if name == "anomaly_detector" else models.train_classifier(parts)
    version = registry.version_for(ctx.interval.end, prep.get("data_hash") or "nohash")
    b = parts["bounds"].iloc[0]
    card = {
        "metrics": trained["metrics"], "comparison": trained["comparison"],
        "training_window": {"start": prep.get("training_start"), "end": prep.get("training_end"),
                            "train_until": str(b["train_end"]), "validation_until": str(b["validation_end"])},
        "data_hash": prep.get("data_hash"), "dataset": prep.get("dataset"), "windows": prep.get("windows"),
        "labelled_windows": prep.get("labelled"), "code_version": registry.code_version(),
        "libraries": registry.library_versions(), "trained_by": ctx.run_id,
        "gate": {"metric": registry.GATE_METRIC[name], "tolerance": float(ctx.params["tolerance"])},
    }
    metrics = dict(trained["metrics"])
    if name == "anomaly_detector":
        card["calibration"] = trained["calibration"]
        # a public benchmark as a sanity check: the same code must still find Shuttle's anomalies
        card["sanity"] = models.sanity_check()
        metrics["sanity_roc_auc"] = card["sanity"][trained["algorithm"]]["roc_auc"]
    else:
        card["classes"] = trained["classes"]
    with ctx.clients.db() as conn:
        cur_row = registry.promoted(conn, name)
        current = None
        if cur_row and cur_row["version"] != version:
            try:  # the promoted version, scored on this run's holdout: the same test for both
                current = models.evaluate_pipeline(name, registry.load(ctx.clients.s3, cur_row), cur_row["card"],
                                                   parts["holdout"])
            except (ValueError, KeyError) as e:
                ctx.log.warning("%s: promoted %s not comparable on this holdout: %s", name, cur_row["version"], e)
                current = {}
        saved = registry.save(conn, ctx.clients.s3, name, version, trained, card)
        floors = {"roc_auc": float(ctx.params["min_roc_auc"]), "sanity_roc_auc": 0.9} \
            if name == "anomaly_detector" else None
        decision = registry.gate(conn, name, version, metrics, cur_row["version"] if cur_row else None,
                                 current, float(ctx.params["tolerance"]), floors)
    m = trained["metrics"]
    key = registry.GATE_METRIC[name]
    ctx.log.info("%s %s (%s): %s %s; %s", name, version, trained["algorithm"], key, m.get(key), decision["reason"])
    return {"version": version, "algorithm": trained["algorithm"], key: m.get(key),
            **({"roc_auc": m.get("roc_auc")} if name == "anomaly_detector" else {}),
            "promoted": decision["promoted"], "reason": decision["reason"], "model": saved["uri"]}


def train_anomaly_detector(ctx: JobContext) -> dict:
    """IsolationForest vs ECOD on the training hours; the best on validation, gated on the holdout."""
    return _train_and_gate(ctx, "anomaly_detector")


def update_threat_classifier(ctx: JobContext) -> dict:
    """The threat-kind classifier on the labelled training hours, gated on the holdout."""
    return _train_and_gate(ctx, "threat_classifier")


def drift_report(ctx: JobContext) -> dict:
    """This week's window features against the training window before it."""
    from include.ml import drift
    from include.ml.features import FEATURES

    frame = _dataset(ctx)
    week = ctx.interval.end - timedelta(days=7)
    cur = frame[frame["window_start"] >= week] if len(frame) else frame
    ref = frame[frame["window_start"] < week] if len(frame) else frame
    rep = drift.report(ref, cur, FEATURES)
    rep.update(week_start=week.isoformat(), week_end=ctx.interval.end.isoformat())
    key = f"reports/drift/{ctx.interval.end:%Y-%m-%d}/drift.json"
    ctx.clients.s3.put_object(Bucket=BUCKET, Key=key, ContentType="application/json",
                              Body=json.dumps(rep, indent=2, sort_keys=True).encode(),
                              Metadata={"data-classification": "internal"})
    return {"report": f"s3://{BUCKET}/{key}", "drifted": rep["drifted"], "current_windows": rep["current_windows"],
            "reference_windows": rep["reference_windows"]}


JOB = Job(
    name="weekly_ml_training",
    schedule="0 3 * * 0",
    description="Window features of honeypot events; an anomaly detector (IsolationForest vs ECOD) and a threat "
                "classifier trained, evaluated against baselines on a time split, versioned in ai-models (skops, "
                "model card) and promoted only when no worse than the promoted version; a drift report.",
    steps=(
        Step("prepare_training_data", prepare_training_data, "features of (source, hour) windows, labels, data hash",
             timeout=timedelta(minutes=30), reads=("table:events", "table:ml_labels")),
        Step("train_anomaly_detector", train_anomaly_detector, "detectors compared, the best versioned and gated",
             timeout=timedelta(minutes=30), reads=("prepare_training_data.dataset",)),
        Step("update_threat_classifier", update_threat_classifier, "the threat-kind classifier versioned and gated",
             timeout=timedelta(minutes=30), reads=("prepare_training_data.dataset",)),
        Step("drift_report", drift_report, "this week's features against the training window's (PSI, KS)",
             trigger_rule="all_done", reads=("prepare_training_data.dataset",)),
    ),
    params={
        "training_days": Param(28, "integer", "days of events before the logical date to train on",
                               {"minimum": 1, "maximum": 365}),
        "tolerance": Param(0.01, "number", "a new version is promoted when its gate metric (detector PR-AUC, "
                           "classifier macro-F1) is at least the promoted version's minus this, on the same holdout",
                           {"minimum": 0, "maximum": 1}),
        "min_roc_auc": Param(0.7, "number", "a detector below this ROC-AUC on the holdout is never promoted",
                             {"minimum": 0, "maximum": 1}),
    },
    default_span=timedelta(days=7),
    tags=("ml", "security"),
)

"""Training and evaluation: an unsupervised anomaly detector and a supervised threat classifier
over window features (include/ml/features.py), compared with baselines on the same time split.

Split by time (no window of the future in training): the first 60% of the period's hours train,
the next 20% choose among the candidate detectors (validation), the last 20% are the holdout on
which every number reported and the promotion gate are computed.

Detectors (unsupervised: they never see a label; published benchmarks find no detector dominant
on tabular data, so a few are compared and the best on validation kept): scikit-learn's
IsolationForest and pyod's ECOD (parameter-free, empirical CDFs). Counts are log1p-transformed
and standardised first. A detector's raw score is calibrated to [0, 1] by the training scores'
quantiles, which is what the event pipeline's threat level adds (up to +2).

Classifier: scikit-learn's HistGradientBoostingClassifier over the labelled windows of the
training hours, per-class precision and recall on the holdout.

Baselines on the same holdout: `volume` (events in the window: "more is worse") and `rule` (the
highest threat level the event pipeline's rule gave the window's events) for detection; a hand
rule from the window's dominant activity for classification.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.ml.features import FEATURES, matrix

SEED = 42
SPLIT = (0.6, 0.8)  # train | validation | holdout, by hour


def split_by_time(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    hours = np.sort(frame["window_start"].unique())
    if len(hours) < 5:
        raise ValueError(f"{len(hours)} hours of data: a time split needs at least 5")
    a, b = hours[int(len(hours) * SPLIT[0])], hours[int(len(hours) * SPLIT[1])]
    w = frame["window_start"]
    return {"train": frame[w < a], "validation": frame[(w >= a) & (w < b)], "holdout": frame[w >= b],
            "bounds": pd.DataFrame({"train_end": [a], "validation_end": [b]})}


def _pipeline(model):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return Pipeline([("log1p", FunctionTransformer(np.log1p)), ("scale", StandardScaler()), ("model", model)])


def detector_candidates(seed: int = SEED) -> dict:
    from pyod.models.ecod import ECOD
    from sklearn.ensemble import IsolationForest

    return {"isolation_forest": IsolationForest(n_estimators=200, random_state=seed),
            "ecod": ECOD()}


def raw_scores(pipe, X: np.ndarray) -> np.ndarray:
    """Higher is more anomalous, whatever the detector (IsolationForest's sign is the other way)."""
    s = pipe.decision_function(np.clip(X, 0, None))
    return -s if type(pipe[-1]).__name__ == "IsolationForest" else s


def calibrate(train_scores: np.ndarray) -> list[float]:
    return [float(x) for x in np.quantile(train_scores, np.linspace(0, 1, 101))]


def to_unit(raw: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """A raw score as the share of training windows scoring below it, in [0, 1]."""
    return np.interp(raw, quantiles, np.linspace(0, 1, len(quantiles)))


def detection_metrics(y_attack: np.ndarray, score: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(set(y_attack.tolist())) < 2:
        return {"roc_auc": None, "pr_auc": None, "n": int(len(y_attack)), "attacks": int(y_attack.sum())}
    return {"roc_auc": round(float(roc_auc_score(y_attack, score)), 4),
            "pr_auc": round(float(average_precision_score(y_attack, score)), 4),
            "n": int(len(y_attack)), "attacks": int(y_attack.sum())}


def _attack(frame: pd.DataFrame) -> np.ndarray:
    return (frame["label"] != "benign").to_numpy()


def train_detector(parts: dict[str, pd.DataFrame], features: list[str] | None = None, seed: int = SEED) -> dict:
    """Fit every candidate on the training hours (labels unused), pick the best PR-AUC on the
    validation hours' labelled windows, report all on the holdout. Returns the chosen pipeline,
    its calibration and the comparison table."""
    features = features or FEATURES
    Xtr = matrix(parts["train"], features)
    val = parts["validation"][parts["validation"]["label"].notna()]
    hold = parts["holdout"][parts["holdout"]["label"].notna()]
    table, fitted = {}, {}
    for name, est in detector_candidates(seed).items():
        pipe = _pipeline(est).fit(np.clip(Xtr, 0, None))
        fitted[name] = pipe
        table[name] = {"validation": detection_metrics(_attack(val), raw_scores(pipe, matrix(val, features))),
                       "holdout": detection_metrics(_attack(hold), raw_scores(pipe, matrix(hold, features)))}
    for name, col in (("baseline_volume", "events"), ("baseline_rule", "rule_level")):
        table[name] = {"validation": detection_metrics(_attack(val), val[col].to_numpy(dtype=float)),
                       "holdout": detection_metrics(_attack(hold), hold[col].to_numpy(dtype=float))}
    best = max(fitted, key=lambda n: table[n]["validation"]["pr_auc"] or -1)
    pipe = fitted[best]
    return {"algorithm": best, "pipeline": pipe, "features": features,
            "calibration": calibrate(raw_scores(pipe, Xtr)), "metrics": table[best]["holdout"], "comparison": table}


def rule_class(frame: pd.DataFrame) -> np.ndarray:
    """The classification baseline: a window's class from its dominant activity."""
    out = []
    for r in frame.itertuples():
        if r.downloads or r.commands:
            out.append("malware_drop")
        elif r.http_exploit:
            out.append("web_exploit")
        elif r.scans >= 3 or r.ports_probed >= 20:
            out.append("scan")
        elif r.login_failed >= 5:
            out.append("brute_force")
        else:
            out.append("benign")
    return np.array(out)


def classification_metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import classification_report

    rep = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    per = {k: {"precision": round(v["precision"], 4), "recall": round(v["recall"], 4), "support": int(v["support"])}
           for k, v in rep.items() if isinstance(v, dict) and k not in ("macro avg", "weighted avg")}
    return {"macro_f1": round(rep["macro avg"]["f1-score"], 4), "accuracy": round(rep.get("accuracy", 0.0), 4),
            "per_class": per, "n": int(len(y_true))}


def train_classifier(parts: dict[str, pd.DataFrame], features: list[str] | None = None, seed: int = SEED) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = features or FEATURES
    train = pd.concat([parts["train"], parts["validation"]])
    train = train[train["label"].notna()]
    hold = parts["holdout"][parts["holdout"]["label"].notna()]
    if train["label"].nunique() < 2:
        raise ValueError("fewer than two classes among the labelled training windows")
    pipe = _pipeline(HistGradientBoostingClassifier(random_state=seed, max_iter=200, class_weight="balanced"))
    pipe.fit(np.clip(matrix(train, features), 0, None), train["label"].to_numpy())
    pred = pipe.predict(np.clip(matrix(hold, features), 0, None)) if len(hold) else np.array([])
    metrics = classification_metrics(hold["label"].to_numpy(), pred) if len(hold) else {"macro_f1": None, "n": 0}
    base = classification_metrics(hold["label"].to_numpy(), rule_class(hold)) if len(hold) else {"macro_f1": None}
    return {"algorithm": "hist_gradient_boosting", "pipeline": pipe, "features": features, "metrics": metrics,
            "comparison": {"hist_gradient_boosting": metrics, "baseline_rule": base},
            "classes": sorted(train["label"].unique().tolist())}


def evaluate_pipeline(kind: str, pipe, card: dict, hold: pd.DataFrame) -> dict:
    """A stored model (its own feature list) on this run's holdout: the gate's comparison."""
    feats = card.get("features") or FEATURES
    missing = [f for f in feats if f not in hold.columns]
    if missing:
        raise ValueError(f"the holdout lacks features {missing}")
    hold = hold[hold["label"].notna()]
    X = matrix(hold, feats)
    if kind == "anomaly_detector":
        return detection_metrics(_attack(hold), raw_scores(pipe, X))
    return classification_metrics(hold["label"].to_numpy(), pipe.predict(np.clip(X, 0, None)))


def shuttle() -> tuple[np.ndarray, np.ndarray]:
    """ODDS Shuttle (UCI Statlog, 49,097 rows, 7% anomalies) as the `river` wheel ships it; read
    from the installed file, without importing river."""
    from importlib.metadata import distribution

    path = distribution("river").locate_file("river/datasets/shuttle.csv.gz")
    df = pd.read_csv(path)
    return df.drop(columns=["anomaly"]).to_numpy(dtype="float64"), df["anomaly"].to_numpy(dtype=int)


def sanity_check(seed: int = SEED, sample: int | None = 20_000) -> dict:
    """The detector candidates on a public benchmark (Shuttle): a check that the library and the
    code around it still detect what they should (published IsolationForest ROC-AUC there: ~0.99).
    Fit on a random 60%, scored on the rest."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = shuttle()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))[: sample or len(y)]
    cut = int(len(idx) * 0.6)
    tr, te = idx[:cut], idx[cut:]
    out = {}
    for name, est in detector_candidates(seed).items():
        pipe = Pipeline([("scale", StandardScaler()), ("model", est)]).fit(X[tr])
        s = pipe.decision_function(X[te])
        out[name] = detection_metrics(y[te], -s if name == "isolation_forest" else s)
    return {"dataset": "ODDS Shuttle (river 0.26.1)", "rows": int(len(idx)), **out}

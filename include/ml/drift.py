"""Drift: this week's window features against the training window's, per feature.

PSI (population stability index) over ten quantile bins of the reference (0.1-0.25: moderate,
above 0.25: significant, the usual reading) and the two-sample Kolmogorov-Smirnov statistic and
p-value (scipy). A feature drifts when its PSI exceeds 0.25; the report lists all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant feature: drift is any change of that value
        same = np.mean(current == edges[0])
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        r, c = np.array([1.0, 1e-6]), np.array([max(same, 1e-6), max(1 - same, 1e-6)])
    else:
        edges[0], edges[-1] = -np.inf, np.inf
        r = np.histogram(reference, edges)[0] / len(reference)
        c = np.histogram(current, edges)[0] / len(current)
        r, c = np.clip(r, 1e-6, None), np.clip(c, 1e-6, None)
    return float(np.sum((c - r) * np.log(c / r)))


def report(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> dict:
    from scipy.stats import ks_2samp

    rows = {}
    for f in features:
        a, b = reference[f].to_numpy(dtype=float), current[f].to_numpy(dtype=float)
        ks = ks_2samp(a, b) if len(a) and len(b) else None
        p = psi(a, b)
        rows[f] = {"psi": None if np.isnan(p) else round(p, 4),
                   "ks": round(float(ks.statistic), 4) if ks else None,
                   "ks_pvalue": float(f"{ks.pvalue:.3g}") if ks else None,
                   "reference_mean": round(float(a.mean()), 4) if len(a) else None,
                   "current_mean": round(float(b.mean()), 4) if len(b) else None,
                   "level": ("significant" if p > PSI_SIGNIFICANT else "moderate" if p > PSI_MODERATE else "stable")
                   if not np.isnan(p) else "no data"}
    drifted = sorted(f for f, r in rows.items() if r["level"] == "significant")
    return {"reference_windows": int(len(reference)), "current_windows": int(len(current)),
            "drifted": drifted, "features": rows}

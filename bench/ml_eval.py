"""The evaluation table of weekly_ml_training's models against their baselines, on the same
held-out time split (the last 20% of the hours), and the public sanity benchmark.

Data: the labelled campaigns (include/ml/campaigns.py: scripted attacks against benign
background, labels known by construction), 28 days, parsed by the event pipeline's parser and
scored by its rule, the same window features the job reads from `events`.

    python -m bench.ml_eval [--days 28] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta


def main() -> int:
    from include.ml import campaigns, models

    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    start = datetime(2026, 1, 4, tzinfo=UTC) - timedelta(days=a.days)
    t0 = time.perf_counter()
    lab = campaigns.generate(start, days=a.days, seed=a.seed)
    frame = campaigns.offline_frame(lab)
    t1 = time.perf_counter()
    parts = models.split_by_time(frame)
    det = models.train_detector(parts)
    t2 = time.perf_counter()
    clf = models.train_classifier(parts)
    t3 = time.perf_counter()
    counts = frame["label"].value_counts().to_dict()
    print(f"labelled campaigns: {a.days} days, {len(lab.messages):,} events, {len(frame):,} (source, hour) windows "
          f"{counts}; features {t1 - t0:.1f} s, detectors {t2 - t1:.1f} s, classifier {t3 - t2:.1f} s")
    print(f"holdout: the last 20% of the hours ({len(parts['holdout']):,} windows, "
          f"{int((parts['holdout']['label'] != 'benign').sum())} attack windows)\n")
    print("| detector | validation PR-AUC | holdout ROC-AUC | holdout PR-AUC |")
    print("|---|---|---|---|")
    for name, m in det["comparison"].items():
        mark = " (chosen)" if name == det["algorithm"] else ""
        print(f"| {name}{mark} | {m['validation']['pr_auc']:.3f} | {m['holdout']['roc_auc']:.3f} | "
              f"{m['holdout']['pr_auc']:.3f} |")
    print("\n| classifier | macro-F1 | accuracy | " + " | ".join(f"{c} P/R" for c in campaigns.CLASSES) + " |")
    print("|---|---|---|" + "---|" * len(campaigns.CLASSES))
    for name, m in clf["comparison"].items():
        pc = m["per_class"]
        cells = " | ".join(f"{pc[c]['precision']:.2f}/{pc[c]['recall']:.2f}" if c in pc else "-" for c in campaigns.CLASSES)
        print(f"| {name} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} | {cells} |")
    t4 = time.perf_counter()
    s = models.sanity_check(sample=None)
    print(f"\nsanity, {s['dataset']}, {s['rows']:,} rows, 60/40 random split ({time.perf_counter() - t4:.1f} s):")
    for name in models.detector_candidates():
        print(f"  {name}: ROC-AUC {s[name]['roc_auc']:.4f}, PR-AUC {s[name]['pr_auc']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The promoted anomaly detector in the event pipeline: each new event is scored by its source's
activity over the trailing hour (events already stored and those of the batch), with the same
feature code as training, and the score (in [0, 1], calibrated on the training windows) adds up to
+2 to the event's threat level. `events.scored_by` records the version that scored it.

The scorer is loaded once per process and version (the registry row's sha256 pins the bytes).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import numpy as np
import pandas as pd

from include.ml import features as F
from include.ml import models, registry

NAME = "anomaly_detector"
_CACHE: dict[tuple[str, str], Scorer] = {}


class Scorer:
    def __init__(self, version: str, pipe, card: dict):
        self.version, self.pipe, self.card = version, pipe, card
        self.label = f"{NAME}:{version}"
        self.features = card.get("features") or F.FEATURES
        self.calibration = card["calibration"]

    def score_windows(self, rows: list[dict]) -> np.ndarray:
        X = pd.DataFrame(rows, columns=self.features).to_numpy(dtype="float64")
        return models.to_unit(models.raw_scores(self.pipe, X), self.calibration)

    def score_batch(self, conn, events: list) -> dict:
        """event id -> score. One query for the stored events of the batch's sources."""
        if not events:
            return {}
        by_src: dict[str, list] = defaultdict(list)
        for e in events:
            by_src[e.source_ip].append(e)
        lo = min(e.created_at for e in events) - F.WINDOW
        hi = max(e.created_at for e in events) + timedelta(microseconds=1)
        stored = F.fetch_events(conn, lo, hi, sources=list(by_src))
        groups, rows = [], []
        stored_by_src = {str(k): g for k, g in stored.groupby("source_ip")} if len(stored) else {}
        for src, evs in by_src.items():
            batch = pd.DataFrame([F.event_row(e) for e in evs], columns=F.COLUMNS)
            mine = pd.concat([stored_by_src[src], batch], ignore_index=True) if src in stored_by_src else batch
            # one window per (source, clock hour of the batch): the trailing hour at its last event
            per_hour: dict = defaultdict(list)
            for e in evs:
                per_hour[e.hour].append(e)
            for hour_events in per_hour.values():
                at = max(e.created_at for e in hour_events)
                rows.append(F.trailing_window(mine, at))
                groups.append(hour_events)
        scores = self.score_windows(rows)
        return {e.id: round(float(s), 4) for evs, s in zip(groups, scores, strict=True) for e in evs}


def promoted_scorer(conn, s3) -> Scorer | None:
    """The promoted detector, or None when no version is promoted."""
    row = registry.promoted(conn, NAME)
    if not row:
        return None
    key = (row["version"], row["sha256"])
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Scorer(row["version"], registry.load(s3, row), row["card"])
    return _CACHE[key]

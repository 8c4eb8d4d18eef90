"""The threat level of an event (0-10), a documented and tested rule:

    level = base(kind, outcome)
          + round(4 * best IOC strength)          strength = the indicator's score (confidence if unscored)
          + repetition(source)                    +1 from 10 events by the source in the past hour, +2 from 100
          + round(2 * anomaly score)              the weekly model's score in [0, 1], when a model is promoted
    capped at 10.

base: port_scan 2, http_request 2 (4 for a request naming a known exploit path), login_attempt 3
(failed) or 6 (success: the attacker is in), command 5, malware_download 7.

An alert is raised when the level reaches the threshold (default 7): severity critical from 9,
high from 7, medium from 5, low below.
"""

from __future__ import annotations

from typing import Protocol

from include.security.events import Event

BASE = {"port_scan": 2, "http_request": 2, "login_attempt": 3, "command": 5, "malware_download": 7}
EXPLOIT_PATHS = ("/cgi-bin/", "/.env", "/wp-login.php", "/phpmyadmin", "/boaform", "/shell", "/hnap1",
                 "/vendor/phpunit", "/actuator", "/.git/")

class AnomalyScorer(Protocol):
    """The hook for the weekly ML job's promoted detector (include/ml/scorer.py)."""

    label: str  # what `events.scored_by` records, e.g. "anomaly_detector:v20261122-1a2b3c4d"

    def score_batch(self, conn, events: list[Event]) -> dict: ...  # event id -> score in [0, 1]


def base_level(ev: Event) -> int:
    if ev.kind == "login_attempt" and ev.ecs["event"].get("outcome") == "success":
        return 6
    if ev.kind == "http_request":
        path = ev.ecs.get("url", {}).get("original", "").lower()
        return 4 if any(p in path for p in EXPLOIT_PATHS) else 2
    return BASE[ev.kind]


REPETITION_CAP = 100  # counts at or above this all mean "+2"


def repetition(count_past_hour: int) -> int:
    return 2 if count_past_hour >= REPETITION_CAP else 1 if count_past_hour >= 10 else 0


def threat_level(ev: Event, ioc_hits: list[dict], count_past_hour: int, anomaly: float | None = None) -> int:
    level = base_level(ev)
    if ioc_hits:
        strength = max(float(h["score"] if h.get("score") is not None else h.get("confidence") or 0.0) for h in ioc_hits)
        level += round(4 * min(max(strength, 0.0), 1.0))
    level += repetition(count_past_hour)
    if anomaly is not None:
        level += round(2 * min(max(anomaly, 0.0), 1.0))
    return min(level, 10)


def severity(level: int) -> str:
    return "critical" if level >= 9 else "high" if level >= 7 else "medium" if level >= 5 else "low"


def alert_type(ev: Event, ioc_hits: list[dict]) -> str:
    if ioc_hits:
        return "ioc_match"
    return {"login_attempt": "brute_force", "command": "intrusion", "malware_download": "malware",
            "http_request": "web_attack", "port_scan": "reconnaissance"}[ev.kind]

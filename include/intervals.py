"""The interval model shared by honey combs and scheduled jobs: which span of time a run owns.

A run's logical date X names the interval [the schedule's last tick before X, X). A scheduled run,
a backfill run, `airflow dags test DAG X` and a UI/REST trigger with logical date X therefore own
the same interval; a trigger without a logical date (REST `logical_date: null`) uses its run-after
time. Explicit `interval_start`/`interval_end` parameters override both. Plain Python: no Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

_TS = "%Y%m%dT%H%M%SZ"


class IntervalError(ValueError):
    pass


def to_utc(dt: datetime | str | None) -> datetime | None:
    """An aware UTC datetime (whole seconds) from a datetime or an ISO-8601 string (UTC if naive)."""
    if dt is None or dt == "":
        return None
    if isinstance(dt, str):
        try:
            dt = datetime.fromisoformat(dt.replace("Z", "+00:00"))
        except ValueError:
            raise IntervalError(f"'{dt}' is not an ISO-8601 date-time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return datetime.fromtimestamp(dt.timestamp(), tz=UTC).replace(microsecond=0)


def previous_tick(cron: str, before: datetime) -> datetime:
    """The schedule's last tick strictly before `before`."""
    from croniter import croniter

    return to_utc(croniter(cron, to_utc(before)).get_prev(datetime))


def window_for_date(cron: str, date: datetime) -> tuple[datetime, datetime]:
    """The one interval a date names: [the schedule's last tick before it, the date). For a date on
    the schedule (every scheduled and backfill run) that is the schedule interval ending there."""
    end = to_utc(date)
    return previous_tick(cron, end), end


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime  # exclusive

    def __post_init__(self):
        if self.start >= self.end:
            raise IntervalError(f"empty interval: start {self.start.isoformat()} is not before end {self.end.isoformat()}")

    @property
    def tag(self) -> str:
        return f"{self.start:{_TS}}__{self.end:{_TS}}"

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, d: dict) -> Interval:
        return cls(to_utc(d["start"]), to_utc(d["end"]))

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def resolve_interval(
    cron: str | None,
    *,
    logical_date: datetime | str | None = None,
    run_after: datetime | str | None = None,
    interval_start: datetime | str | None = None,
    interval_end: datetime | str | None = None,
) -> Interval:
    """The run's interval, the same on every trigger path (see the module docstring)."""
    s, e = to_utc(interval_start), to_utc(interval_end)
    if s or e:
        if not (s and e):
            raise IntervalError("give both interval_start and interval_end, or neither")
        return Interval(s, e)
    x = to_utc(logical_date) or to_utc(run_after) or to_utc(datetime.now(UTC))
    if not cron:
        raise IntervalError("no interval params and no schedule to derive the interval from")
    return Interval(*window_for_date(cron, x))

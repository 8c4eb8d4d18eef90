"""Which rows a comb run takes (its window, on the shared interval model of `include.intervals`) and
where its output goes (deterministic keys)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from include.honeycomb.config import CombDefinition
from include.intervals import _TS, IntervalError, to_utc, window_for_date
from include.settings import get_settings

_TAG_RE = re.compile(r"__(\d{8}T\d{6}Z)__(\d{8}T\d{6}Z)\.parquet$")

WindowError = IntervalError  # one error type for every interval a run derives


@dataclass(frozen=True)
class RunWindow:
    mode: str  # "incremental" | "snapshot"
    start: datetime | None  # None for snapshots
    end: datetime  # exclusive end; for snapshots the snapshot time

    @property
    def tag(self) -> str:
        if self.mode == "incremental":
            return f"{self.start:{_TS}}__{self.end:{_TS}}"
        return f"snapshot__{self.end:{_TS}}"

    @property
    def partition_time(self) -> datetime:
        return self.start or self.end

    def read_from(self, lookback: timedelta) -> datetime:
        """Lower bound actually read: the window start minus the lookback (late commits)."""
        assert self.start is not None
        return self.start - lookback

    @classmethod
    def from_dict(cls, d: dict) -> RunWindow:
        return cls(d["mode"], to_utc(d["start"]), to_utc(d["end"]))

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat(),
            "tag": self.tag,
        }


def resolve_window(
    comb: CombDefinition,
    *,
    mode: str | None = None,
    logical_date: datetime | str | None = None,
    run_after: datetime | None = None,
    window_start: str | datetime | None = None,
    window_end: str | datetime | None = None,
) -> RunWindow:
    """The run's window, the same on every trigger path.

    incremental: explicit window_start/window_end params win; else the run's logical date X (the
    run's trigger time when it has none: a REST trigger with `logical_date: null`) names
    [last schedule tick before X, X). A scheduled run, a backfill run, `airflow dags test DAG X`,
    and a UI/REST trigger with logical date X therefore all read the same rows.
    snapshot: the whole source as of window_end, else X.
    """
    mode = mode or comb.configuration.extraction.mode
    ws, we = to_utc(window_start), to_utc(window_end)
    x = to_utc(logical_date) or to_utc(run_after) or to_utc(datetime.now(UTC))
    if mode == "snapshot":
        return RunWindow("snapshot", None, we or x)
    if mode != "incremental":
        raise WindowError(f"unknown extraction mode '{mode}'")
    if ws or we:
        if not (ws and we):
            raise WindowError("give both window_start and window_end, or neither")
        start, end = ws, we
    else:
        cron = comb.configuration.extraction.schedule
        if not cron:
            raise WindowError("no window params and no schedule to derive the window from")
        start, end = window_for_date(cron, x)
    if start >= end:
        raise WindowError(f"empty window: start {start.isoformat()} is not before end {end.isoformat()}")
    return RunWindow("incremental", start, end)


@dataclass(frozen=True)
class OutputLocation:
    bucket: str
    prefix: str
    comb: str

    @classmethod
    def for_comb(cls, comb: CombDefinition, execution_type: str = "continuous_flow") -> OutputLocation:
        """continuous_flow outputs form one dataset per comb; snapshot_generation runs feed their
        own jars, so their objects live apart and never count as delivered to the flow."""
        out = comb.configuration.output
        prefix = (out.prefix or comb.name).strip("/")
        if execution_type == "snapshot_generation":
            prefix += "/snapshot_generation"
        return cls(out.bucket or get_settings().comb_output_bucket, prefix, comb.name)

    def partition_prefix(self, t: datetime) -> str:
        return f"{self.prefix}/year={t:%Y}/month={t:%m}/"

    def final_key(self, window: RunWindow, suffix: str = "") -> str:
        """`suffix` (checkpointed combs: a hash of the run id) keeps two runs of one interval apart:
        their data differ (each resumes where the other stopped)."""
        return f"{self.partition_prefix(window.partition_time)}{self.comb}__{window.tag}{suffix}.parquet"

    def staging_key(self, window: RunWindow, suffix: str = "") -> str:
        return f"_staging/{self.prefix}/{self.comb}__{window.tag}{suffix}.parquet"

    def null_cursor_key(self) -> str:
        """The object holding the rows whose incremental column is NULL (rewritten by each run)."""
        return f"{self.prefix}/null_cursor/{self.comb}__null_cursor.parquet"

    def months_between(self, start: datetime, end: datetime) -> list[str]:
        out, y, m = [], start.year, start.month
        while (y, m) <= (end.year, end.month):
            out.append(f"{self.prefix}/year={y:04d}/month={m:02d}/")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def parse_interval_from_key(key: str) -> tuple[datetime, datetime] | None:
    m = _TAG_RE.search(key)
    if not m:
        return None
    f = lambda s: datetime.strptime(s, _TS).replace(tzinfo=UTC)  # noqa: E731
    return f(m.group(1)), f(m.group(2))

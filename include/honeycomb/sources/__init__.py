"""Checkpointed comb sources (api, file_system, stream). Each reads from a checkpoint (or, for a
snapshot, from the beginning) and returns an `Extract`: Arrow tables of raw records, the records
or files it rejected (with the reason and a reference, never the content), and the checkpoint to
commit once the output is durable. The pipeline (include/honeycomb/checkpointed.py) scrubs and
writes them; nothing here persists data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from include.honeycomb.errors import CombError

MAX_REJECTS_LISTED = 200


class SourceReadError(CombError):
    """The source could not be read at all: the run fails, and retries unless `permanent` (bad
    credentials, 4xx, an invalid response, a missing bucket)."""


@dataclass
class Extract:
    tables: list[pa.Table] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    rejected: int = 0
    state: dict | None = None  # checkpoint after this run; None leaves it unchanged
    files: list[dict] = field(default_factory=list)  # file ledger rows (file_system)
    info: dict = field(default_factory=dict)

    def reject(self, ref: str, error: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECTS_LISTED:
            self.rejects.append({"ref": ref, "error": error[:500]})

    def add_records(self, records: list[dict]) -> None:
        if records:
            self.tables.append(records_to_table(records))


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool, type(None))) else json.dumps(v, default=str, sort_keys=True)


def records_to_table(records: list[dict]) -> pa.Table:
    """JSON-like records to Arrow, with every field any record has (records of different shapes
    are common in event streams). Nested objects become structs (rules reach them by dotted
    path). A field whose values disagree in type across records (a number here, a string there)
    is kept as text rather than failing the batch."""
    if not records:
        return pa.table({})
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    if len(keys) == len(records[0]):
        # every field is in the first record: Arrow's own inference (it takes the first
        # record's fields, so records of different shapes go column by column below)
        try:
            return pa.Table.from_pylist(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            pass
    cols = {}
    for k in keys:
        vals = [r.get(k) for r in records]
        try:
            cols[k] = pa.array(vals)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            cols[k] = pa.array([None if v is None else str(_jsonable(v)) for v in vals], pa.string())
    return pa.table(cols)


def parse_json_record(raw: bytes | str, ref: str) -> dict:
    """One JSON object, or ValueError naming the reference."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{ref}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{ref}: expected a JSON object, got {type(value).__name__}")
    return value


def unify(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Same column, irreconcilable types across files/pages: fall back to text for those.
        names = list(dict.fromkeys(n for t in tables for n in t.column_names))
        types: dict[str, set] = {n: {t.schema.field(n).type for t in tables if n in t.column_names} for n in names}
        fixed = []
        for t in tables:
            cols = {n: (pc.cast(t.column(n), pa.string()) if len(types[n]) > 1 and n in t.column_names
                        else t.column(n)) for n in t.column_names}
            fixed.append(pa.table(cols))
        return pa.concat_tables(fixed, promote_options="permissive")

"""The structured privacy engine: a profile and custom rules applied to Arrow tables (and to
CSV / JSON Lines / Parquet files), the same code path whatever feeds it.

Rules address columns by exact name (`field`) or glob (`pattern`), and nested fields of struct
columns by dotted path (`payload.user.email`). Keys that contain password, token, key or secret
are always redacted, whatever the profile. Free-text columns named in `text_fields` go through
Presidio (include/privacy/text.py) with the profile's actions.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from include.privacy import actions
from include.privacy.profiles import SYSTEM_PROFILES, decide

ACTIONS = {"hash", "remove", "mask", "redact", "tokenize", "generalize", "anonymize_ip"}
# Free-text columns (Scrubber.text_fields) are analysed with Presidio: include/privacy/text.py.


class ScrubConfigError(ValueError):
    pass


@dataclass
class Scrubber:
    profile: str | None = None
    custom_rules: list[dict] = field(default_factory=list)
    salt: str | None = None  # the HMAC key of the `hash` action (Vault `sting/scrubbing` hash_key)
    token_vault: object | None = None  # include.privacy.tokens.TokenVault
    text_fields: list[str] = field(default_factory=list)  # free-text columns (globs) for Presidio
    text_allow_list: list[str] = field(default_factory=list)  # terms never flagged in free text
    text_entities: list[str] | None = None  # limit free-text analysis to these entities (None: the profile's)

    def __post_init__(self):
        if self.profile and self.profile not in SYSTEM_PROFILES:
            raise ScrubConfigError(f"unknown scrubbing profile '{self.profile}' (known: {', '.join(SYSTEM_PROFILES)})")
        for i, r in enumerate(self.custom_rules):
            if r.get("action") not in ACTIONS:
                raise ScrubConfigError(f"custom_rules[{i}].action: '{r.get('action')}' is not one of {sorted(ACTIONS)}")
            if bool(r.get("field")) == bool(r.get("pattern")):
                raise ScrubConfigError(f"custom_rules[{i}]: give exactly one of 'field' or 'pattern'")

    def decide(self, path: str) -> tuple[str, str] | None:
        """(action, entity) for a column or dotted field path, or None to keep it."""
        d = decide(path, self.profile, self.custom_rules)
        if d is None and any(fnmatch.fnmatchcase(path, g) for g in self.text_fields):
            return "text", "FREE_TEXT"
        return d

    def text_actions(self) -> dict[str, str]:
        """Entity -> action for free text: the profile's (gdpr when none is set), limited to
        `text_entities` when given (without a NER entity, the NER does not run)."""
        acts = dict(SYSTEM_PROFILES[self.profile or "gdpr"]["entities"])
        if self.text_entities is not None:
            unknown = sorted(set(self.text_entities) - set(acts))
            if unknown:
                raise ScrubConfigError(f"text_entities {unknown} are not in profile '{self.profile or 'gdpr'}'")
            acts = {e: a for e, a in acts.items() if e in self.text_entities}
        return acts

    def apply(self, arr: pa.Array, action: str, entity: str, known: list | None = None) -> pa.Array:
        if action == "secret":
            return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.string()), pa.scalar(actions.REDACTED, pa.string()))
        if action == "hash":
            if not self.salt:
                raise ScrubConfigError("the 'hash' action needs the hash key (from Vault)")
            return actions.keyed_hash(arr, self.salt)
        if action == "mask":
            return actions.mask(arr)
        if action == "redact":
            return actions.redact(arr, entity)
        if action == "generalize":
            return actions.generalize(arr, entity=entity)
        if action == "anonymize_ip":
            return actions.anonymize_ip(arr)
        if action == "text":
            from include.privacy.text import scrub_texts

            texts, _ = scrub_texts(_as_list(arr), self.text_actions(), salt=self.salt, token_vault=self.token_vault,
                                   known_values=known, allow_list=self.text_allow_list or None)
            return pa.array(texts, pa.string())
        if action == "tokenize":
            if self.token_vault is None:
                raise ScrubConfigError("the 'tokenize' action needs a token vault")
            return self.token_vault.tokenize(arr, entity)
        raise ScrubConfigError(f"unknown action '{action}'")

    def _scrub_column(self, path: str, arr: pa.Array, report: dict) -> pa.Array | None:
        # A struct the rules or the profile name as a whole is scrubbed as a whole (as JSON text);
        # otherwise its fields are scrubbed one by one.
        if pa.types.is_struct(arr.type) and self.decide(path) is None:
            children, names = [], []
            for i, f in enumerate(arr.type):
                child = self._scrub_column(f"{path}.{f.name}", pc.struct_field(arr, [i]), report)
                if child is not None:
                    children.append(child)
                    names.append(f.name)
            if not children:
                return None
            return pa.StructArray.from_arrays(children, names=names, mask=pc.is_null(arr))
        decision = self.decide(path)
        if decision is None:
            return arr
        action, entity = decision
        report[path] = {"action": action, "entity": entity, "values": int(pc.sum(pc.is_valid(arr)).as_py() or 0)}
        if action == "remove":
            return None
        return self.apply(arr, action, entity, self._known if action == "text" and "." not in path else None)

    def scrub_table(self, table: pa.Table) -> tuple[pa.Table, dict]:
        """Returns the scrubbed table and a report: per column/path the action, entity and number
        of values scrubbed; `records_scrubbed` counts rows with at least one scrubbed value."""
        table = table.combine_chunks()
        self._known = self._record_values(table)
        report: dict = {}
        cols, names = [], []
        touched = pa.array([False] * table.num_rows)
        for name in table.column_names:
            arr = table.column(name).combine_chunks() if table.num_rows else pa.array([], table.schema.field(name).type)
            before = set(report)
            out = self._scrub_column(name, arr, report)
            if set(report) - before and table.num_rows:
                touched = pc.or_(touched, pc.is_valid(arr))
            if out is not None:
                cols.append(out)
                names.append(name)
        result = pa.table(cols, names=names) if cols else pa.table({})
        return result, {"columns": report, "records": table.num_rows,
                        "records_scrubbed": int(pc.sum(touched).as_py() or 0) if table.num_rows else 0}


    _known: list | None = field(default=None, init=False, repr=False)

    def _record_values(self, table: pa.Table) -> list | None:
        """Per row, the raw values of its structured PII columns (name, email, phone...): the
        free text of the same record is scrubbed of them wherever they occur, whatever the
        analyzer finds (a customer's note that names the customer)."""
        from include.privacy.text import PRESIDIO_ENTITY

        decisions = {n: self.decide(n) for n in table.column_names}
        if not table.num_rows or not any(d and d[0] == "text" for d in decisions.values()):
            return None
        cols = [(n, d[1]) for n, d in decisions.items()
                if d and d[0] not in ("text", "secret") and d[1] in PRESIDIO_ENTITY
                and not pa.types.is_nested(table.schema.field(n).type)]
        if not cols:
            return None
        values = [(pc.cast(table.column(n), pa.string()).to_pylist(), e) for n, e in cols]
        return [[(vals[i], e) for vals, e in values if vals[i]] for i in range(table.num_rows)]


def _as_list(arr) -> list:
    return pc.cast(arr, pa.string()).to_pylist()


def read_file(path: Path, fmt: str) -> pa.Table:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if fmt == "csv":
        from pyarrow import csv

        return csv.read_csv(path)
    if fmt in ("jsonl", "ndjson", "json"):
        from pyarrow import json as pajson

        return pajson.read_json(path)
    raise ScrubConfigError(f"unsupported file format '{fmt}' (csv, jsonl, parquet)")


def write_file(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="snappy")
    elif fmt == "csv":
        from pyarrow import csv

        csv.write_csv(table, path)
    else:
        import json

        lines = "".join(json.dumps(row, default=str, ensure_ascii=False) + "\n" for row in table.to_pylist())
        if hasattr(path, "write"):
            path.write(lines.encode("utf-8"))
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(lines)


def scrub_file(src: str | Path, dst: str | Path, *, fmt: str | None = None, **scrubber_kwargs) -> dict:
    """CSV / JSON Lines / Parquet in, the same format out, scrubbed. Returns the report."""
    src, dst = Path(src), Path(dst)
    fmt = (fmt or src.suffix.lstrip(".")).lower()
    table, report = Scrubber(**scrubber_kwargs).scrub_table(read_file(src, fmt))
    write_file(table, dst, fmt)
    return report


def file_format(name: str, fmt: str | None = None) -> str:
    f = (fmt or name.rsplit(".", 1)[-1]).lower()
    f = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(f, f)
    if f not in ("csv", "jsonl", "parquet"):
        raise ScrubConfigError(f"'{name}': unsupported file format '{f}' (csv, jsonl, parquet)")
    return f


def scrub_object(src_uri: str, dst_uri: str, *, fmt: str | None = None, **scrubber_kwargs) -> dict:
    """scrub_file for object storage: s3://bucket/key in, the same format out at dst_uri."""
    import io

    from include import storage

    def split(uri: str) -> tuple[str, str]:
        if not uri.startswith("s3://") or "/" not in uri[5:]:
            raise ScrubConfigError(f"'{uri}' is not an s3://bucket/key reference")
        return uri[5:].split("/", 1)

    (sb, sk), (db, dk) = split(src_uri), split(dst_uri)
    f = file_format(sk, fmt)
    try:
        body = storage.s3_client().get_object(Bucket=sb, Key=sk)["Body"].read()
    except Exception as e:
        raise ScrubConfigError(f"cannot read {src_uri}: {e}") from None
    try:
        table = read_file(io.BytesIO(body), f)
    except Exception as e:
        raise ScrubConfigError(f"{src_uri}: cannot parse as {f}: {e}") from None
    out, report = Scrubber(**scrubber_kwargs).scrub_table(table)
    buf = io.BytesIO()
    write_file(out, buf, f)
    storage.s3_client().put_object(Bucket=db, Key=dk, Body=buf.getvalue())
    return {**report, "input": src_uri, "output": dst_uri, "format": f, "bytes": buf.tell()}

"""file_system combs: a local folder or an S3 prefix; CSV, JSON Lines or Parquet; a glob pattern.

A file is taken once, by (path, size, checksum): sha256 of the bytes for local files, the ETag for
S3 objects. A changed file (other size or checksum) is taken again. A local file with the size
and modification time it had when it was read is not even read again. A file that cannot be parsed
is rejected alone (recorded with its error in the ledger and the execution), and a JSON Lines
line or CSV row that is malformed is rejected alone too; the other files and lines go through.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from include.honeycomb.sources import Extract, SourceReadError, parse_json_record, records_to_table


def _format(name: str, configured: str) -> str | None:
    if configured != "auto":
        return configured
    lower = name.lower()
    for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
                        (".parquet", "parquet"), (".pq", "parquet")):
        if lower.endswith(suffix):
            return fmt
    return None


def _match(rel: str, pattern: str) -> bool:
    # '**/' also matches nothing ('**/*.csv' matches 'a.csv'), as in most glob dialects.
    return fnmatch.fnmatchcase(rel, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(rel, pattern[3:]))


def list_files(comb) -> Iterator[dict]:
    """Candidate files, sorted by path: {"path", "size", "checksum"?, "open"}."""
    p = comb.parameters
    if comb.subtype == "local":
        root = Path(p.path)
        if not root.is_absolute():  # relative to the repository (the DAGs' and the stack's root)
            from include.settings import REPO_ROOT

            root = REPO_ROOT / root
        if not root.is_dir():
            raise SourceReadError(f"comb '{comb.name}': folder '{root}' does not exist", permanent=True)
        for f in sorted(root.rglob("*")):
            rel = f.relative_to(root).as_posix()
            if f.is_file() and not rel.startswith(".") and _match(rel, p.pattern):
                st = f.stat()
                yield {"path": str(f), "rel": rel, "size": st.st_size, "mtime": st.st_mtime, "read": f.read_bytes}
    else:
        from include import storage

        prefix = p.prefix.lstrip("/")
        try:
            objs = sorted(storage.list_keys(p.bucket, prefix), key=lambda o: o["Key"])
        except Exception as e:
            from include.honeycomb.errors import is_permanent

            raise SourceReadError(f"comb '{comb.name}': cannot list s3://{p.bucket}/{prefix}: {e}",
                                  is_permanent(e)) from None
        for o in objs:
            rel = o["Key"][len(prefix):].lstrip("/")
            if rel and not o["Key"].endswith("/") and _match(rel, p.pattern):
                key = o["Key"]
                yield {"path": f"s3://{p.bucket}/{key}", "rel": rel, "size": o["Size"],
                       "checksum": "etag:" + o["ETag"].strip('"'),
                       "read": lambda k=key: storage.s3_client().get_object(Bucket=p.bucket, Key=k)["Body"].read()}


def _parse(data: bytes, fmt: str, ref: str, delimiter: str, ex: Extract) -> pa.Table:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))
    if fmt == "jsonl":
        records = []
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(parse_json_record(line, f"{ref} line {n}"))
            except ValueError as e:
                ex.reject(f"{ref} line {n}", str(e))
        if not records and ex.rejects and ex.rejects[-1]["ref"].startswith(ref):
            raise ValueError("no valid JSON line")
        return records_to_table(records)
    if fmt == "csv":
        from pyarrow import csv

        bad: list[str] = []

        def invalid_row(row) -> str:
            bad.append(f"{ref} line {row.number}: expected {row.expected_columns} columns, got {row.actual_columns}")
            return "skip"

        parse = csv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid_row)
        try:
            table = csv.read_csv(io.BytesIO(data), parse_options=parse)
        except pa.ArrowInvalid as e:
            if "conversion error" not in str(e).lower():
                raise
            # Types are inferred from the first block; a later value that does not fit (text in
            # a number column) would fail the whole file: read it again with every column as text.
            bad.clear()
            names = csv.open_csv(io.BytesIO(data), parse_options=csv.ParseOptions(delimiter=delimiter)).schema.names
            table = csv.read_csv(io.BytesIO(data), parse_options=parse,
                                 convert_options=csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())))
        for b in bad:
            ex.reject(b.split(":", 1)[0], b)
        return table
    raise ValueError(f"unsupported format '{fmt}'")


def _unchanged(f: dict, taken) -> bool:
    """Known without reading it: on S3 the ETag is the checksum; a local file whose path, size
    and modification time are those it had when it was read."""
    if f.get("checksum"):
        return (f["path"], f["size"], f["checksum"]) in taken
    return f["mtime"] in taken.mtimes.get((f["path"], f["size"]), ())


def _ledger_row(f: dict, checksum: str, status: str, records: int = 0, error: str | None = None) -> dict:
    return {"path": f["path"], "size": f["size"], "checksum": checksum, "status": status, "records": records,
            "error": error, "mtime": f.get("mtime")}


def read(comb, taken, snapshot: bool) -> Extract:
    """Read the files not yet taken (all of them for a snapshot). `taken` is the ledger
    (include.honeycomb.checkpointed.Ledger): (path, size, checksum) triples and local mtimes."""
    p = comb.parameters
    ex = Extract()
    for f in list_files(comb):
        fmt = _format(f["rel"], p.format)
        if fmt is None:
            continue  # matched the glob but is not a data file (e.g. a README): not an error
        if f["size"] > p.max_file_bytes:
            ex.reject(f["path"], f"{f['path']}: {f['size']} bytes, over max_file_bytes {p.max_file_bytes}")
            ex.files.append(_ledger_row(f, f.get("checksum") or "size-only", "rejected", error="over max_file_bytes"))
            continue
        if not snapshot and _unchanged(f, taken):
            continue
        try:
            data = f["read"]()
        except OSError as e:
            raise SourceReadError(f"comb '{comb.name}': cannot read {f['path']}: {e}") from None
        checksum = f.get("checksum") or "sha256:" + hashlib.sha256(data).hexdigest()
        if not snapshot and (f["path"], f["size"], checksum) in taken:
            continue  # touched, same bytes
        try:
            table = _parse(data, fmt, f["path"], p.csv_delimiter, ex)
        except Exception as e:  # this file alone is bad: report it, keep going
            msg = f"{f['path']}: cannot parse as {fmt}: {type(e).__name__}: {e}"
            ex.reject(f["path"], msg)
            ex.files.append(_ledger_row(f, checksum, "rejected", error=msg[:1000]))
            continue
        table = table.append_column("_source_file", pa.array([f["path"]] * table.num_rows, pa.string()))
        ex.tables.append(table)
        ex.files.append(_ledger_row(f, checksum, "taken", records=table.num_rows))
    ex.info = {"files_taken": sum(1 for f in ex.files if f["status"] == "taken"),
               "files_rejected": sum(1 for f in ex.files if f["status"] == "rejected")}
    return ex

"""api and file_system combs against a real HTTP server (started here) and real files / S3:
incremental runs take only new data, reruns duplicate nothing, 429s are retried, malformed
records and files are skipped alone and reported."""

from __future__ import annotations

import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import storage, vault
from include.devstack.sample_api import SampleAPI, sample_records, serve
from tests.combtools import execution, run_checkpointed, write_def


@pytest.fixture
def api_server():
    servers = []

    def start(**kw):
        api = SampleAPI(**kw)
        srv, _ = serve(api)
        servers.append(srv)
        return api, f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def api_comb(name: str, base_url: str, style: str, *, mode: str = "incremental", auth: bool = True, **params) -> dict:
    pagination = {"type": style, "page_size": 40}
    if style == "cursor":
        pagination["next_cursor_path"] = "meta.next_cursor"
    if style == "link":
        pagination["size_param"] = "limit"
    return {
        "name": name, "type": "api", "subtype": "rest",
        "configuration": {
            "connection": {
                "vault_path": f"honey_combs/{name}/credentials" if auth else None,
                "parameters": {"base_url": base_url, "endpoint": f"/v1/indicators/{style}",
                               "records_path": None if style == "link" else "data",
                               "auth": {"type": "api_key", "header": "X-API-Key"} if auth else {"type": "none"},
                               "pagination": pagination, "incremental_param": "updated_since",
                               "retry": {"max_attempts": 4, "backoff_seconds": 0.05}, **params},
            },
            "extraction": {"mode": mode, "schedule": "0 * * * *", "primary_key": ["id"],
                           "incremental_column": "updated_at"},
            "scrubbing": {"profile_id": "gdpr", "text_fields": ["description"]},
            "output": {"prefix": f"tests/{name}"},
        },
    }


def uniq(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("style", ["offset", "page", "cursor", "link"])
def test_api_paginates_and_scrubs(combs_dir, api_server, style):
    api, url = api_server()
    name = write_def(combs_dir, api_comb(uniq(f"api_{style}"), url, style))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": api.api_key})
    r = run_checkpointed(name, f"run-{style}")
    t = r["table"]
    assert t.num_rows == 250 and sorted(t.column("id").to_pylist()) == list(range(1, 251))
    # gdpr: reporter emails hashed, reporter IPs anonymised, PII in free text replaced
    assert all(len(v) == 64 for v in t.column("reporter_email").to_pylist())
    assert all(v.endswith(".0") for v in t.column("reporter_ip").to_pylist())
    leaked = [v for v in t.column("description").to_pylist() if "@" in v or "415 555" in v]
    assert not leaked, leaked[:3]
    assert r["loaded"]["checkpoint"]["cursor"] == sample_records()[-1]["updated_at"]


def test_api_incremental_takes_only_new_records_and_reruns_duplicate_nothing(combs_dir, api_server):
    api, url = api_server()
    name = write_def(combs_dir, api_comb(uniq("api_inc"), url, "cursor"))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": api.api_key})
    first = run_checkpointed(name, "run-1")
    assert first["table"].num_rows == 250
    # Two new records: one at exactly the checkpoint's timestamp (the API's >= sends it with the
    # last old one again), one later; and an old record's update is not re-sent by the API.
    last_ts = api.records[-1]["updated_at"]
    api.records.append({**api.records[0], "id": 1001, "updated_at": last_ts})
    api.records.append({**api.records[0], "id": 1002, "updated_at": "2026-12-31T00:00:00Z"})
    second = run_checkpointed(name, "run-2")
    assert sorted(second["table"].column("id").to_pylist()) == [1001, 1002]
    third = run_checkpointed(name, "run-3")
    assert third["table"].num_rows == 0
    # Rerunning run-2 (cleared in the UI) republishes its own output, not newer data, no duplicates.
    api.records.append({**api.records[0], "id": 1003, "updated_at": "2027-01-01T00:00:00Z"})
    again = run_checkpointed(name, "run-2")
    assert again["out"]["key"] == second["out"]["key"]
    assert sorted(again["table"].column("id").to_pylist()) == [1001, 1002]
    fourth = run_checkpointed(name, "run-4")
    assert fourth["table"].column("id").to_pylist() == [1003]


def test_api_retries_429_then_200(combs_dir, api_server):
    api, url = api_server(fail_first=2, fail_status=429)
    name = write_def(combs_dir, api_comb(uniq("api_retry"), url, "offset"))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": api.api_key})
    r = run_checkpointed(name, "run-1")
    assert [s for s, _ in api.log[:3]] == [429, 429, 200]
    assert r["table"].num_rows == 250
    assert r["staged"]["source_info"]["retries"] == 2


def test_api_5xx_beyond_retries_fails_the_run_and_leaves_the_checkpoint(combs_dir, api_server):
    api, url = api_server(fail_first=100, fail_status=503)
    name = write_def(combs_dir, api_comb(uniq("api_down"), url, "offset"))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": api.api_key})
    with pytest.raises(Exception, match="failed after 4 attempt"):
        run_checkpointed(name, "run-1")
    assert len(api.log) == 4


def test_api_malformed_records_are_rejected_alone(combs_dir, api_server):
    recs = sample_records(30)
    recs.insert(5, "not an object")
    recs.insert(9, {"id": 999, "type": "ipv4", "value": "203.0.113.9"})  # no cursor field
    api, url = api_server(records=recs, api_key=None)
    name = write_def(combs_dir, api_comb(uniq("api_bad"), url, "page", auth=False))
    r = run_checkpointed(name, "run-1")
    assert r["table"].num_rows == 30
    ex = execution(r["run"])
    assert ex["status"] == "completed" and ex["metadata"]["records_rejected"] == 2
    errors = " | ".join(x["error"] for x in ex["metadata"]["rejects"])
    assert "expected a JSON object" in errors and "cursor field 'updated_at' is missing" in errors


def test_api_wrong_key_fails_with_a_clear_error(combs_dir, api_server):
    api, url = api_server()
    name = write_def(combs_dir, api_comb(uniq("api_auth"), url, "offset"))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": "wrong"})
    with pytest.raises(Exception, match="HTTP 401"):
        run_checkpointed(name, "run-1")


# ---------------------------------------------------------------- file_system

def file_comb(name: str, *, path: str | None = None, bucket: str | None = None, prefix: str = "",
              pattern: str = "**/*") -> dict:
    params = {"pattern": pattern}
    params.update({"path": path} if path else {"bucket": bucket, "prefix": prefix})
    return {
        "name": name, "type": "file_system", "subtype": "local" if path else "s3",
        "configuration": {
            "connection": {"parameters": params},
            "extraction": {"mode": "incremental", "schedule": "0 * * * *"},
            "scrubbing": {"profile_id": "gdpr"},
            "output": {"prefix": f"tests/{name}"},
        },
    }


def people(ids) -> list[dict]:
    return [{"id": i, "name": f"Person {i}", "email": f"p{i}@example.org", "city": "Lyon"} for i in ids]


def write_files(d, ids_csv, ids_jsonl, ids_parquet) -> None:
    d.mkdir(parents=True, exist_ok=True)
    pa.csv.write_csv(pa.Table.from_pylist(people(ids_csv)), d / "a.csv")
    lines = [json.dumps(r) for r in people(ids_jsonl)]
    lines.insert(1, "{this is not json")
    (d / "sub").mkdir(exist_ok=True)
    (d / "sub" / "b.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.Table.from_pylist(people(ids_parquet)), d / "c.parquet")
    (d / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (d / "README.txt").write_text("not data")


def test_files_local_taken_once_changed_again_bad_file_alone(combs_dir, tmp_path):
    import pyarrow.csv  # noqa: F401  (pa.csv)

    landing = tmp_path / "landing"
    write_files(landing, [1, 2, 3], [4, 5, 6], [7, 8])
    name = write_def(combs_dir, file_comb(uniq("files_local"), path=str(landing)))
    first = run_checkpointed(name, "run-1")
    t = first["table"]
    assert sorted(t.column("id").to_pylist()) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all(len(v) == 64 for v in t.column("email").to_pylist())  # gdpr hashes emails
    ex = execution(first["run"])["metadata"]
    errors = " | ".join(x["error"] for x in ex["rejects"])
    assert ex["records_rejected"] == 2 and "broken.parquet" in errors and "b.jsonl line 2" in errors
    # nothing changed: nothing taken
    assert run_checkpointed(name, "run-2")["table"].num_rows == 0
    # b.jsonl changes: it alone is taken again (all its lines: the file is the unit)
    (landing / "sub" / "b.jsonl").write_text("\n".join(json.dumps(r) for r in people([4, 5, 6, 9])) + "\n")
    third = run_checkpointed(name, "run-3")
    assert sorted(third["table"].column("id").to_pylist()) == [4, 5, 6, 9]
    assert set(third["table"].column("_source_file").to_pylist()) == {str(landing / "sub" / "b.jsonl")}
    # the broken file is not retried until it changes
    assert run_checkpointed(name, "run-4")["table"].num_rows == 0
    # touched (new mtime) but the same bytes: read and hashed again, not taken
    import os
    import time

    a = landing / "a.csv"
    os.utime(a, (time.time() + 5, time.time() + 5))
    assert run_checkpointed(name, "run-5")["table"].num_rows == 0
    # same size, other bytes: taken again
    body = a.read_bytes()
    a.write_bytes(body.replace(b"Person 1", b"Person X"))
    assert len(a.read_bytes()) == len(body)
    sixth = run_checkpointed(name, "run-6")["table"]
    assert sixth.num_rows == 3 and set(sixth.column("_source_file").to_pylist()) == {str(a)}


def test_files_s3_prefix_incremental(combs_dir):
    bucket = "sting-comb-outputs"
    prefix = f"tests/landing-{uuid.uuid4().hex[:8]}/"
    s3 = storage.s3_client()
    s3.put_object(Bucket=bucket, Key=prefix + "day1.jsonl",
                  Body="\n".join(json.dumps(r) for r in people([1, 2])).encode())
    s3.put_object(Bucket=bucket, Key=prefix + "ignored.bin", Body=b"x")
    name = write_def(combs_dir, file_comb(uniq("files_s3"), bucket=bucket, prefix=prefix, pattern="*.jsonl"))
    assert sorted(run_checkpointed(name, "run-1")["table"].column("id").to_pylist()) == [1, 2]
    s3.put_object(Bucket=bucket, Key=prefix + "day2.jsonl",
                  Body="\n".join(json.dumps(r) for r in people([3])).encode())
    assert run_checkpointed(name, "run-2")["table"].column("id").to_pylist() == [3]
    assert run_checkpointed(name, "run-3")["table"].num_rows == 0


def test_snapshot_generation_reads_everything_into_a_new_jar_and_leaves_the_checkpoint(combs_dir, tmp_path,
                                                                                       api_server):
    landing = tmp_path / "landing2"
    landing.mkdir()
    (landing / "a.jsonl").write_text("\n".join(json.dumps(r) for r in people([1, 2, 3])) + "\n")
    name = write_def(combs_dir, file_comb(uniq("files_snap"), path=str(landing)))
    flow = run_checkpointed(name, "run-1")
    assert flow["table"].num_rows == 3
    snap = run_checkpointed(name, "run-snap", execution_type="snapshot_generation")
    assert snap["table"].num_rows == 3 and snap["loaded"]["jar_id"] != flow["loaded"]["jar_id"]
    assert "/snapshot_generation/" in snap["out"]["key"]
    assert run_checkpointed(name, "run-2")["table"].num_rows == 0  # the flow's ledger did not move
    # the same for an API comb: a snapshot reads without the cursor
    api, url = api_server(api_key=None)
    aname = write_def(combs_dir, api_comb(uniq("api_snap"), url, "offset", auth=False))
    assert run_checkpointed(aname, "run-1")["table"].num_rows == 250
    s2 = run_checkpointed(aname, "run-snap", execution_type="snapshot_generation")
    assert s2["table"].num_rows == 250 and s2["loaded"]["checkpoint"] is None
    assert run_checkpointed(aname, "run-2")["table"].num_rows == 0


def test_api_that_caps_the_page_size_loses_nothing(combs_dir, api_server):
    api, url = api_server(api_key=None)
    comb = api_comb(uniq("api_cap"), url, "offset", auth=False)
    comb["configuration"]["connection"]["parameters"]["pagination"]["page_size"] = 500  # the API caps at 50
    api.max_limit = 50
    name = write_def(combs_dir, comb)
    r = run_checkpointed(name, "run-1")
    assert r["table"].num_rows == 250


def test_csv_whose_late_value_breaks_type_inference_is_kept_as_text(combs_dir, tmp_path):
    landing = tmp_path / "landing3"
    landing.mkdir()
    rows = ["id,amount,email"] + [f"{i},{i * 10},u{i}@example.com" for i in range(1, 200_001)]
    rows.append("200001,not-a-number,late@example.com")
    (landing / "big.csv").write_text("\n".join(rows) + "\n")
    name = write_def(combs_dir, file_comb(uniq("files_csv"), path=str(landing)))
    t = run_checkpointed(name, "run-1")["table"]
    assert t.num_rows == 200_001 and t.schema.field("amount").type == pa.string()
    assert t.column("amount")[-1].as_py() == "not-a-number"


def test_concurrent_runs_of_a_checkpointed_comb_take_turns(combs_dir, api_server):
    """Two runs at once (a backfill runs 10): the second waits for the first's commit (the read
    lease), then reads after its checkpoint. Both succeed; every record once."""
    import threading

    from include.honeycomb.checkpointed import acknowledge  # noqa: F401  (same module as the lease)
    from include.honeycomb.tasks import begin, load
    from sting_airflow.operators import HoneyCombExtractOperator, HoneyCombParquetOutputOperator, load_comb

    api, url = api_server()
    name = write_def(combs_dir, api_comb(uniq("api_turns"), url, "cursor"))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": api.api_key})
    comb = load_comb(name)
    run_a = begin(comb, run_key="run-a")
    run_b = begin(comb, run_key="run-b")
    staged_a = HoneyCombExtractOperator(task_id="extract", comb_name=name, run=run_a).execute({})
    results = {}

    def run_b_steps():
        staged = HoneyCombExtractOperator(task_id="extract", comb_name=name, run=run_b).execute({})
        out = HoneyCombParquetOutputOperator(task_id="write_parquet", comb_name=name, run=run_b,
                                             staged=staged).execute({})
        results["b"] = (staged, load(comb, run_b, out))

    t = threading.Thread(target=run_b_steps)
    t.start()
    t.join(timeout=5)
    assert t.is_alive() and "b" not in results  # waiting for run a's commit
    out_a = HoneyCombParquetOutputOperator(task_id="write_parquet", comb_name=name, run=run_a,
                                           staged=staged_a).execute({})
    load(comb, run_a, out_a)
    t.join(timeout=60)
    assert not t.is_alive()
    staged_b, _ = results["b"]
    assert staged_a["records_processed"] == 250 and staged_b["records_processed"] == 0

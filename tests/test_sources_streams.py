"""stream combs against the real Redis (Streams, consumer groups) and NATS JetStream: messages
are acknowledged only after the output is durable; a killed run loses and doubles nothing; a
malformed message is rejected alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis

from include.settings import get_settings
from tests.combtools import execution, extract_only, read_output, run_checkpointed, run_steps, write_def


@pytest.fixture
def rds(stack):
    r = redis.Redis.from_url(get_settings().redis_url)
    streams = []
    yield r, streams
    for s in streams:
        r.delete(s)
    r.close()


def redis_comb(name: str, stream: str, mode: str = "continuous", read_count: int = 50) -> dict:
    return {
        "name": name, "type": "stream", "subtype": "redis_streams",
        "configuration": {
            "connection": {"parameters": {"stream": stream, "mode": mode, "read_count": read_count}},
            "extraction": {"mode": "incremental", "schedule": "*/5 * * * *"},
            "scrubbing": {"profile_id": "gdpr"},
            "output": {"prefix": f"tests/{name}"},
        },
    }


def event(i: int) -> dict:
    return {"data": json.dumps({"event_id": i, "source_ip": f"192.0.2.{i % 250}", "username": f"root{i}",
                                "password": f"hunter{i}", "honey_jar": "ssh-01"})}


def pending(r, stream: str, group: str) -> int:
    return r.xpending(stream, group)["pending"]


def test_redis_stream_acks_after_output_and_rejects_malformed_alone(combs_dir, rds):
    r, streams = rds
    stream = f"test:events:{uuid.uuid4().hex[:8]}"
    streams.append(stream)
    for i in range(1, 101):
        r.xadd(stream, event(i) if i != 50 else {"data": "{broken json"})
    name = write_def(combs_dir, redis_comb(f"redis_{uuid.uuid4().hex[:8]}", stream))
    group = f"sting_{name}"
    # Read, scrubbed and published, but not yet acknowledged: all 100 are pending.
    run, staged, out, loaded = run_steps(name, "run-1")
    assert pending(r, stream, group) == 100
    assert execution(run)["metadata"]["records_rejected"] == 1
    from include.honeycomb.checkpointed import acknowledge
    from sting_airflow.operators import load_comb

    assert acknowledge(load_comb(name), run, None) == 100
    assert pending(r, stream, group) == 0
    t, _ = read_output(out["bucket"], out["key"])
    assert sorted(t.column("event_id").to_pylist()) == [i for i in range(1, 101) if i != 50]
    assert set(t.column("password").to_pylist()) == {"***REDACTED***"}  # secrets always redacted
    assert all(v.endswith(".0") for v in t.column("source_ip").to_pylist())
    assert "stream" in execution(run)["metadata"]["rejects"][0]["error"]
    # nothing new: an empty run
    assert run_checkpointed(name, "run-2")["table"].num_rows == 0


def test_redis_stream_crash_between_commit_and_ack_delivers_once(combs_dir, rds):
    r, streams = rds
    stream = f"test:events:{uuid.uuid4().hex[:8]}"
    streams.append(stream)
    for i in range(1, 21):
        r.xadd(stream, event(i))
    name = write_def(combs_dir, redis_comb(f"redis_{uuid.uuid4().hex[:8]}", stream))
    first = run_checkpointed(name, "run-1", ack=False)  # committed, the ack step never ran
    assert first["table"].num_rows == 20 and pending(r, stream, f"sting_{name}") == 20
    for i in range(21, 26):
        r.xadd(stream, event(i))
    second = run_checkpointed(name, "run-2")
    # the 20 pending ones are acknowledged, not delivered again; only the 5 new ones are read
    assert sorted(second["table"].column("event_id").to_pylist()) == [21, 22, 23, 24, 25]
    assert pending(r, stream, f"sting_{name}") == 0
    assert second["staged"]["duplicates_skipped"] == 20


def test_redis_stream_killed_mid_run_loses_and_doubles_nothing(combs_dir, rds, tmp_path):
    r, streams = rds
    stream = f"test:events:{uuid.uuid4().hex[:8]}"
    streams.append(stream)
    n = 3000
    pipe = r.pipeline()
    for i in range(1, n + 1):
        pipe.xadd(stream, event(i))
    pipe.execute()
    name = write_def(combs_dir, redis_comb(f"redis_{uuid.uuid4().hex[:8]}", stream, read_count=10))
    group = f"sting_{name}"
    # The extract step in its own process, killed (SIGKILL) while it is reading the stream.
    code = ("import sys; sys.path[:0] = ['.', 'plugins']\n"
            "from tests.combtools import run_steps\n"
            "run_steps(sys.argv[1], 'run-killed')\n")
    env = {**os.environ, "STING_COMBS_DIR": str(combs_dir)}
    p = subprocess.Popen([sys.executable, "-c", code, name], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if 0 < pending(r, stream, group) < n:
                break
        except redis.ResponseError:
            pass  # group not created yet
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    read_before_kill = pending(r, stream, group)
    assert 0 < read_before_kill < n, "the kill must land mid-read"
    # The rerun of the killed run takes everything exactly once: the pending ones, then the rest.
    rerun = run_checkpointed(name, "run-killed")
    ids = rerun["table"].column("event_id").to_pylist()
    assert len(ids) == n and sorted(ids) == list(range(1, n + 1))
    assert pending(r, stream, group) == 0
    assert run_checkpointed(name, "run-next")["table"].num_rows == 0


def test_redis_time_window_snapshot_reads_the_window_without_a_group(combs_dir, rds):
    r, streams = rds
    stream = f"test:events:{uuid.uuid4().hex[:8]}"
    streams.append(stream)
    base = 1_790_000_000_000  # ms
    for i in range(10):
        r.xadd(stream, event(i), id=f"{base + i * 60_000}-0")  # one a minute
    name = write_def(combs_dir, redis_comb(f"redis_{uuid.uuid4().hex[:8]}", stream, mode="time_window_snapshot"))
    from datetime import UTC, datetime

    start = datetime.fromtimestamp((base + 2 * 60_000) / 1000, UTC)
    end = datetime.fromtimestamp((base + 5 * 60_000) / 1000, UTC)
    out = run_checkpointed(name, "run-w", window_start=start, window_end=end)
    assert sorted(out["table"].column("event_id").to_pylist()) == [2, 3, 4]
    assert r.xinfo_groups(stream) == []
    again = run_checkpointed(name, "run-w2", window_start=start, window_end=end)
    assert sorted(again["table"].column("event_id").to_pylist()) == [2, 3, 4]


# ---------------------------------------------------------------- NATS JetStream

async def _publish(stream: str, subject: str, payloads: list[bytes], create: bool = False) -> None:
    import nats

    nc = await nats.connect(get_settings().nats_url)
    js = nc.jetstream()
    if create:
        await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    for i, p in enumerate(payloads):
        await js.publish(f"{subject}.ssh{i % 3}", p)
    await nc.close()


async def _delete(stream: str) -> None:
    import nats

    nc = await nats.connect(get_settings().nats_url)
    await nc.jetstream().delete_stream(stream)
    await nc.close()


def nats_comb(name: str, stream: str) -> dict:
    return {
        "name": name, "type": "stream", "subtype": "nats_jetstream",
        "configuration": {
            "connection": {"parameters": {"servers": [get_settings().nats_url], "stream": stream,
                                          "fetch_timeout_seconds": 0.5}},
            "extraction": {"mode": "incremental", "schedule": "*/5 * * * *"},
            "scrubbing": {"profile_id": "gdpr"},
            "output": {"prefix": f"tests/{name}"},
        },
    }


def test_nats_jetstream_resumes_from_checkpoint(combs_dir, stack):
    stream = f"TEST_{uuid.uuid4().hex[:8]}"
    subject = f"test.{stream.lower()}"
    msgs = [json.dumps(event(i) | {"event_id": i}).encode() for i in range(1, 31)]
    msgs[9] = b"not json at all"
    asyncio.run(_publish(stream, subject, msgs, create=True))
    try:
        name = write_def(combs_dir, nats_comb(f"nats_{uuid.uuid4().hex[:8]}", stream))
        # a run that dies before its commit moves nothing: the next run reads the same messages
        died, _ = extract_only(name, "run-died")  # extracted, then died before its commit
        from include.honeycomb.tasks import finalize_failed
        from sting_airflow.operators import load_comb

        finalize_failed(load_comb(name), died)  # what Airflow runs when that run fails
        first = run_checkpointed(name, "run-1")
        ids = first["table"].column("event_id").to_pylist()
        assert sorted(ids) == [i for i in range(1, 31) if i != 10]
        assert execution(first["run"])["metadata"]["records_rejected"] == 1
        assert first["loaded"]["checkpoint"] == {"last_seq": 30}
        assert run_checkpointed(name, "run-2")["table"].num_rows == 0
        asyncio.run(_publish(stream, subject, [json.dumps({"event_id": i}).encode() for i in range(31, 36)]))
        third = run_checkpointed(name, "run-3")
        assert sorted(third["table"].column("event_id").to_pylist()) == [31, 32, 33, 34, 35]
    finally:
        asyncio.run(_delete(stream))


def test_records_of_different_shapes_keep_every_field():
    """Arrow's from_pylist takes the first record's fields: a field only later records carry
    (a login's username after a command event) must not be dropped."""
    from include.honeycomb.sources import records_to_table

    t = records_to_table([{"eventid": "command", "input": "uname -a"},
                          {"eventid": "login", "username": "root", "password": "x"},
                          {"eventid": "scan", "dst_port": 22}])
    assert set(t.column_names) == {"eventid", "input", "username", "password", "dst_port"}
    assert t.column("username").to_pylist() == [None, "root", None]
    assert t.column("dst_port").to_pylist() == [None, None, 22]

"""Comb templates: public system templates, private user templates, creating a comb from one."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from include.db import connect
from include.honeycomb.templates import TemplateError, create_from_template, list_templates, publish_template
from include.settings import get_settings
from tests.combtools import run_checkpointed


def usage(conn, template: str) -> int:
    return conn.execute("SELECT usage_count FROM honey_combs WHERE is_template AND name = %s AND owner_id IS NULL",
                        (template,)).fetchone()["usage_count"]


def test_comb_from_a_system_template_runs(combs_dir):
    stream = f"test:tpl:{uuid.uuid4().hex[:8]}"
    name = f"tpl_{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(get_settings().redis_url)
    for i in range(5):
        r.xadd(stream, {"data": json.dumps({"n": i, "email": f"x{i}@example.com"})})
    try:
        with connect() as conn:
            assert {"redis_stream_events", "rest_api_cursor", "s3_landing_files"} <= {
                t["name"] for t in list_templates(conn) if t["is_public"]}
            before = usage(conn, "redis_stream_events")
            # a placeholder left unset is named
            with pytest.raises(TemplateError, match=r"set configuration.connection.parameters.stream"):
                create_from_template(conn, "redis_stream_events", name)
            path = create_from_template(conn, "redis_stream_events", name, {
                "configuration": {"connection": {"parameters": {"stream": stream}}},
                "target": {"honey_jar": "from a template"}})
            assert path == combs_dir / f"{name}.yaml"
            assert usage(conn, "redis_stream_events") == before + 1
            row = conn.execute("SELECT type, subtype, is_template FROM honey_combs WHERE name = %s AND NOT is_template",
                               (name,)).fetchone()
            assert (row["type"], row["subtype"], row["is_template"]) == ("stream", "redis_streams", False)
            with pytest.raises(TemplateError, match="already exists"):
                create_from_template(conn, "redis_stream_events", name, {
                    "configuration": {"connection": {"parameters": {"stream": stream}}}})
        out = run_checkpointed(name, "run-1")
        assert out["table"].num_rows == 5 and all(len(v) == 64 for v in out["table"].column("email").to_pylist())
        assert out["loaded"]["jar_name"] == "from a template"
    finally:
        r.delete(stream)
        r.close()


def test_private_templates_are_their_owners_only(combs_dir):
    with connect() as conn:
        owner = str(conn.execute("INSERT INTO users (email) VALUES (%s) RETURNING id",
                                 (f"{uuid.uuid4().hex[:8]}@example.com",)).fetchone()["id"])
        tname = f"mine_{uuid.uuid4().hex[:6]}"
        publish_template(conn, tname, {
            "type": "file_system", "subtype": "local", "description": "my landing folder",
            "configuration": {"connection": {"parameters": {"path": "/tmp/landing", "pattern": "*.csv"}},
                              "extraction": {"mode": "incremental", "schedule": "@hourly"}}}, owner_id=owner)
        assert tname in {t["name"] for t in list_templates(conn, owner)}
        assert tname not in {t["name"] for t in list_templates(conn, None)}
        with pytest.raises(TemplateError, match="no template"):
            create_from_template(conn, tname, f"c_{uuid.uuid4().hex[:6]}", user_id=None)
        path = create_from_template(conn, tname, f"c_{uuid.uuid4().hex[:6]}", user_id=owner)
        assert "my landing folder" in path.read_text()


def test_postgres_template_runs_against_the_local_stack_as_created(combs_dir, source_db):
    """Only the CHANGE_ME values set: the template's own settings (TLS preferred) work locally."""
    import psycopg

    from include.honeycomb.templates import seed_system_templates
    from tests.combtools import run_steps

    dsn, schema = source_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE TABLE "{schema}".things (id BIGINT PRIMARY KEY, email TEXT, updated_at TIMESTAMPTZ)')
        c.execute(f"""INSERT INTO "{schema}".things VALUES (1, 'a@example.org', '2026-10-05 00:10:00+00')""")
    name = f"tplpg_{uuid.uuid4().hex[:8]}"
    s = get_settings()
    with connect() as conn:
        seed_system_templates(conn)  # what stack-up did; the test database may be shared
        create_from_template(conn, "postgres_table_incremental", name, {"configuration": {
            "connection": {"vault_path": "honey_combs/sample_customers/credentials",
                           "parameters": {"host": s.pg_host, "database": s.sample_source_db}},
            "extraction": {"table": f"{schema}.things"}}})
    _, _, out, _ = run_steps(name, "r1", window_start="2026-10-05T00:00:00Z", window_end="2026-10-05T01:00:00Z")
    assert out["records_processed"] == 1

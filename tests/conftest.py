"""Tests run against the real local stack: the session brings it up (reusing servers that already
run) and the Airflow components only for the tests that need them."""

from __future__ import annotations

import os
import uuid

import pytest

from include.devstack import stack as _st

# The test process sees the same Airflow configuration as the stack's components (metadata DB,
# connections such as vault_default, the Vault secrets backend) before anything imports airflow.
os.environ.update(_st.airflow_env())


@pytest.fixture(scope="session")
def stack():
    _st.up(with_airflow=False)
    return _st


@pytest.fixture(scope="session")
def airflow(stack):
    from include.devstack.airflow_api import AirflowAPI

    print(stack.ensure_airflow())
    return AirflowAPI()


@pytest.fixture
def source_db(stack):
    """A private source schema with one table per test, readable by the comb reader role."""
    import psycopg

    from include.devstack.sample_data import READER_ROLE
    from include.settings import get_settings

    s = get_settings()
    schema = f"t_{uuid.uuid4().hex[:10]}"
    dsn = s.dsn(s.sample_source_db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {READER_ROLE}')
        conn.execute(f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" GRANT SELECT ON TABLES TO {READER_ROLE}')
    yield dsn, schema
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def comb_env(tmp_path, monkeypatch, source_db):
    """A comb directory (STING_COMBS_DIR) and a private source schema with an empty `orders`
    table (tests.combtools.make_orders); the test's outputs are removed afterwards."""
    import psycopg

    from tests.combtools import make_orders

    monkeypatch.setenv("STING_COMBS_DIR", str(tmp_path))
    dsn, schema = source_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        make_orders(conn, schema)
    yield tmp_path, dsn, schema
    from tests.combtools import clear_test_outputs

    clear_test_outputs(schema)


@pytest.fixture
def mysql_source(stack):
    """A private MariaDB database and a reader user whose credentials are in Vault at
    honey_combs/<db>/credentials. Yields (root connection, database name)."""
    import pymysql

    from include import vault
    from include.settings import get_settings

    s = get_settings()
    db = f"t_{uuid.uuid4().hex[:10]}"
    user, password = f"r_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    root = pymysql.connect(host=s.mysql_host, port=s.mysql_port, user="root", autocommit=True)
    with root.cursor() as c:
        c.execute(f"CREATE DATABASE `{db}`")
        c.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        c.execute(f"GRANT SELECT ON `{db}`.* TO %s@'%%'", (user,))
    vault.write_secret(f"honey_combs/{db}/credentials", {"username": user, "password": password})
    yield root, db
    with root.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS `{db}`")
        c.execute("DROP USER IF EXISTS %s@'%%'", (user,))
    root.close()
    from tests.combtools import clear_test_outputs

    clear_test_outputs(db)


@pytest.fixture
def combs_dir(tmp_path, monkeypatch, stack):
    """An empty comb directory for the test's own comb files (STING_COMBS_DIR points at it)."""
    d = tmp_path / "combs"
    d.mkdir()
    monkeypatch.setenv("STING_COMBS_DIR", str(d))
    return d

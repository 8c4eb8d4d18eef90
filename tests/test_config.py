"""Comb definitions: validated by a typed model, errors name the field; placeholders resolve."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from include.honeycomb.config import CombConfigError, parse_comb

BASE = yaml.safe_load((Path(__file__).resolve().parent.parent / "include/combs/sample_customers.yaml").read_text())


def mutate(fn):
    raw = copy.deepcopy(BASE)
    fn(raw)
    return raw


@pytest.mark.parametrize("change, field", [
    (lambda r: r["configuration"]["extraction"].update(mode="sometimes"), "configuration.extraction.mode"),
    (lambda r: r["configuration"]["extraction"].update(schedule="every hour"), "configuration.extraction.schedule"),
    (lambda r: r["configuration"]["scrubbing"]["custom_rules"].append({"field": "x", "action": "shred"}),
     "configuration.scrubbing.custom_rules.4.action"),
    (lambda r: r["configuration"]["connection"].pop("vault_path"), "configuration.connection.vault_path"),
    (lambda r: r["configuration"]["extraction"].update(primray_key=["id"]), "configuration.extraction.primray_key"),
    (lambda r: r.update(type="ftp"), "type"),
    (lambda r: r["configuration"]["extraction"].update(lookback="a while"), "configuration.extraction.lookback"),
])
def test_bad_config_names_the_field(change, field):
    with pytest.raises(CombConfigError) as e:
        parse_comb(mutate(change), "sample_customers.yaml", env={})
    msg = str(e.value)
    assert "comb 'sample_customers' (sample_customers.yaml)" in msg and field in msg


def test_semantic_rules_are_checked():
    raw = mutate(lambda r: r["configuration"]["scrubbing"]["custom_rules"].insert(0, {"field": "id", "action": "mask"}))
    with pytest.raises(CombConfigError, match="primary key column 'id' cannot be 'mask'-scrubbed"):
        parse_comb(raw, env={})
    raw = mutate(lambda r: r["configuration"]["extraction"].pop("incremental_column"))
    with pytest.raises(CombConfigError, match="incremental mode needs 'incremental_column'"):
        parse_comb(raw, env={})


def test_env_placeholders_resolve_only_in_connection_parameters():
    raw = mutate(lambda r: r["configuration"]["connection"]["parameters"].update(host="${DB_HOST_X}"))
    comb = parse_comb(raw, env={"DB_HOST_X": "db.internal", "COMB_DB_PORT": "6543"})
    assert comb.pg_parameters.host == "db.internal" and comb.pg_parameters.port == 6543
    assert comb.pg_parameters.database == "sting_sample_source"  # the ${VAR:-default} form
    with pytest.raises(CombConfigError, match=r"configuration.connection.parameters.host: environment variable \$\{DB_HOST_X\} is not set"):
        parse_comb(raw, env={})


def test_rule_order_and_globs():
    comb = parse_comb(BASE, env={})
    plan = comb.configuration.scrubbing.plan(["id", "email", "ssn", "phone_mobile", "phone_home", "notes"])
    assert plan == {"email": "hash", "ssn": "remove", "phone_mobile": "mask", "phone_home": "mask", "notes": "text"}


def _minimal(type_: str, subtype: str, parameters: dict, **extraction) -> dict:
    return {"name": "x", "type": type_, "subtype": subtype,
            "configuration": {"connection": {"parameters": parameters},
                              "extraction": {"mode": "incremental", "schedule": "@hourly", **extraction}}}


@pytest.mark.parametrize("raw, message", [
    (_minimal("stream", "kafka", {}), "type 'stream' / subtype 'kafka' is not available"),
    (_minimal("file_system", "local", {"pattern": "*.csv"}), "parameters.path: required for file_system/local"),
    (_minimal("file_system", "s3", {"prefix": "in/"}), "parameters.bucket: required for file_system/s3"),
    (_minimal("api", "rest", {"base_url": "http://x"}), "incremental api comb needs 'incremental_column'"),
    (_minimal("api", "rest", {"base_url": "ftp://x"}, incremental_column="t"), "base_url"),
    (_minimal("api", "rest", {"base_url": "http://x", "pagination": {"type": "scroll"}}, incremental_column="t"),
     "pagination.type"),
    (_minimal("stream", "redis_streams", {"stream": "s", "mode": "replay"}), "mode"),
    (_minimal("database", "mariadb", {"host": "h", "database": "d"}, table="t", primary_key=["id"],
              incremental_column="u"), "vault_path: required for a database comb"),
])
def test_source_types_validate_their_parameters(raw, message):
    with pytest.raises(CombConfigError, match=re.escape(message)):
        parse_comb(raw, "x.yaml", env={})


def test_every_sample_comb_is_valid():
    from include.honeycomb.config import comb_files, load_comb_file

    combs = [load_comb_file(p, env={}) for p in comb_files()]
    assert {(c.type, c.subtype) for c in combs} >= {("database", "postgresql"), ("database", "mariadb"),
                                                    ("api", "rest"), ("file_system", "local"),
                                                    ("stream", "redis_streams")}

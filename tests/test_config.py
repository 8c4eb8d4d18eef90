"""Comb definitions: validated by a typed model, errors name the field; placeholders resolve."""

from __future__ import annotations

import copy
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

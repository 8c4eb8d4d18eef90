"""Errors by kind: deterministic ones fail at once (no retry hits the source again), transient ones
are retried; error messages never carry a secret, even when an API echoes the request; a cursor or
next link that repeats fails at once instead of looping."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include import vault
from include.db import connect
from include.devstack.sample_api import ECHO_STYLES
from tests.combtools import write_comb, write_def
from tests.test_sources_api_files import api_comb, api_server  # noqa: F401  (fixture)


def _extract(name: str, run_key: str = "r1", **params):
    from include.honeycomb.tasks import begin
    from sting_airflow.operators import HoneyCombExtractOperator, load_comb

    run = begin(load_comb(name), run_key=run_key, params=params)
    return run, lambda: HoneyCombExtractOperator(task_id="extract", comb_name=name, run=run).execute(
        {"ti": SimpleNamespace(try_number=1)})


W = {"window_start": "2026-10-05T00:00:00Z", "window_end": "2026-10-05T01:00:00Z"}


@pytest.mark.parametrize("echo", [*ECHO_STYLES, "all"])
def test_api_401_echoing_the_key_fails_at_once_and_leaks_nowhere(combs_dir, api_server, caplog, echo):  # noqa: F811
    """Each way an API quotes a refused key back (as sent, PHP's `\\/`, Basic base64 of `key:`,
    URL-encoded, hex): the message says HTTP 401 and carries the key in none of its forms."""
    import base64
    from urllib.parse import quote

    api, url = api_server()
    api.echo_request_on_401 = True
    api.echo_styles = ECHO_STYLES if echo == "all" else (echo,)
    name = write_def(combs_dir, api_comb(f"api_echo_{uuid.uuid4().hex[:8]}", url, "offset"))
    key = f"sk/live+{uuid.uuid4().hex[:24]}"
    forms = {key, key.replace("/", "\\/"), quote(key, safe=""), key.encode().hex(),
             base64.b64encode(f"{key}:".encode()).decode()[:-4]}  # (the last characters mix in the ':')
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": key})
    api.api_key = "the-right-one"
    run, extract = _extract(name)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AirflowFailException) as e:  # deterministic: no Airflow retry
        extract()
    message = str(e.value)
    assert "HTTP 401" in message and len(api.log) == 1  # one request, not three
    with connect() as conn:
        ex = conn.execute("SELECT error_message, metadata FROM honey_comb_executions WHERE id = %s",
                          (run["execution_id"],)).fetchone()
        att = conn.execute("SELECT error FROM honey_comb_execution_attempts WHERE execution_id = %s",
                           (run["execution_id"],)).fetchall()
    assert "HTTP 401" in ex["error_message"]
    blob = message + repr(ex) + repr(att) + caplog.text
    assert [f for f in forms if f in blob] == []
    assert [f for f in forms if f.lower() in blob.lower()] == []


def test_a_redirect_to_another_origin_never_takes_the_key(combs_dir, api_server, caplog):  # noqa: F811
    """The API answers 302 to another origin: the comb follows it without the key (the other
    host sees no X-API-Key) and that host's refusal fails the run. A same-origin redirect keeps
    the key and delivers; a host listed in redirect_hosts gets it too."""
    api, url = api_server()
    other, other_url = api_server()
    other.echo_request_on_401 = True
    key = f"sk-{uuid.uuid4().hex}"
    api.api_key = other.api_key = key
    api.redirect_to = other_url.replace("127.0.0.1", "localhost")  # another host and port
    moved = {"endpoint": "/v1/moved/offset"}
    name = write_def(combs_dir, api_comb(f"api_redir_{uuid.uuid4().hex[:8]}", url, "offset", **moved))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": key})
    _, extract = _extract(name)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AirflowFailException) as e:
        extract()
    assert "HTTP 401" in str(e.value) and key not in str(e.value)
    assert other.seen and all(not r["credentials"] for r in other.seen), list(other.seen)
    assert any(r["credentials"] for r in api.seen)  # the origin itself did get it
    assert "another origin" in caplog.text and key not in caplog.text
    # listed in redirect_hosts: the key goes there, the run delivers
    other.seen.clear()
    name2 = write_def(combs_dir, api_comb(f"api_redir2_{uuid.uuid4().hex[:8]}", url, "offset",
                                           redirect_hosts=["localhost"], **moved))
    vault.write_secret(f"honey_combs/{name2}/credentials", {"api_key": key})
    _, extract2 = _extract(name2)
    assert extract2()["records_processed"] == 250
    assert other.seen and all(r["credentials"] for r in other.seen)
    # same origin (a relative Location): the key stays, the run delivers
    api.redirect_to = None
    name3 = write_def(combs_dir, api_comb(f"api_redir3_{uuid.uuid4().hex[:8]}", url, "offset", **moved))
    vault.write_secret(f"honey_combs/{name3}/credentials", {"api_key": key})
    _, extract3 = _extract(name3)
    assert extract3()["records_processed"] == 250


@pytest.mark.parametrize("style", ["cursor", "link", "offset"])
def test_repeating_cursor_or_link_fails_at_once(combs_dir, api_server, style):  # noqa: F811
    api, url = api_server()
    if style == "offset":  # an API that ignores the offset parameter: the same page forever
        api.records = api.records[:100]
        name = write_def(combs_dir, api_comb(f"api_rep_{uuid.uuid4().hex[:8]}", url, style,
                                             endpoint="/v1/indicators/cursor"))
    else:
        api.stuck_pagination = True
        name = write_def(combs_dir, api_comb(f"api_rep_{uuid.uuid4().hex[:8]}", url, style))
    vault.write_secret(f"honey_combs/{name}/credentials", {"api_key": api.api_key})
    _, extract = _extract(name)
    with pytest.raises(AirflowFailException, match="repeats"):
        extract()
    assert api.requests <= 4


def test_sql_errors_fail_at_once_unreachable_source_is_retried(comb_env):
    tmp, _, schema = comb_env
    missing = write_comb(tmp, schema, table=f"{schema}.no_such_table")
    _, extract = _extract(missing, **W)
    with pytest.raises(AirflowFailException, match="does not exist"):
        extract()
    (tmp / "bad_sql.yaml").write_text((tmp / f"{missing}.yaml").read_text().replace(missing, "bad_sql").replace(
        f"table: {schema}.no_such_table", f"table: {schema}.orders\n    query_template: SELEC * FROM ${{table}}"))
    _, extract = _extract("bad_sql", **W)
    with pytest.raises(AirflowFailException, match="syntax error"):
        extract()
    # bad credentials (the machine's server trusts local passwords: an unknown role): deterministic
    vault.write_secret(f"honey_combs/{schema}/bad", {"username": "no_such_role_x", "password": "not-it-123"})
    wrong = write_comb(tmp, schema, vault_path=f"honey_combs/{schema}/bad")
    (tmp / "wrong_pw.yaml").write_text((tmp / f"{wrong}.yaml").read_text().replace(wrong, "wrong_pw"))
    _, extract = _extract("wrong_pw", **W)
    with pytest.raises(AirflowFailException, match="no_such_role_x") as e:
        extract()
    assert "not-it-123" not in str(e.value)
    # connection refused: transient, a plain error Airflow retries with backoff
    unreachable = write_comb(tmp, schema, parameters={"host": "127.0.0.1", "port": 1, "database": "x",
                                                      "connect_timeout": 2})
    (tmp / "unreach.yaml").write_text((tmp / f"{unreachable}.yaml").read_text().replace(unreachable, "unreach"))
    _, extract = _extract("unreach", **W)
    with pytest.raises(Exception) as e:
        extract()
    assert not isinstance(e.value, AirflowFailException) and "cannot connect" in str(e.value)


def test_vault_unreachable_is_retried_missing_secret_is_not(comb_env, monkeypatch):
    from sting_airflow.hooks import HoneyCombVaultHook, SecretNotFoundError, VaultUnavailableError

    with pytest.raises(SecretNotFoundError):
        HoneyCombVaultHook().get_comb_secret("honey_combs/does/not/exist")
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_DOWN", "vault://:root@127.0.0.1:1?auth_type=token&url=http%3A%2F%2F127.0.0.1%3A1"
                       "&kv_engine_version=2&mount_point=secret")
    with pytest.raises(VaultUnavailableError, match="Vault unreachable"):
        HoneyCombVaultHook(vault_conn_id="vault_down").get_comb_secret("sting/scrubbing")

"""A trigger with a conf key the DAG does not declare: refused by the API server with HTTP 400
naming the key, before any run exists (REST and backfill); a run whose parameters are wrong
anyway (`dags test`, a caller that bypasses the API) fails with the key in its note and does not
count toward the comb's auto-pause."""

from __future__ import annotations

import uuid

import pytest

from include.run_params import explain, unknown_conf_keys

DAG = "honey_comb__sample_customers"


def test_unknown_keys_and_their_explanation():
    known = ["mode", "execution_type", "window_start", "window_end"]
    assert unknown_conf_keys({"windw_start": "x", "mode": "snapshot"}, known) == ["windw_start"]
    assert unknown_conf_keys({}, known) == [] and unknown_conf_keys(None, known) == []
    assert unknown_conf_keys(["a"], known) == ["(conf is not an object)"]
    text = explain(DAG, ["windw_start"], known)
    assert "'windw_start' (did you mean 'window_start'?)" in text and "No run was created" in text


@pytest.mark.airflow
def test_rest_trigger_and_backfill_with_an_unknown_key_are_refused_before_a_run_exists(airflow):
    airflow.wait_for_dag(DAG)
    before = {r["dag_run_id"] for r in airflow.runs(DAG)}
    run_id = f"typo_{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError) as e:
        airflow.trigger(DAG, conf={"windw_start": "2026-01-01T00:00:00Z"}, run_id=run_id)
    assert "-> 400" in str(e.value) and "did you mean 'window_start'" in str(e.value), str(e.value)
    with pytest.raises(RuntimeError) as e:
        airflow._req("POST", "/api/v2/backfills", {
            "dag_id": DAG, "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-01T02:00:00Z",
            "dag_run_conf": {"mod": "snapshot"}, "max_active_runs": 1})
    assert "-> 400" in str(e.value) and "'mod'" in str(e.value)
    after = {r["dag_run_id"] for r in airflow.runs(DAG)}
    assert after == before and run_id not in after  # nothing was created
    # declared keys pass the guard (the run itself is Airflow's: only its creation is checked here)
    good = airflow.trigger(DAG, conf={"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T01:00:00Z"},
                           run_id=f"ok_{uuid.uuid4().hex[:8]}")
    assert good["conf"]["window_start"] == "2026-01-01T00:00:00Z"


def test_bad_parameters_do_not_count_toward_auto_pause_and_name_the_key(combs_dir):
    from include.db import connect
    from include.honeycomb.tasks import RunParamsError, begin, finalize_failed
    from include.notifications import failure_streak
    from sting_airflow.operators import load_comb
    from tests.combtools import write_comb

    name = write_comb(combs_dir, f"cg{uuid.uuid4().hex[:8]}")
    comb = load_comb(name)
    keys = []
    for i in range(3):
        key = f"typo_{i}_{uuid.uuid4().hex[:6]}"
        keys.append(key)
        with pytest.raises(RunParamsError, match="windw_start"):
            begin(comb, run_key=key, conf={"windw_start": "2026-01-01T00:00:00Z"})
    with connect() as conn:
        assert failure_streak(conn, name, 3) == 0
    message = finalize_failed(comb, None, run_key=keys[-1])
    assert message and "windw_start" in message

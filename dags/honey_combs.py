"""One DAG per honey comb definition in include/combs/*.yaml (DAG id: honey_comb__<name>). A file
that cannot be loaded, whatever its name or content, becomes that one comb's invalid-config DAG."""

from include.honeycomb.config import comb_files, load_comb_file
from sting_airflow.comb_dag import build_comb_dag, build_invalid_comb_dag

for _path in comb_files():
    try:
        _dag = build_comb_dag(load_comb_file(_path))
    except Exception as _err:  # noqa: BLE001 - one comb's failure must never hide the others
        try:
            _dag = build_invalid_comb_dag(_path, _err)
        except Exception:  # noqa: BLE001,S112
            continue
    globals()[_dag.dag_id] = _dag

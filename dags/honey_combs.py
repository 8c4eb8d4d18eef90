"""One DAG per honey comb definition in include/combs/*.yaml (DAG id: honey_comb__<name>)."""

from include.honeycomb.config import CombConfigError, comb_files, load_comb_file
from sting_airflow.comb_dag import build_comb_dag, build_invalid_comb_dag

for _path in comb_files():
    try:
        _dag = build_comb_dag(load_comb_file(_path))
    except CombConfigError as _err:
        _dag = build_invalid_comb_dag(_path, _err)
    globals()[_dag.dag_id] = _dag

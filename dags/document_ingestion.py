"""Documents into honey jars (DAG id: document_ingestion); also triggered by honey comb outputs."""

from include.honeycomb.config import comb_files, load_comb_file
from sting_airflow.comb_dag import output_asset
from sting_airflow.document_dag import build_document_dag

_assets = []
for _path in comb_files():
    try:
        _comb = load_comb_file(_path)
    except Exception:  # noqa: BLE001,S112 - reported by the comb's own DAG (honey_combs.py)
        continue
    if _comb.configuration.output.embed_text_fields:
        _assets.append(output_asset(_comb))

dag = build_document_dag(_assets)

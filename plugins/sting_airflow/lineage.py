"""OpenLineage for the comb operators: `get_openlineage_facets_on_complete` returns the run's
source -> S3 object -> honey jar datasets (include/lineage.py), each with a `tags` facet carrying
its data classification and the object with its output statistics (rows, bytes). The provider
(apache-airflow-providers-openlineage) emits them with the task's COMPLETE event through the
configured transport (the local stack: a file, .stack/lineage/openlineage.jsonl)."""

from __future__ import annotations


def operator_lineage(described: dict | None):
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset, tags_dataset

    if not described:
        return OperatorLineage()

    def facets(d: dict) -> dict:
        return {"tags": tags_dataset.TagsDatasetFacet(tags=[tags_dataset.TagsDatasetFacetFields(
            key="data_classification", value=d["classification"], source="STING")])}

    inputs = [InputDataset(namespace=d["namespace"], name=d["name"], facets=facets(d)) for d in described["inputs"]]
    outputs = []
    for d in described["outputs"]:
        of = {}
        if d.get("rows") is not None:
            of["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=int(d["rows"]), size=int(d["bytes"]) if d.get("bytes") is not None else None)
        outputs.append(OutputDataset(namespace=d["namespace"], name=d["name"], facets=facets(d), outputFacets=of))
    return OperatorLineage(inputs=inputs, outputs=outputs)


class CombLineageMixin:
    """Operators that publish a comb's output set `self._lineage` in `execute`."""

    _lineage: dict | None = None

    def get_openlineage_facets_on_complete(self, task_instance):  # noqa: ARG002 - the provider's signature
        return operator_lineage(self._lineage)


def report_job_lineage(described: dict) -> None:
    """A job step's inputs and outputs (URIs) to Airflow's hook lineage collector, which the
    OpenLineage provider adds to the task's events. Best effort: lineage never fails a step."""
    import logging

    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.lineage import get_hook_lineage_collector

        collector, ctx = get_hook_lineage_collector(), BaseHook()
        for uri in described.get("inputs") or []:
            collector.add_input_asset(ctx, uri=uri)
        for uri in described.get("outputs") or []:
            collector.add_output_asset(ctx, uri=uri)
    except Exception as e:  # noqa: BLE001
        logging.getLogger("sting.lineage").warning("job lineage not reported: %s", e)

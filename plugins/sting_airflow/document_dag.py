"""The document ingestion DAG: uploads, pending rows and honey comb deliveries into honey jars,
in batches with dynamic task mapping so one slow or bad file holds up nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param, XComArg, task, task_group
from airflow.sdk.definitions.timetables.assets import AssetOrTimeSchedule

from sting_airflow.notify import failure_callbacks
from sting_airflow.operators import EmbeddingUpsertOperator
from sting_airflow.workloads import DOCUMENTS, EMBEDDING


def _background() -> None:
    """Ingestion's steps other than embedding run at a lower CPU priority (nice 10): torch's
    threads do not use all of a worker's cores, and extraction and chunking of the next batches
    take the rest instead of slowing the embedding down."""
    import os

    os.nice(10)


def auto_batch_size(n: int) -> int:
    """16 documents per batch, more when that would make more than 12 batches."""
    return max(16, -(-n // 12))


def build_document_dag(comb_assets: list[Asset]) -> DAG:
    schedule = CronTriggerTimetable("*/15 * * * *", timezone="UTC")
    if comb_assets:  # also run as soon as any honey comb delivers new outputs
        from airflow.sdk import AssetAny

        schedule = AssetOrTimeSchedule(timetable=schedule, assets=AssetAny(*comb_assets))
    with DAG(
        dag_id="document_ingestion",
        description="Documents into honey jars: extract, chunk, embed (all-MiniLM-L6-v2), upsert into Chroma",
        schedule=schedule,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        # Ingestion's steps run in the `documents` pool and embedding in the `embedding` pool (one
        # slot each, plugins/sting_airflow/pools.json): one embed task at a time uses every core
        # (four at once on two cores ran at half speed), prepare of the next batch overlaps it, and
        # ingestion never holds more than two slots, so honey comb runs (which also outrank it:
        # priority 1, absolute) are never queued behind a large ingestion or its backfill.
        default_args={"owner": "sting-data", "retries": 2, "retry_delay": timedelta(seconds=30),
                      **DOCUMENTS.task_args(),
                      "on_failure_callback": failure_callbacks()},
        params={
            "honey_jar_id": Param(None, type=["null", "string"], description="only this jar's pending documents"),
            "document_ids": Param([], type="array", items={"type": "string"},
                                  description="(re)process exactly these documents, whatever their state"),
            "batch_size": Param(None, type=["null", "integer"], minimum=1, maximum=500,
                                description="documents per mapped task; default: 16, or more for large runs so "
                                            "that there are at most 12 batches (fewer tasks to schedule)"),
        },
        tags=["documents", "embeddings", "chroma"],
        doc_md=__doc__,
    ) as dag:

        @task
        def discover_uploads() -> int:
            from include.documents.ingest import discover_uploads as discover

            _background()
            return len(discover())

        @task
        def claim(**context) -> list[list[str]]:
            from include.documents.ingest import batches
            from include.documents.ingest import claim as claim_docs

            p = context["params"]
            ids = claim_docs(jar_id=p.get("honey_jar_id"), document_ids=p.get("document_ids") or None)
            print(f"claimed {len(ids)} documents")
            return batches(ids, int(p.get("batch_size") or auto_batch_size(len(ids))))

        @task_group
        def process_batch(document_ids: list[str]):
            """One batch, mapped as a group: each batch's steps chain on their own, so a slow or
            failed batch holds up no other batch's documents."""

            @task(multiple_outputs=False)
            def prepare(document_ids: list[str], **context) -> dict | None:
                from include.documents.ingest import prepare as prep

                _background()
                result = prep(document_ids, run_key=context["run_id"].replace(":", "_").replace("+", "_"))
                # the plan (ids only) for `complete`; the chunk file's reference for the upsert
                context["ti"].xcom_push(key="plan", value={k: v for k, v in result.items() if k != "chunks_ref"})
                return result["chunks_ref"]

            @task(multiple_outputs=False)
            def complete(plan: dict, upserted: dict) -> dict:
                from include.documents.ingest import complete as done

                return done(plan, upserted)

            chunks = prepare(document_ids)
            upserted = EmbeddingUpsertOperator(task_id="embed_upsert", chunks_ref=chunks, pool=EMBEDDING.pool,
                                               queue=EMBEDDING.queue)
            return complete(XComArg(chunks.operator, key="plan"), upserted.output)

        @task(trigger_rule="all_done")
        def sweep_orphan_vectors() -> int:
            from include.documents.ingest import delete_vectors_of_deleted_documents

            return delete_vectors_of_deleted_documents()

        found = discover_uploads()
        batches = claim()
        found >> batches
        process_batch.expand(document_ids=batches) >> sweep_orphan_vectors()
    return dag

"""DAG integrity: every DAG file imports cleanly, fast, without heavy libraries; comb DAGs have the
expected shape; a bad comb definition is isolated and explained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ("torch", "chromadb", "sentence_transformers", "presidio_analyzer", "presidio_anonymizer",
         "spacy", "pandas", "pyarrow", "adbc_driver_postgresql", "transformers")

PROBE = r"""
import json, runpy, sys, time
from datetime import datetime
import airflow.sdk
from airflow.sdk import DAG, Asset, Param, task
from airflow.timetables.interval import CronDataIntervalTimetable
import airflow.timetables.assets, airflow.timetables.trigger
# Airflow's own lazy imports (DAG/Asset/task machinery) are paid once here, not by the file.
with DAG("warmup", schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"), start_date=datetime(2026, 1, 1),
         params={"p": Param(1, type="integer")}):
    @task(outlets=[Asset(uri="s3://warm/up", name="warmup")])
    def t(): pass
    t()
before = set(sys.modules)
t0 = time.perf_counter()
g = runpy.run_path(sys.argv[1])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "new_modules": sorted(set(sys.modules) - before),
                  "dags": [k for k, v in g.items() if type(v).__name__ == "DAG"]}))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_parses_fast_without_heavy_imports(path, stack):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env,
                         check=True, cwd=REPO)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = [m for m in r["new_modules"] if m.split(".")[0] in HEAVY]
    assert heavy == [], f"{path.name} imports heavy modules at parse time: {heavy[:5]}"
    assert r["dags"], f"{path.name} defines no DAG"
    assert r["seconds"] < 0.3, f"{path.name} took {r['seconds']:.3f}s to parse"
    print(f"{path.name}: {r['seconds'] * 1000:.0f} ms, DAGs {r['dags']}")


def test_dagbag_has_no_import_errors_and_comb_dags_have_the_right_shape(stack):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import CronTriggerTimetable

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["honey_comb__sample_customers"]
    assert type(dag.timetable).__name__ == CronTriggerTimetable.__name__  # logical date X = window ending at X
    assert set(dag.params.keys()) >= {"mode", "execution_type", "window_start", "window_end"}
    # database combs: extract publishes under the comb's delivery lock, queued one at a time
    assert [t.task_id for t in dag.topological_sort()][:3] == ["begin", "extract", "load_honey_jar"]
    assert dag.task_dict["extract"].max_active_tis_per_dag == 1
    assert dag.max_active_runs == 1 and not dag.catchup
    api = bag.dags["honey_comb__sample_threat_feed_api"]
    assert [t.task_id for t in api.topological_sort()][:4] == ["begin", "extract", "write_parquet", "load_honey_jar"]
    assert dag.task_dict["finalize_on_failure"].trigger_rule == "one_failed"
    # every source type has its comb DAG; the Redis stream one acknowledges after the load
    combs = {d.dag_id for d in bag.dags.values() if "honey_comb" in d.tags}
    assert {"honey_comb__sample_assets_mariadb", "honey_comb__sample_threat_feed_api",
            "honey_comb__sample_sessions_files", "honey_comb__sample_events_stream"} <= combs
    stream = bag.dags["honey_comb__sample_events_stream"]
    assert "load_honey_jar" in stream.task_dict["acknowledge"].upstream_task_ids
    scrub = bag.dags["privacy_scrub_object"]
    assert type(scrub.task_dict["scrub"]).__name__ == "PresidioScrubOperator" and scrub.render_template_as_native_obj
    docs = bag.dags["document_ingestion"]
    steps = ("process_batch.prepare", "process_batch.embed_upsert", "process_batch.complete")
    assert set(docs.task_dict) == {"discover_uploads", "claim", *steps, "sweep_orphan_vectors"}
    # one mapped task group per batch: each batch's steps chain on their own
    assert all(docs.task_dict[t].get_closest_mapped_task_group().group_id == "process_batch" for t in steps)
    assert type(docs.task_dict["process_batch.embed_upsert"]).__name__ == "EmbeddingUpsertOperator"
    assert set(docs.params.keys()) == {"honey_jar_id", "document_ids", "batch_size"}
    assert type(docs.timetable).__name__ == "AssetOrTimeSchedule"  # cron + the combs' output Assets


def test_a_bad_comb_definition_is_isolated_and_named(tmp_path, monkeypatch, stack):
    from airflow.dag_processing.dagbag import DagBag

    good = yaml.safe_load((REPO / "include/combs/sample_customers.yaml").read_text())
    (tmp_path / "sample_customers.yaml").write_text(yaml.safe_dump(good))
    bad = json.loads(json.dumps(good, default=str))
    bad["name"] = "broken_comb"
    bad["configuration"]["extraction"]["mode"] = "sometimes"
    (tmp_path / "broken_comb.yaml").write_text(yaml.safe_dump(bad))
    monkeypatch.setenv("STING_COMBS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    assert "honey_comb__sample_customers" in bag.dags
    broken = bag.dags["honey_comb__broken_comb"]
    assert "invalid-config" in broken.tags
    assert "configuration.extraction.mode" in broken.description
    # it runs daily, unpaused from the start, so its failing task notifies until the file is fixed
    assert broken.timetable.expression in ("@daily", "0 0 * * *") and broken.is_paused_upon_creation is False
    assert [t.task_id for t in broken.tasks] == ["invalid_config"]


def test_any_file_name_and_any_content_fails_alone(tmp_path, monkeypatch, stack):
    """A space in the name, an alias bomb, binary garbage, deep nesting, a non-mapping, an
    undecodable file: each becomes its own invalid-config DAG, quickly; the good comb loads."""
    import time

    from airflow.dag_processing.dagbag import DagBag

    good = yaml.safe_load((REPO / "include/combs/sample_customers.yaml").read_text())
    (tmp_path / "sample_customers.yaml").write_text(yaml.safe_dump(good))
    spaced = dict(good, name="my comb")
    (tmp_path / "my comb.yaml").write_text(yaml.safe_dump(spaced))
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")  # ~1 KB, 9^9 strings expanded
    assert len((tmp_path / "bomb.yaml").read_bytes()) < 1500
    (tmp_path / "garbage.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "deep.yaml").write_text("[" * 5000 + "]" * 5000)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "Ünïcode naïve (copy).yaml").write_text("name: [\n")
    monkeypatch.setenv("STING_COMBS_DIR", str(tmp_path))
    t0 = time.monotonic()
    bag = DagBag(dag_folder=str(REPO / "dags"))
    elapsed = time.monotonic() - t0
    assert bag.import_errors == {}
    assert "honey_comb__sample_customers" in bag.dags and "document_ingestion" in bag.dags
    invalid = {d.dag_id: d for d in bag.dags.values() if "invalid-config" in d.tags}
    assert len(invalid) == 6, sorted(invalid)
    bomb_dag = invalid["honey_comb__bomb"]
    assert "alias bomb" in bomb_dag.description
    assert any(i.startswith("honey_comb__my_comb_") for i in invalid)
    assert any(i.startswith("honey_comb__nicode_na_ve_copy_") or i.startswith("honey_comb__") and "copy" in i
               for i in invalid)
    assert elapsed < 30, elapsed


def test_every_task_runs_in_its_workloads_pool_and_queue():
    """Ingestion, extraction and scheduled jobs cannot starve each other: every product task is in
    its workload's pool (none in default_pool), and event_ingestion has a pool of its own."""
    import json

    from airflow.dag_processing.dagbag import DagBag

    pools = json.loads((REPO / "plugins/sting_airflow/pools.json").read_text())
    bag = DagBag(dag_folder=str(REPO / "dags"))
    seen = {}
    for dag in bag.dags.values():
        if "invalid-config" in dag.tags:  # the notice of an invalid comb file: Airflow's default pool
            continue
        for t in dag.tasks:
            assert t.pool in pools, (dag.dag_id, t.task_id, t.pool)
            assert t.weight_rule == "absolute", (dag.dag_id, t.task_id)
            seen.setdefault(t.pool, set()).add(dag.dag_id)
            if "honey_comb" in dag.tags:
                assert (t.pool, t.queue, t.priority_weight) == ("combs", "combs", 10)
    assert seen["events"] == {"event_ingestion"}
    assert {"hourly_aggregation", "backup_postgres", "weekly_ml_training", "retention_sweep"} <= seen["jobs"]
    assert seen["embedding"] == {"document_ingestion"} and "document_ingestion" in seen["documents"]
    embed = bag.dags["document_ingestion"].task_dict["process_batch.embed_upsert"]
    assert (embed.pool, embed.queue) == ("embedding", "documents")
    # the backups of the critical tier go first among the jobs waiting for a slot
    backup = bag.dags["backup_postgres"].task_dict["backup"]
    agg = bag.dags["hourly_aggregation"].tasks[0]
    assert backup.priority_weight > agg.priority_weight

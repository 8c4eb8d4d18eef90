"""`make demo`: trigger the sample combs through Airflow's REST API and show what landed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from include import storage
from include.db import connect
from include.devstack.airflow_api import AirflowAPI
from include.settings import get_settings


def main() -> int:
    api = AirflowAPI()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    runs = {
        # incremental comb: the last 3 days as one explicit window (the sample rows span them)
        "honey_comb__sample_customers": {"window_start": (end - timedelta(days=3)).isoformat(),
                                         "window_end": end.isoformat()},
        # snapshot comb: the whole table into a new jar
        "honey_comb__sample_support_tickets": {},
    }
    triggered = {}
    for dag_id, conf in runs.items():
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
        r = api.trigger(dag_id, conf=conf)
        triggered[dag_id] = r["dag_run_id"]
        print(f"triggered {dag_id} run {r['dag_run_id']} conf={conf}")
    ok = True
    for dag_id, run_id in triggered.items():
        r = api.wait_run(dag_id, run_id, timeout=600)
        print(f"{dag_id} {run_id}: {r['state']}")
        ok &= r["state"] == "success"
    print()
    with connect() as conn:
        rows = conn.execute(
            """
            SELECT c.name AS comb, e.status, e.records_processed, e.records_scrubbed, e.error_message,
                   j.name AS jar, j.document_count, e.metadata->'output'->>'uri' AS uri
              FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
              LEFT JOIN honey_jars j ON j.id = e.target_honey_jar_id
             WHERE e.run_key = ANY(%s)
            """,
            (list(triggered.values()),),
        ).fetchall()
    for row in rows:
        print(f"comb {row['comb']}: {row['status']}, {row['records_processed']} rows "
              f"({row['records_scrubbed']} scrubbed)")
        print(f"  parquet: {row['uri']}")
        print(f"  honey jar: '{row['jar']}' with {row['document_count']} document(s)")
        if row["error_message"]:
            print(f"  error: {row['error_message']}")
    bucket = get_settings().comb_output_bucket
    for comb in ("sample_customers", "sample_support_tickets"):
        keys = [o["Key"] for o in storage.list_keys(bucket, f"{comb}/")]
        print(f"\nParquet objects of comb {comb} in s3://{bucket}: {len(keys)}")
        for k in keys[-5:]:
            print(f"  {k}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

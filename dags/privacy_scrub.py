"""Scrub one object in object storage with the privacy engine, on demand (REST API or UI):
conf {input_uri, output_uri, profile, custom_rules, text_fields, text_entities}."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from sting_airflow.notify import failure_callbacks
from sting_airflow.operators import PresidioScrubOperator
from sting_airflow.workloads import COMBS

with DAG(
    dag_id="privacy_scrub_object",
    description="Scrub a CSV / JSON Lines / Parquet object (s3://...) with a privacy profile",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["privacy"],
    default_args={"on_failure_callback": failure_callbacks(), **COMBS.task_args()},  # extraction and scrubbing's pool
    render_template_as_native_obj=True,  # lists and null stay lists and null
    params={
        "input_uri": Param("s3://user-files/example.csv", type="string", pattern="^s3://[^/]+/.+"),
        "output_uri": Param("s3://user-files/scrubbed/example.csv", type="string", pattern="^s3://[^/]+/.+"),
        "profile": Param("gdpr", type="string", enum=["gdpr", "ccpa", "hipaa", "financial_data"]),
        "custom_rules": Param([], type="array", description='[{"field": "email", "action": "tokenize"}]'),
        "text_fields": Param([], type="array", description="free-text columns (globs) for Presidio"),
        "text_entities": Param(None, type=["null", "array"], description="limit free-text entities"),
    },
) as dag:
    PresidioScrubOperator(
        task_id="scrub",
        input_uri="{{ params.input_uri }}",
        output_uri="{{ params.output_uri }}",
        profile="{{ params.profile }}",
        custom_rules="{{ params.custom_rules }}",
        text_fields="{{ params.text_fields }}",
        text_entities="{{ params.text_entities }}",
        retries=1,
    )

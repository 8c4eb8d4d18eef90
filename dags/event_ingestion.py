"""The scheduled job `event_ingestion` (DAG id: event_ingestion): see include/jobs/event_ingestion.py."""

from include.jobs.event_ingestion import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

"""The scheduled job `hourly_aggregation` (DAG id: hourly_aggregation): see include/jobs/hourly_aggregation.py."""

from include.jobs.hourly_aggregation import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

"""The scheduled job `retention_sweep` (DAG id: retention_sweep): see include/jobs/retention_sweep.py."""

from include.jobs.retention_sweep import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

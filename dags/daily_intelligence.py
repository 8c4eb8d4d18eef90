"""The scheduled job `daily_intelligence` (DAG id: daily_intelligence): see include/jobs/daily_intelligence.py."""

from include.jobs.daily_intelligence import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

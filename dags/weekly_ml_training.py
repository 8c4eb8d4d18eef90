"""The scheduled job `weekly_ml_training` (DAG id: weekly_ml_training): see include/jobs/weekly_ml_training.py."""

from include.jobs.weekly_ml_training import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

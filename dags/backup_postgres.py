"""The scheduled job `backup_postgres` (DAG id: backup_postgres): see include/jobs/backup_postgres.py."""

from include.jobs.backup_postgres import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

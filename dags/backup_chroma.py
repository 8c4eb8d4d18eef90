"""The scheduled job `backup_chroma` (DAG id: backup_chroma): see include/jobs/backup_chroma.py."""

from include.jobs.backup_chroma import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

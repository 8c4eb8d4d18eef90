"""The scheduled job `backup_object_storage` (DAG id: backup_object_storage): see include/jobs/backup_object_storage.py."""

from include.jobs.backup_object_storage import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

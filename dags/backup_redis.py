"""The scheduled job `backup_redis` (DAG id: backup_redis): see include/jobs/backup_redis.py."""

from include.jobs.backup_redis import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

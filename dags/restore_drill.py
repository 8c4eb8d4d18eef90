"""The scheduled job `restore_drill` (DAG id: restore_drill): see include/jobs/restore_drill.py."""

from include.jobs.restore_drill import JOB
from sting_airflow.job_dag import build_job_dag

dag = build_job_dag(JOB)

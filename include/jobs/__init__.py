"""Scheduled jobs: one module per job, each declaring a `JOB` (a `jobs.base.Job`), its steps plain
functions of a `JobContext`. `sting_airflow.job_dag.build_job_dag` turns a job into a DAG (retries,
run records, failure handling); `python -m include.jobs run <job> --start ... --end ...` runs one
interval without Airflow. No Airflow import anywhere in this package."""

JOB_MODULES = {
    "event_ingestion": "include.jobs.event_ingestion",
    "hourly_aggregation": "include.jobs.hourly_aggregation",
    "daily_intelligence": "include.jobs.daily_intelligence",
    "retention_sweep": "include.jobs.retention_sweep",
    "backup_postgres": "include.jobs.backup_postgres",
    "backup_chroma": "include.jobs.backup_chroma",
    "backup_redis": "include.jobs.backup_redis",
    "backup_object_storage": "include.jobs.backup_object_storage",
    "restore_drill": "include.jobs.restore_drill",
    "weekly_ml_training": "include.jobs.weekly_ml_training",
}


def load_job(name: str):
    """The `JOB` of a job module, imported on demand (DAG files import only the one they build)."""
    import importlib

    if name not in JOB_MODULES:
        raise KeyError(f"unknown job '{name}' (known: {', '.join(sorted(JOB_MODULES))})")
    return importlib.import_module(JOB_MODULES[name]).JOB

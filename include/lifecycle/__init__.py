"""Data lifecycle: retention sweeps (include.lifecycle.retention), backups
(include.lifecycle.backup) and restore drills (include.lifecycle.drills), over real tools:
pgBackRest, redis-check-rdb, Chroma's API, S3 versioning. No Airflow import here."""

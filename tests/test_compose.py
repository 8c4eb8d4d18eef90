"""docker-compose.yaml is the production shape of the local stack: it parses, and every service
and setting the code reads is there and points at a service of the file."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import yaml

from include.settings import SEED_BUCKETS, Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
           "airflow-worker-documents"]

# Settings field -> the environment variable include/settings.py reads it from.
SETTING_ENV = {
    "pg_host": "STING_PG_HOST", "pg_port": "STING_PG_PORT", "pg_user": "STING_PG_USER", "app_db": "STING_APP_DB",
    "airflow_db": "STING_AIRFLOW_DB", "vault_addr": "VAULT_ADDR",
    "s3_endpoint": "STING_S3_ENDPOINT", "s3_access_key": "AWS_ACCESS_KEY_ID", "s3_secret_key": "AWS_SECRET_ACCESS_KEY",
    "s3_region": "AWS_DEFAULT_REGION", "comb_output_bucket": "STING_COMB_OUTPUT_BUCKET", "redis_url": "STING_REDIS_URL",
    "chroma_host": "STING_CHROMA_HOST", "chroma_port": "STING_CHROMA_PORT", "airflow_url": "STING_AIRFLOW_URL",
    "app_pg_host": "STING_APP_PG_HOST", "app_pg_port": "STING_APP_PG_PORT", "backup_bucket": "STING_BACKUP_BUCKET",
    "archive_bucket": "STING_ARCHIVE_BUCKET", "pgbackrest_config": "STING_PGBACKREST_CONFIG",
    "pgbackrest_stanza": "STING_PGBACKREST_STANZA", "s3_tls_endpoint": "STING_S3_TLS_ENDPOINT",
    "notify_emails": "STING_NOTIFY_EMAILS",
}
# Used by the local stack and the tests only (sample sources); production combs name their own hosts.
LOCAL_ONLY = {"sample_source_db", "stack_dir", "mysql_host", "mysql_port", "nats_url", "sample_api_url",
              # the sample threat feeds of the local stack (production feeds name their URLs in include/feeds/)
              "taxii_url", "feed_server_url",
              # the stack's seeding and the CLI; tasks read Vault through the hook (AppRole in production)
              "vault_token", "staging_max_age",
              # the stack's notification sink; production names its relay and webhook in the connections
              "smtp_url", "notify_sink_url"}


def test_settings_map_is_complete():
    src = (REPO / "include/settings.py").read_text()
    for f in fields(Settings):
        if f.name in LOCAL_ONLY:
            continue
        assert f.name in SETTING_ENV, f"add {f.name} to the compose check"
        assert f'"{SETTING_ENV[f.name]}"' in src


def test_services_of_the_production_shape():
    assert {"postgres", "redis", "vault", "minio", "minio-buckets", "chroma", "airflow-init", *AIRFLOW} <= set(SERVICES)
    cmds = {s: " ".join(SERVICES[s]["command"]) for s in AIRFLOW}
    assert cmds == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                    "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                    "airflow-worker": "celery worker --queues default,events,combs,jobs",
                    "airflow-worker-documents": "celery worker --queues documents --concurrency 2"}
    # the documents worker loads the embedding model once; the other one does not need it
    assert "sting_airflow.preload" in " ".join(SERVICES["airflow-worker-documents"]["entrypoint"])
    assert "entrypoint" not in SERVICES["airflow-worker"]
    init = " ".join(SERVICES["airflow-init"]["command"])
    assert "airflow db migrate" in init and "include.devstack.stack migrate-app" in init
    pools = init.split("airflow pools import ", 1)[1].split()[0]  # the pools the DAGs name, from the image
    assert pools == "/opt/airflow/plugins/sting_airflow/pools.json"
    assert set(json.loads((REPO / "plugins/sting_airflow/pools.json").read_text())) == {
        "events", "combs", "jobs", "embedding", "documents"}
    assert SERVICES["chroma"]["image"].endswith(":1.5.9")
    assert SERVICES["airflow-apiserver"]["image"].endswith(":3.3.2")


def test_every_airflow_service_has_the_environment_the_code_reads():
    for name in AIRFLOW + ["airflow-init"]:
        env = SERVICES[name]["environment"]
        for var in SETTING_ENV.values():
            assert var in env, f"{name} lacks {var}"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__SECRETS__BACKEND"].endswith("hashicorp.secrets.vault.VaultBackend")
        assert "AIRFLOW_CONN_VAULT_DEFAULT" in env and env["PYTHONPATH"] == "/opt/airflow:/opt/airflow/plugins"
        for conn in ("SMTP_DEFAULT", "STING_NOTIFY_WEBHOOK", "STING_AIRFLOW_API"):  # notifications, notes, pausing
            assert f"AIRFLOW_CONN_{conn}" in env
        assert json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])["type"] and env["AIRFLOW__OPENLINEAGE__NAMESPACE"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        # every host the code talks to is a service of this file
        for var in ("STING_PG_HOST", "STING_CHROMA_HOST"):
            assert env[var] in SERVICES
        for var in ("VAULT_ADDR", "STING_S3_ENDPOINT", "STING_REDIS_URL", "STING_AIRFLOW_URL"):
            host = re.match(r"\w+://([^:/]+)", env[var]).group(1)
            assert host in SERVICES, (name, var, host)


def test_application_database_archives_wal_with_pgbackrest():
    pg = SERVICES["postgres"]
    cmd = " ".join(pg["command"])
    assert "archive_mode=on" in cmd and "pgbackrest --stanza=sting archive-push %p" in cmd and "wal_level=replica" in cmd
    assert "pgbackrest" in (REPO / pg["build"] / "Dockerfile").read_text()
    assert any("pgbackrest.conf" in v for v in pg["volumes"])
    for conf in ("pgbackrest.conf", "pgbackrest-worker.conf"):
        text = (REPO / "deploy/pgbackrest" / conf).read_text()
        assert "repo1-type=s3" in text and "repo1-retention-full=30" in text
        assert "key-secret=" not in text.replace("PGBACKREST_REPO1_S3_KEY_SECRET", ""), "the S3 secret comes from the environment"
    env = SERVICES["airflow-worker"]["environment"]
    assert env["STING_PGBACKREST_CONFIG"].endswith("pgbackrest-worker.conf")
    assert "s3-tls" in SERVICES and env["STING_S3_TLS_ENDPOINT"].startswith("https://s3-tls:")


def test_buckets_of_the_seed_are_created():
    script = " ".join(SERVICES["minio-buckets"]["command"])
    for b in (*SEED_BUCKETS, "sting-comb-outputs", "sting-backups", "sting-archive"):
        assert b in script
    from include.classification import BUCKETS  # every bucket tagged with its data class, as in the stack

    tagged = {}
    for m in re.finditer(r"for b in ([^;]+);\s*do mc tag set sting/\$\$b \"data-classification=(\w+)\"", script):
        tagged.update(dict.fromkeys(m.group(1).split(), m.group(2)))
    for m in re.finditer(r"mc tag set sting/([\w-]+) \"data-classification=(\w+)\"", script):
        tagged[m.group(1)] = m.group(2)
    assert tagged == BUCKETS
    assert "for b in ai-models threat-intel user-files sting-archive; do mc version enable sting/$$b" in script


def test_dockerfile_ships_the_project():
    df = (REPO / "Dockerfile").read_text()
    assert "apache/airflow:3.3.2" in df and "-c /opt/sting/constraints.txt" in df
    for d in ("dags", "plugins", "include", "sql"):
        assert f"COPY --chown=airflow:0 {d} " in df

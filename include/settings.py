"""Where the services are. One place, read from the environment, defaulting to the local stack.

Nothing here opens a connection; importing this module is cheap (DAG files may import it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Buckets of the seed's object-storage layout, plus one for honey comb outputs.
SEED_BUCKETS = ("honeyjar-logs", "event-payloads", "threat-intel", "ai-models", "user-files")
COMB_OUTPUT_BUCKET_DEFAULT = "sting-comb-outputs"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    pg_host: str
    pg_port: int
    pg_user: str
    app_db: str
    airflow_db: str
    sample_source_db: str
    vault_addr: str
    vault_token: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    comb_output_bucket: str
    redis_url: str
    chroma_host: str
    chroma_port: int
    airflow_url: str
    stack_dir: Path
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    nats_url: str = "nats://127.0.0.1:4222"
    sample_api_url: str = "http://127.0.0.1:8765"
    taxii_url: str = "http://127.0.0.1:6100"
    feed_server_url: str = "http://127.0.0.1:8766"
    # failure notifications: the local stack's SMTP server and webhook receiver (the Airflow
    # connections smtp_default and sting_notify_webhook point there), and who gets the mails
    smtp_url: str = "smtp://127.0.0.1:8025"
    notify_sink_url: str = "http://127.0.0.1:8027"
    notify_emails: tuple[str, ...] = ("sting-ops@localhost",)
    # Staging objects and incomplete uploads older than this are leftovers of killed runs (a run's
    # task times out after 2 hours, so nothing alive is that old).
    staging_max_age: timedelta = timedelta(hours=6)
    # The application database's server (Airflow's metadata too): in the local stack a cluster the
    # stack controls (WAL archived by pgBackRest), not the machine's shared server (which keeps the
    # sample source databases).
    app_pg_host: str = "127.0.0.1"
    app_pg_port: int = 5433
    backup_bucket: str = "sting-backups"
    archive_bucket: str = "sting-archive"  # retention's cold tier (events, vectors)
    pgbackrest_config: Path | None = None
    pgbackrest_stanza: str = "sting"
    # pgBackRest speaks only HTTPS to S3: the local stack puts a TLS terminator before moto.
    s3_tls_endpoint: str = "https://localhost:9443"

    @property
    def app_dsn(self) -> str:
        return self.app_server_dsn(self.app_db)

    def app_server_dsn(self, database: str) -> str:
        return f"postgresql://{self.pg_user}@{self.app_pg_host}:{self.app_pg_port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database}"


def get_settings() -> Settings:
    return Settings(
        pg_host=_env("STING_PG_HOST", "127.0.0.1"),
        pg_port=int(_env("STING_PG_PORT", "5432")),
        pg_user=_env("STING_PG_USER", "postgres"),
        app_db=_env("STING_APP_DB", "sting"),
        airflow_db=_env("STING_AIRFLOW_DB", "airflow"),
        sample_source_db=_env("STING_SAMPLE_SOURCE_DB", "sting_sample_source"),
        vault_addr=_env("VAULT_ADDR", "http://127.0.0.1:8200"),
        vault_token=_env("VAULT_TOKEN", "root"),
        s3_endpoint=_env("STING_S3_ENDPOINT", "http://127.0.0.1:9000"),
        s3_access_key=_env("AWS_ACCESS_KEY_ID", "sting-local"),
        s3_secret_key=_env("AWS_SECRET_ACCESS_KEY", "sting-local-secret"),
        s3_region=_env("AWS_DEFAULT_REGION", "us-east-1"),
        comb_output_bucket=_env("STING_COMB_OUTPUT_BUCKET", COMB_OUTPUT_BUCKET_DEFAULT),
        redis_url=_env("STING_REDIS_URL", "redis://127.0.0.1:6379/0"),
        chroma_host=_env("STING_CHROMA_HOST", "127.0.0.1"),
        chroma_port=int(_env("STING_CHROMA_PORT", "8000")),
        airflow_url=_env("STING_AIRFLOW_URL", "http://127.0.0.1:8080"),
        stack_dir=Path(_env("STING_STACK_DIR", str(REPO_ROOT / ".stack"))),
        mysql_host=_env("STING_MYSQL_HOST", "127.0.0.1"),
        mysql_port=int(_env("STING_MYSQL_PORT", "3306")),
        nats_url=_env("STING_NATS_URL", "nats://127.0.0.1:4222"),
        sample_api_url=_env("STING_SAMPLE_API_URL", "http://127.0.0.1:8765"),
        taxii_url=_env("STING_TAXII_URL", "http://127.0.0.1:6100"),
        feed_server_url=_env("STING_FEED_SERVER_URL", "http://127.0.0.1:8766"),
        smtp_url=_env("STING_SMTP_URL", "smtp://127.0.0.1:8025"),
        notify_sink_url=_env("STING_NOTIFY_SINK_URL", "http://127.0.0.1:8027"),
        notify_emails=tuple(x.strip() for x in _env("STING_NOTIFY_EMAILS", "sting-ops@localhost").split(",") if x.strip()),
        staging_max_age=timedelta(seconds=float(_env("STING_STAGING_MAX_AGE_SECONDS", "21600"))),
        app_pg_host=_env("STING_APP_PG_HOST", _env("STING_PG_HOST", "127.0.0.1")),
        app_pg_port=int(_env("STING_APP_PG_PORT", "5433")),
        backup_bucket=_env("STING_BACKUP_BUCKET", "sting-backups"),
        archive_bucket=_env("STING_ARCHIVE_BUCKET", "sting-archive"),
        pgbackrest_config=Path(_env("STING_PGBACKREST_CONFIG",
                                    str(Path(_env("STING_STACK_DIR", str(REPO_ROOT / ".stack"))) / "pgbackrest" / "pgbackrest.conf"))),
        pgbackrest_stanza=_env("STING_PGBACKREST_STANZA", "sting"),
        s3_tls_endpoint=_env("STING_S3_TLS_ENDPOINT", "https://localhost:9443"),
    )

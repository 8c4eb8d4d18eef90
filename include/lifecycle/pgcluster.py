"""A PostgreSQL cluster this code controls (initdb, start, stop), and pgBackRest on it.

Used for the local stack's application database (a cluster with WAL archiving on, which the
machine's shared server cannot be reconfigured for) and for the restore drills' scratch clusters on
loopback ports. PostgreSQL refuses to run as root: when this process is root, every server and
pgBackRest command runs as the cluster's owner (the `postgres` OS user).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
# (a scratch cluster needs the major version of the backup: the first that holds it is used)


class ClusterError(RuntimeError):
    pass


def pg_bin_dir() -> Path:
    for d in PG_BIN_CANDIDATES:
        if (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterError("no PostgreSQL server binaries (initdb) found: install Debian's postgresql-15")


def os_user() -> str | None:
    """The OS user servers run as: None (this process's user) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as e:
        raise ClusterError("running as root and there is no 'postgres' OS user to own a cluster") from e
    return "postgres"


def run_as(argv: list[str], user: str | None, timeout: float = 600, env: dict | None = None,
           check: bool = True, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run a command as `user` (None: as ourselves), output captured. Errors name the command and
    carry the end of its output (pgBackRest and pg_ctl never print secrets)."""
    p = subprocess.run(argv, user=user, capture_output=True, text=True, timeout=timeout,
                       env=env or _clean_env(), cwd=cwd or "/")
    if check and p.returncode != 0:
        tail = (p.stdout + p.stderr)[-2000:]
        raise ClusterError(f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed (exit {p.returncode}): {tail}")
    return p


def _clean_env() -> dict:
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    return env


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    for root, _dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


@dataclass
class PgCluster:
    """One cluster: its data directory, loopback port and socket directory."""

    datadir: Path
    port: int
    host: str = "127.0.0.1"
    bin_dir: Path = field(default_factory=pg_bin_dir)
    user: str | None = field(default_factory=os_user)

    @property
    def sockdir(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.sock"

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def initdb(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.datadir.chmod(0o700)
        chown_tree(self.datadir, self.user)
        run_as([self._bin("initdb"), "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "--data-checksums"], self.user, timeout=120)

    def write_conf(self, settings: dict[str, str], merge: bool = False) -> None:
        """Settings in `sting.conf` (included once from postgresql.conf); `merge` keeps the settings
        already there that `settings` does not name (a restored cluster keeps its primary's)."""
        conf = self.datadir / "sting.conf"
        if merge and conf.exists():
            old = {}
            for line in conf.read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    k, v = line.split("=", 1)
                    old[k.strip()] = v.strip().strip("'").replace("''", "'")
            settings = {**old, **settings}
        conf.write_text("".join(f"{k} = {_quote(v)}\n" for k, v in settings.items()))
        main = self.datadir / "postgresql.conf"
        text = main.read_text()
        if "include_if_exists = 'sting.conf'" not in text:
            main.write_text(text + "\ninclude_if_exists = 'sting.conf'\n")
        chown_tree(self.datadir, self.user)

    def running(self) -> bool:
        p = run_as([self._bin("pg_ctl"), "-D", str(self.datadir), "status"], self.user, check=False)
        return p.returncode == 0

    def start(self, timeout: float = 120) -> None:
        self.sockdir.mkdir(parents=True, exist_ok=True)
        self.logfile.touch()
        for p in (self.sockdir, self.logfile):
            chown_tree(p, self.user)
        run_as([self._bin("pg_ctl"), "-D", str(self.datadir), "-w", "-t", str(int(timeout)), "-l", str(self.logfile),
                "-o", f"-h {self.host} -p {self.port} -k {self.sockdir}", "start"], self.user, timeout=timeout + 10)

    def stop(self, mode: str = "fast") -> None:
        if self.datadir.exists() and self.running():
            run_as([self._bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"], self.user, timeout=120)

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the server accepts connections and has left recovery (a restore promotes)."""
        import psycopg

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=3, autocommit=True) as c:
                    if not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return
            except psycopg.OperationalError as e:
                last = e
            time.sleep(0.3)
        tail = self.logfile.read_text(errors="replace")[-1500:] if self.logfile.exists() else ""
        raise ClusterError(f"cluster {self.datadir} on port {self.port} not ready after {timeout:.0f}s "
                           f"({last}); end of its log:\n{tail}")


def _quote(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


@dataclass
class PgBackRest:
    """pgBackRest with one stanza, its configuration file naming the repository (S3)."""

    config: Path
    stanza: str = "sting"
    user: str | None = field(default_factory=os_user)
    binary: str = "pgbackrest"

    def cmd(self, command: str, *opts: str, timeout: float = 3600, check: bool = True) -> subprocess.CompletedProcess:
        return run_as([self.binary, f"--config={self.config}", f"--stanza={self.stanza}", *opts, command],
                      self.user, timeout=timeout, check=check)

    def info(self) -> dict:
        p = self.cmd("info", "--output=json", timeout=120)
        data = json.loads(p.stdout)
        return data[0] if data else {}

    def backups(self) -> list[dict]:
        return list(self.info().get("backup", []))

    def backup(self, kind: str) -> dict:
        """A `full`, `diff` or `incr` backup; returns pgBackRest's record of it."""
        if kind not in ("full", "diff", "incr"):
            raise ValueError(f"unknown backup type {kind!r} (full, diff, incr)")
        before = {b["label"] for b in self.backups()}
        p = self.cmd("backup", f"--type={kind}")
        new = [b for b in self.backups() if b["label"] not in before]
        if not new:
            raise ClusterError(f"pgbackrest backup --type={kind} reported no new backup: {p.stdout[-500:]}")
        rec = new[-1]
        rec["tool_output"] = (p.stdout + p.stderr)[-4000:]
        return rec

    def restore(self, target_dir: Path, *, target_time: str | None = None, set_label: str | None = None
                ) -> subprocess.CompletedProcess:
        """Restore into `target_dir` (a new, empty directory): to a point in time when given (the
        restored cluster promotes there), else to the end of the archived WAL."""
        target_dir.mkdir(parents=True, exist_ok=True)
        target_dir.chmod(0o700)
        chown_tree(target_dir, self.user)
        # restoring runs here even when the configuration names a remote database host (a
        # repository host drilling into a scratch directory): --reset-pg1-host
        opts = [f"--pg1-path={target_dir}", "--reset-pg1-host"]
        if set_label:
            opts.append(f"--set={set_label}")
        if target_time:
            opts += ["--type=time", f"--target={target_time}", "--target-action=promote"]
        return self.cmd("restore", *opts, timeout=3600)

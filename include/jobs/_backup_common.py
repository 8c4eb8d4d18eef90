"""What the backup and drill jobs share: the pgBackRest handle and the drills' scratch directory."""

from __future__ import annotations

import tempfile
from pathlib import Path


def pgbackrest():
    from include.lifecycle.pgcluster import PgBackRest
    from include.settings import get_settings

    s = get_settings()
    return PgBackRest(s.pgbackrest_config, s.pgbackrest_stanza)


def scratch_dir() -> Path:
    """A private directory for a drill's scratch servers (traversable by the postgres OS user)."""
    from include.settings import get_settings

    base = get_settings().stack_dir / "drills"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    d = Path(tempfile.mkdtemp(prefix="drill-", dir=base))
    d.chmod(0o755)
    return d

"""Errors of a comb run, by kind: a deterministic error (bad SQL, a missing table, wrong
credentials, 401/403, a missing bucket, an invalid response) fails at once, since retrying hits the
source again for nothing; a transient one (connection refused, timeouts, 5xx, 429, Vault
unreachable) is retried with backoff."""

from __future__ import annotations

import re

# SQLSTATE classes that no retry can fix: syntax / undefined objects / privileges (42), invalid
# authorization (28), invalid catalog or schema (3D, 3F), data exceptions (22), unsupported (0A).
_PERMANENT_SQLSTATE = ("42", "28", "3D", "3F", "22", "0A", "2B", "44")
_SQLSTATE = re.compile(r"SQLSTATE:?\s*([0-9A-Z]{5})")
# MySQL/MariaDB: access denied, unknown database/table/column, syntax, privileges.
_PERMANENT_MYSQL = {1044, 1045, 1046, 1049, 1054, 1064, 1142, 1143, 1146, 1149, 1227, 1370, 1698}
_PERMANENT_S3 = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName",
                 "AllAccessDisabled"}


class CombError(RuntimeError):
    """A comb step failed; `permanent` says whether a retry could succeed."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def pg_permanent(message: str) -> bool:
    m = _SQLSTATE.search(message)
    if m:
        return m.group(1)[:2] in _PERMANENT_SQLSTATE
    return any(t in message for t in ("password authentication failed", "does not exist", "does not support SSL",
                                      "no pg_hba.conf entry", "certificate verify failed"))


def mysql_permanent(err: BaseException) -> bool:
    code = err.args[0] if err.args and isinstance(err.args[0], int) else None
    return code in _PERMANENT_MYSQL


def http_permanent(status: int) -> bool:
    """4xx but 408 (timeout) and 429 (rate limit) are the client's fault: retrying repeats them."""
    return 400 <= status < 500 and status not in (408, 425, 429)


def is_permanent(exc: BaseException) -> bool:
    if getattr(exc, "permanent", False):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        return response.get("Error", {}).get("Code") in _PERMANENT_S3
    return False

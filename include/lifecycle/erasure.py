"""Erasure that reaches every copy an object has in object storage: every version of the key
(and its delete markers) on a versioned bucket, and the same in its replica bucket
(`<bucket>-replica`, include/lifecycle/backup.py). A plain DeleteObject on a versioned bucket only
adds a delete marker: every earlier version stays readable (also on real S3 and MinIO), and the
replica keeps its own copies. Takes a boto3 S3 client; no Airflow."""

from __future__ import annotations

from collections.abc import Iterable

REPLICA_SUFFIX = "-replica"


def _versions(s3, bucket: str, key: str) -> list[dict]:
    """Every version and delete marker of exactly `key`."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for kind in ("Versions", "DeleteMarkers"):
            out += [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get(kind, []) if v["Key"] == key]
    return out


def _bucket_exists(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except Exception:  # noqa: BLE001 - missing or not ours: nothing to erase there
        return False


def erase_keys(s3, bucket: str, keys: Iterable[str], replicas: bool = True) -> dict:
    """Delete every version of each key in `bucket` and in its replica. Returns what was removed:
    {"objects", "versions", "replica_versions"} (versions include delete markers)."""
    keys = list(dict.fromkeys(keys))
    counts = {"objects": len(keys), "versions": 0, "replica_versions": 0}
    targets = [(bucket, "versions")]
    if replicas and not bucket.endswith(REPLICA_SUFFIX) and _bucket_exists(s3, bucket + REPLICA_SUFFIX):
        targets.append((bucket + REPLICA_SUFFIX, "replica_versions"))
    for b, counter in targets:
        doomed: list[dict] = []
        for k in keys:
            vs = _versions(s3, b, k)
            doomed += vs or ([{"Key": k}] if b == bucket else [])  # an unversioned bucket: the key itself
            counts[counter] += len(vs)
        for i in range(0, len(doomed), 1000):
            r = s3.delete_objects(Bucket=b, Delete={"Objects": doomed[i:i + 1000], "Quiet": True})
            errors = r.get("Errors") or []
            if errors:
                e = errors[0]
                raise RuntimeError(f"erasure in s3://{b}: {len(errors)} deletion(s) failed, first: {e.get('Key')} "
                                   f"{e.get('Code')} {e.get('Message')}")
    return counts


def remaining_copies(s3, bucket: str, key: str) -> dict:
    """Versions of `key` left in the bucket and its replica (for tests and the audit)."""
    out = {"versions": len(_versions(s3, bucket, key)), "replica_versions": 0}
    if _bucket_exists(s3, bucket + REPLICA_SUFFIX):
        out["replica_versions"] = len(_versions(s3, bucket + REPLICA_SUFFIX, key))
    return out

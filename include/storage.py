"""S3-compatible object storage (MinIO in production, moto's server locally)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from include.settings import get_settings


@functools.lru_cache(maxsize=4)
def _client(endpoint: str, key: str, secret: str, region: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )


def s3_client():
    s = get_settings()
    return _client(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_region)


def ensure_bucket(bucket: str, versioned: bool = False) -> None:
    c = s3_client()
    try:
        c.head_bucket(Bucket=bucket)
    except c.exceptions.ClientError:
        c.create_bucket(Bucket=bucket)
    if versioned:
        c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def list_keys(bucket: str, prefix: str) -> Iterator[dict]:
    paginator = s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def exists(bucket: str, key: str) -> bool:
    c = s3_client()
    try:
        c.head_object(Bucket=bucket, Key=key)
        return True
    except c.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def delete(bucket: str, key: str) -> None:
    s3_client().delete_object(Bucket=bucket, Key=key)


def uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"

"""S3-compatible object storage (MinIO in production, moto's server locally)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

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


@functools.lru_cache(maxsize=4)
def _arrow_fs(endpoint: str, key: str, secret: str, region: str):
    from pyarrow import fs

    scheme, host = endpoint.split("://", 1)
    return fs.S3FileSystem(access_key=key, secret_key=secret, endpoint_override=host, scheme=scheme,
                           region=region, background_writes=True)


def arrow_fs():
    """pyarrow's S3 filesystem (C++ multipart uploads in background threads): lets a Parquet
    writer stream to object storage while the extraction is still running."""
    s = get_settings()
    return _arrow_fs(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_region)


class HashingSink:
    """File-like wrapper that SHA-256s what goes through it (the content hash of the object)."""

    def __init__(self, out):
        self.out, self.sha256, self.size, self.closed = out, hashlib.sha256(), 0, False

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@contextmanager
def staged_upload(bucket: str, key: str, also_delete: tuple[str, ...] = ()) -> Iterator[HashingSink]:
    """A streaming (multipart) upload to bucket/key, as a hashing file-like sink. If the block
    fails, the object (and `also_delete`, e.g. a sidecar written in the block) is deleted."""
    try:
        with arrow_fs().open_output_stream(f"{bucket}/{key}") as stream:
            sink = HashingSink(stream)
            yield sink
    except BaseException:
        for k in (key, *also_delete):
            try:
                delete(bucket, k)
            except Exception:  # nothing staged, or storage down: the original error matters
                pass
        raise


class MultipartSink:
    """A write-only, hashing file-like object that streams to bucket/key as an S3 multipart upload:
    parts go out in background threads while the writer keeps producing, and the object appears
    only when `complete()` succeeds, atomically replacing what was there. `abort()` leaves the
    previous object untouched and no incomplete upload behind. (pyarrow's S3 stream cannot be
    aborted: closing it after a failure publishes the partial object.) Objects smaller than
    one part are written with a single PUT."""

    def __init__(self, bucket: str, key: str, part_size: int = 16 * 1024 * 1024, max_in_flight: int = 3,
                 metadata: dict[str, str] | None = None):
        from concurrent.futures import ThreadPoolExecutor

        self.bucket, self.key, self.part_size, self.max_in_flight = bucket, key, part_size, max_in_flight
        self.metadata = dict(metadata or {})  # the object's user metadata (e.g. its data classification)
        self.client = s3_client()
        self.sha256, self.size, self.closed = hashlib.sha256(), 0, False
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._futures: list = []
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="sting-s3-part")

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self._buf += data
        if len(self._buf) >= self.part_size:
            self._send_part(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:  # the Parquet writer closes its sink; completion is explicit
        pass

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                                  Metadata=self.metadata)["UploadId"]
        in_flight = [f for f in self._futures if not f.done()]
        if len(in_flight) >= self.max_in_flight:  # bounded memory: wait for the oldest part
            in_flight[0].result()
        n = len(self._futures) + 1
        self._futures.append(self._pool.submit(
            lambda: {"PartNumber": n, "ETag": self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=n, Body=body)["ETag"]}))

    def complete(self) -> None:
        try:
            if self._upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self._buf), Metadata=self.metadata)
            else:
                if self._buf:
                    self._send_part(bytes(self._buf))
                parts = [f.result() for f in self._futures]
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                                      MultipartUpload={"Parts": parts})
        finally:
            self._pool.shutdown(wait=True)
            self.closed = True

    def abort(self) -> None:
        for f in self._futures:
            f.cancel()
        self._pool.shutdown(wait=True)
        if self._upload_id is not None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            except Exception:  # storage down: the sweep of old incomplete uploads removes it later
                pass
        self.closed = True


@contextmanager
def atomic_upload(bucket: str, key: str, metadata: dict[str, str] | None = None) -> Iterator[MultipartSink]:
    """Write bucket/key through a hashing sink; the object is replaced only if the block succeeds."""
    sink = MultipartSink(bucket, key, metadata=metadata)
    try:
        yield sink
    except BaseException:
        sink.abort()
        raise
    try:
        sink.complete()
    except BaseException:
        sink.abort()
        raise


def s3_client():
    s = get_settings()
    return _client(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_region)


def ensure_bucket(bucket: str, versioned: bool = False, classification: str | None = None) -> None:
    c = s3_client()
    try:
        c.head_bucket(Bucket=bucket)
    except c.exceptions.ClientError:
        c.create_bucket(Bucket=bucket)
    if versioned:
        c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if classification:  # the bucket's data class, as a tag (include/classification.py)
        c.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "data-classification",
                                                                  "Value": classification}]})


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


def abort_uploads(bucket: str, prefix: str, older_than: timedelta | None = None, exact: bool = False) -> int:
    """Abort incomplete multipart uploads under `prefix` (only `prefix` itself if `exact`), those
    initiated more than `older_than` ago when given (left by killed writers). Returns how many."""
    c = s3_client()
    now = datetime.now(UTC)
    n = 0
    for page in c.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for u in page.get("Uploads", []):
            if exact and u["Key"] != prefix:
                continue
            if older_than is not None and now - u["Initiated"] < older_than:
                continue
            c.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
            n += 1
    return n


def sweep(bucket: str, prefix: str, older_than: timedelta) -> dict:
    """Remove what killed writers left under a staging prefix: objects and incomplete multipart
    uploads older than `older_than`."""
    now = datetime.now(UTC)
    objects = 0
    for o in list(list_keys(bucket, prefix)):
        if now - o["LastModified"] >= older_than:
            delete(bucket, o["Key"])
            objects += 1
    return {"objects": objects, "uploads": abort_uploads(bucket, prefix, older_than)}


def delete(bucket: str, key: str) -> None:
    s3_client().delete_object(Bucket=bucket, Key=key)


def uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"

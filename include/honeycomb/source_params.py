"""Typed `connection.parameters` for each comb type/subtype. Light (pydantic only): DAG files
validate comb definitions with it at parse time."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostgresParameters(_Strict):
    host: str
    port: int = 5432
    database: str
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    connect_timeout: int = Field(default=10, ge=1, le=300)


class MySQLParameters(_Strict):
    host: str
    port: int = 3306
    database: str
    connect_timeout: int = Field(default=10, ge=1, le=300)
    ssl: bool = False


class ApiAuth(_Strict):
    type: Literal["none", "api_key", "bearer", "basic"] = "none"
    header: str = Field(default="X-API-Key", description="api_key: the header carrying the key")


class ApiPagination(_Strict):
    type: Literal["none", "offset", "page", "cursor", "link"] = "none"
    page_size: int = Field(default=100, ge=1, le=10_000)
    size_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    first_page: int = 1
    cursor_param: str = "cursor"
    next_cursor_path: str = Field(default="next_cursor", description="dotted path of the next cursor in the body")
    max_pages: int = Field(default=10_000, ge=1)
    stop_on_short_page: bool = Field(default=False, description="offset/page: a page shorter than page_size is "
                                     "the last (saves a request; only if the API never caps the size)")


class ApiRetry(_Strict):
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0)
    max_backoff_seconds: float = Field(default=30.0, ge=0)


class ApiParameters(_Strict):
    base_url: str = Field(pattern=r"^https?://")
    endpoint: str = "/"
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, description="static query parameters")
    headers: dict[str, str] = Field(default_factory=dict)
    records_path: str | None = Field(default=None, description="dotted path of the record list in the body; "
                                                                "null = the body is the list")
    auth: ApiAuth = Field(default_factory=ApiAuth)
    pagination: ApiPagination = Field(default_factory=ApiPagination)
    incremental_param: str | None = Field(default=None, description="query parameter that takes the last cursor "
                                                                     "value (e.g. updated_since)")
    requests_per_second: float | None = Field(default=None, gt=0, description="client-side rate limit")
    retry: ApiRetry = Field(default_factory=ApiRetry)
    timeout_seconds: float = Field(default=30.0, gt=0)
    redirect_hosts: list[str] = Field(default_factory=list, description="hosts a redirect may take the "
                                      "credentials to (besides the base_url's origin); a redirect elsewhere is "
                                      "followed without them")
    max_redirects: int = Field(default=5, ge=0, le=20)


class FileParameters(_Strict):
    path: str | None = Field(default=None, description="local folder (file_system/local)")
    bucket: str | None = Field(default=None, description="bucket (file_system/s3)")
    prefix: str = ""
    pattern: str = Field(default="*", description="glob over the path relative to the folder/prefix, e.g. "
                                                  "'**/*.csv'")
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    csv_delimiter: str = Field(default=",", min_length=1, max_length=1)
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1)


class RedisStreamParameters(_Strict):
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    stream: str = Field(min_length=1)
    group: str | None = Field(default=None, description="consumer group (default: sting_<comb>)")
    consumer: str = "sting-airflow"
    mode: Literal["continuous", "time_window_snapshot"] = "continuous"
    payload_field: str | None = Field(default="data", description="entry field holding a JSON object; null = "
                                                                  "the entry's fields are the record")
    max_messages: int = Field(default=100_000, ge=1, description="upper bound per run")
    read_count: int = Field(default=1_000, ge=1, le=100_000)


class NatsParameters(_Strict):
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    stream: str = Field(min_length=1)
    subject: str | None = Field(default=None, description="filter subject (default: all of the stream)")
    mode: Literal["continuous", "time_window_snapshot"] = "continuous"
    max_messages: int = Field(default=100_000, ge=1)
    fetch_batch: int = Field(default=1_000, ge=1, le=100_000)
    fetch_timeout_seconds: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _names(self) -> NatsParameters:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.stream):
            raise ValueError("stream: letters, digits, '_' and '-' only")
        return self


SUBTYPES: dict[tuple[str, str], type[_Strict]] = {
    ("database", "postgresql"): PostgresParameters,
    ("database", "mysql"): MySQLParameters,
    ("database", "mariadb"): MySQLParameters,
    ("api", "rest"): ApiParameters,
    ("file_system", "local"): FileParameters,
    ("file_system", "s3"): FileParameters,
    ("stream", "redis_streams"): RedisStreamParameters,
    ("stream", "nats_jetstream"): NatsParameters,
}


def parameters_model(type_: str, subtype: str) -> type[_Strict] | None:
    return SUBTYPES.get((type_, subtype))

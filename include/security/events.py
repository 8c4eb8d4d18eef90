"""Honeypot events: one schema per event kind, validation, and normalisation to Elastic Common
Schema (ECS) field names.

Producers publish JSON in the style of the Cowrie honeypot (`eventid`, `src_ip`, `dst_port`,
`username`, `input`, `url`, `shasum`, ...); web and scan sensors use `http.request` and
`scan.port`. Accepted kinds:

| eventid                                   | kind              | ECS event.category / action            |
|-------------------------------------------|-------------------|----------------------------------------|
| cowrie.login.failed / cowrie.login.success | login_attempt    | authentication / login_failed, login_success |
| cowrie.command.input / cowrie.command.failed | command        | process / command_input                |
| cowrie.session.file_download / file_upload | malware_download | malware, file / file_download           |
| http.request                              | http_request      | web / http_request                     |
| scan.port                                 | port_scan         | network, intrusion_detection / port_scan |

A message that is not JSON, names an unknown kind, lacks a required field or carries a value of the
wrong type or out of range is rejected with a reason that names the field; it never stops the
other messages of its batch.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from include.security.intel import canonical

MAX_MESSAGE_BYTES = 64 * 1024
MAX_FUTURE_SKEW = timedelta(minutes=10)
MAX_AGE = timedelta(days=730)  # older than the events retention (2 years): rejected
NAMESPACE = uuid.UUID("5f1b6c1e-8a57-4c43-9d87-3c1f2a0e9b11")

Port = Annotated[int, Field(ge=0, le=65535)]


@functools.lru_cache(maxsize=65536)
def canonical_ip(v: str) -> str | None:
    """The canonical text of an address (IPv6 compressed, lower case), None if it is not one.
    Cached: attack traffic repeats its sources."""
    try:
        return str(ipaddress.ip_address(v.strip()))
    except ValueError:
        return None


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=8192)

    eventid: str
    timestamp: datetime
    src_ip: str
    event_id: str | None = Field(default=None, max_length=200)
    src_port: Port | None = None
    dst_ip: str | None = None
    dst_port: Port | None = None
    session: str | None = Field(default=None, max_length=200)
    sensor: str | None = Field(default=None, max_length=200)
    honeyjar_id: uuid.UUID | None = None

    @field_validator("src_ip", "dst_ip")
    @classmethod
    def _ip(cls, v):
        if v is None:
            return v
        c = canonical_ip(str(v))
        if c is None:
            raise ValueError(f"'{str(v)[:60]}' is not an IP address")
        return c

    @field_validator("timestamp")
    @classmethod
    def _ts(cls, v: datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v.astimezone(UTC)


class LoginAttempt(_Base):
    eventid: Literal["cowrie.login.failed", "cowrie.login.success"]
    username: str = Field(max_length=512)
    password: str | None = Field(default=None, max_length=512)
    protocol: Literal["ssh", "telnet"] = "ssh"


class Command(_Base):
    eventid: Literal["cowrie.command.input", "cowrie.command.failed"]
    input: str = Field(min_length=1, max_length=4096)
    protocol: Literal["ssh", "telnet"] = "ssh"


class MalwareDownload(_Base):
    eventid: Literal["cowrie.session.file_download", "cowrie.session.file_upload"]
    url: str | None = Field(default=None, max_length=4096)
    shasum: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    outfile: str | None = Field(default=None, max_length=1024)
    protocol: Literal["ssh", "telnet"] = "ssh"


class HttpRequest(_Base):
    eventid: Literal["http.request"]
    method: str = Field(pattern=r"^[A-Za-z]{1,16}$")
    url: str = Field(min_length=1, max_length=8192)
    user_agent: str | None = Field(default=None, max_length=1024)
    status_code: Annotated[int, Field(ge=100, le=599)] | None = None


class PortScan(_Base):
    eventid: Literal["scan.port"]
    dst_port: Port
    transport: Literal["tcp", "udp"] = "tcp"
    ports_probed: Annotated[int, Field(ge=1, le=65536)] = 1


SCHEMAS: dict[str, tuple[str, type[_Base]]] = {
    "cowrie.login.failed": ("login_attempt", LoginAttempt),
    "cowrie.login.success": ("login_attempt", LoginAttempt),
    "cowrie.command.input": ("command", Command),
    "cowrie.command.failed": ("command", Command),
    "cowrie.session.file_download": ("malware_download", MalwareDownload),
    "cowrie.session.file_upload": ("malware_download", MalwareDownload),
    "http.request": ("http_request", HttpRequest),
    "scan.port": ("port_scan", PortScan),
}
KINDS = sorted({k for k, _ in SCHEMAS.values()})


class Rejected(ValueError):
    """A message that cannot become an event; the message names why (never the whole payload),
    `code` is the short class of the reason (counted per run)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass
class Event:
    """A validated, ECS-normalised event (enrichment and scoring fill the rest)."""

    receipt_id: str  # the ledger key: the producer's event id, or a hash of the raw message
    id: uuid.UUID
    kind: str
    created_at: datetime
    source_ip: str
    destination_port: int | None
    username: str | None
    sensor: str | None
    honeyjar_id: uuid.UUID | None
    ecs: dict
    raw: str
    content_key: str  # what makes two events "identical" (the de-duplication key without time)
    iocs: list[tuple[str, str]] = field(default_factory=list)  # (ioc_type, canonical value) to match
    country: str | None = None
    asn_org: str | None = None
    threat_level: int = 0
    anomaly_score: float | None = None
    scored_by: str | None = None
    fingerprint: str | None = None

    @property
    def hour(self) -> datetime:
        return self.created_at.replace(minute=0, second=0, microsecond=0)


def _uuid_or_none(v: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(v)) if v else None
    except ValueError:
        return None


def _explain(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(event)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def event_uuid(event_id: str) -> uuid.UUID:
    """The stored id of the event a producer calls `event_id`: the id itself when it is a UUID."""
    return _uuid_or_none(event_id) or uuid.uuid5(NAMESPACE, receipt_id_for(b"", event_id))


def _first_field(e: ValidationError) -> str:
    errs = e.errors()
    return ".".join(str(x) for x in errs[0].get("loc", ())) if errs else "event"


def receipt_id_for(raw: bytes | str, event_id: str | None = None) -> str:
    if event_id:
        return f"id:{str(event_id)[:200]}"
    b = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return "sha256:" + hashlib.sha256(b).hexdigest()


def parse(raw: bytes | str, *, now: datetime | None = None, event_id: str | None = None) -> Event:
    """Validate one message and normalise it to ECS. Raises `Rejected` with the reason. `event_id`:
    the id the transport gives the message (a raw payload object's name), used when the message
    carries none."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise Rejected(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}", "too_large")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("not UTF-8", "not_utf8") from None
    else:
        text = raw
        if len(text) > MAX_MESSAGE_BYTES:
            raise Rejected(f"message of {len(text)} characters exceeds {MAX_MESSAGE_BYTES}", "too_large")
    try:
        doc = orjson.loads(text)  # strict JSON (no NaN), nesting bounded
    except (orjson.JSONDecodeError, RecursionError) as e:
        raise Rejected(f"not JSON: {str(e)[:120]}", "not_json") from None
    if not isinstance(doc, dict):
        raise Rejected(f"expected a JSON object, got {type(doc).__name__}", "not_object")
    if event_id:  # the transport's id (a raw payload object's name) is the event's id
        doc["event_id"] = event_id
    eventid = doc.get("eventid")
    if not isinstance(eventid, str) or eventid not in SCHEMAS:
        raise Rejected(f"eventid: unknown event kind {str(eventid)[:80]!r} (known: {', '.join(sorted(SCHEMAS))})",
                       "unknown_kind")
    kind, model = SCHEMAS[eventid]
    try:
        m = model.model_validate(doc)
    except ValidationError as e:
        raise Rejected(f"{eventid}: {_explain(e)}", "invalid_field:" + _first_field(e)) from None
    now = now or datetime.now(UTC)
    if m.timestamp > now + MAX_FUTURE_SKEW:
        raise Rejected(f"timestamp: {m.timestamp.isoformat()} is in the future", "future_timestamp")
    if m.timestamp < now - MAX_AGE:
        raise Rejected(f"timestamp: {m.timestamp.isoformat()} is older than the events retention", "too_old")
    if m.honeyjar_id is None and not m.sensor:
        raise Rejected(f"{eventid}: needs honeyjar_id or sensor (which honey jar it belongs to)", "no_honeyjar")
    receipt = receipt_id_for(text, m.event_id)
    ev_id = _uuid_or_none(m.event_id) or uuid.uuid5(NAMESPACE, receipt)
    ecs, content, iocs = to_ecs(kind, m)
    ecs.setdefault("sting", {})["iocs"] = [f"{t}:{v}" for t, v in dict.fromkeys(iocs)]  # what correlation matches
    ecs["event"]["id"] = str(ev_id)
    ecs["event"]["original"] = text
    return Event(
        receipt_id=receipt, id=ev_id, kind=kind, created_at=m.timestamp, source_ip=m.src_ip,
        destination_port=m.dst_port, username=getattr(m, "username", None), sensor=m.sensor,
        honeyjar_id=m.honeyjar_id, ecs=ecs, raw=text, content_key=content, iocs=iocs,
    )


def to_ecs(kind: str, m: _Base) -> tuple[dict, str, list[tuple[str, str]]]:
    """(ECS document, content key for de-duplication, IOC candidates) of a validated event."""
    ecs: dict[str, Any] = {
        "@timestamp": m.timestamp.isoformat(),
        "ecs": {"version": "8.11.0"},
        "event": {"kind": "event", "module": m.eventid.split(".", 1)[0], "dataset": m.eventid},
        "source": {"ip": m.src_ip},
        "destination": {},
        "observer": {"type": "honeypot", "name": m.sensor} if m.sensor else {"type": "honeypot"},
    }
    if m.src_port is not None:
        ecs["source"]["port"] = m.src_port
    if m.dst_ip:
        ecs["destination"]["ip"] = m.dst_ip
    if m.dst_port is not None:
        ecs["destination"]["port"] = m.dst_port
    if m.session:
        ecs["network"] = {"session_id": m.session}  # not ECS core; kept next to network.*
    iocs: list[tuple[str, str]] = [("ip", m.src_ip)]
    if isinstance(m, LoginAttempt):
        ok = m.eventid.endswith("success")
        ecs["event"].update(category=["authentication"], type=["start"], action="login_success" if ok else "login_failed",
                            outcome="success" if ok else "failure")
        ecs["user"] = {"name": m.username}
        if m.password is not None:
            ecs["sting"] = {"password_tried": m.password}
        ecs.setdefault("network", {})["protocol"] = m.protocol
        content = f"{m.eventid}|{m.username}|{m.password}"
    elif isinstance(m, Command):
        ecs["event"].update(category=["process"], type=["start"], action="command_input",
                            outcome="failure" if m.eventid.endswith("failed") else "unknown")
        ecs["process"] = {"command_line": m.input}
        ecs.setdefault("network", {})["protocol"] = m.protocol
        content = f"{m.eventid}|{m.input}"
    elif isinstance(m, MalwareDownload):
        ecs["event"].update(category=["malware", "file"], type=["creation"], action="file_download")
        ecs["file"] = {"hash": {"sha256": m.shasum.lower()}}
        if m.outfile:
            ecs["file"]["path"] = m.outfile
        if m.url:
            ecs["url"] = {"original": m.url}
            for t in ("url", "domain"):
                v = canonical(t, m.url)
                if v:
                    iocs.append((t, v))
        iocs.append(("sha256", m.shasum.lower()))
        content = f"{m.eventid}|{m.url}|{m.shasum.lower()}"
    elif isinstance(m, HttpRequest):
        ecs["event"].update(category=["web"], type=["access"], action="http_request")
        ecs["http"] = {"request": {"method": m.method.upper()}}
        if m.status_code:
            ecs["http"]["response"] = {"status_code": m.status_code}
        ecs["url"] = {"original": m.url}
        if m.user_agent:
            ecs["user_agent"] = {"original": m.user_agent}
        v = canonical("url", m.url) if "://" in m.url else None
        if v:
            iocs.append(("url", v))
        content = f"{m.eventid}|{m.method.upper()}|{m.url}|{m.user_agent}"
    else:
        assert isinstance(m, PortScan)
        ecs["event"].update(category=["network", "intrusion_detection"], type=["connection"], action="port_scan")
        ecs["network"] = {**ecs.get("network", {}), "transport": m.transport}
        ecs["sting"] = {"ports_probed": m.ports_probed}
        content = f"{m.eventid}|{m.transport}|{m.dst_port}|{m.ports_probed}"
    return ecs, content, iocs

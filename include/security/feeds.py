"""Threat-intelligence feeds, configured like honey combs: one YAML file per feed in
include/feeds/ (STING_FEEDS_DIR), credentials at a Vault path, never in the file.

    name: sample_taxii            # the source name recorded with every indicator
    kind: taxii | misp | csv
    url: http://127.0.0.1:6100/intel/       # TAXII: the API root; MISP: the feed's base URL; CSV: the file
    collection: <id>                        # TAXII only
    vault_path: threat_feeds/sample_taxii/credentials   # username/password (basic) or api_key (header)
    confidence: 0.7               # when the feed gives none (0..1)
    page_size: 50                 # TAXII: objects per request (the server's paging is followed)
    columns: {...}                # CSV only: which column holds what (defaults: URLhaus)

A feed is fetched into one raw document (kept at threat-intel/feeds/{source}/{date}/intel.json),
then parsed into `Indicator`s with canonical values. Malformed entries are counted and skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from include.security.intel import canonical, hash_type

FEEDS_DIR_DEFAULT = Path(__file__).resolve().parent.parent / "feeds"


class FeedError(Exception):
    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class FeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    kind: Literal["taxii", "misp", "csv"]
    url: str = Field(pattern=r"^https?://")
    collection: str | None = None
    vault_path: str | None = None
    confidence: float = Field(0.5, ge=0, le=1)
    page_size: int = Field(50, ge=1, le=10_000)
    timeout_seconds: float = Field(30, gt=0, le=600)
    max_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    columns: dict[str, str] = Field(default_factory=lambda: {
        "value": "url", "first_seen": "dateadded", "status": "url_status", "threat_type": "threat"})
    ioc_type: Literal["url", "ip", "domain", "md5", "sha1", "sha256", "auto"] = "url"
    description: str = ""


def lineage_sources(params: dict) -> list[str]:
    """The endpoints an import reads (lineage): each selected feed's URL without its query, the
    TAXII collection's objects for TAXII feeds. Hosts and paths only: keys travel in headers."""
    from urllib.parse import urlsplit

    configs, _ = load_feeds()
    only = set(params.get("feeds") or [])
    out = []
    for f in configs:
        if only and f.name not in only:
            continue
        u = urlsplit(f.url)
        path = u.path.rstrip("/")
        if f.kind == "taxii" and f.collection:
            path = f"{path}/collections/{f.collection}/objects"
        out.append(f"{u.scheme}://{u.hostname}{':' + str(u.port) if u.port else ''}{path or '/'}")
    return out


def feeds_dir() -> Path:
    return Path(os.environ.get("STING_FEEDS_DIR") or FEEDS_DIR_DEFAULT)


def load_feeds() -> tuple[list[FeedConfig], list[str]]:
    """(valid feeds, errors naming each invalid file): one bad file never hides the others. YAML is
    read with the comb files' bounds (size, alias expansion); ${VAR:-default} resolves in `url`."""
    from include.honeycomb.config import load_yaml_bounded, read_bounded, resolve_env_placeholders

    feeds, errors, names = [], [], set()
    for p in sorted(feeds_dir().glob("*.yaml")):
        try:
            raw = load_yaml_bounded(read_bounded(p), p.name)
            if not isinstance(raw, dict):
                raise ValueError("expected a mapping")
            if isinstance(raw.get("url"), str):
                raw["url"] = resolve_env_placeholders(raw["url"], "url")
            feed = FeedConfig.model_validate(raw)
            if feed.name in names:
                raise ValueError(f"feed name '{feed.name}' is used by another file")
            names.add(feed.name)
            feeds.append(feed)
        except Exception as e:  # noqa: BLE001 - any content of any file
            errors.append(f"{p.name}: {str(e)[:300]}")
    return feeds, errors


@dataclass
class Indicator:
    ioc_type: str
    value: str  # canonical
    confidence: float
    threat_type: str | None = None
    first_seen: datetime | None = None
    valid_until: datetime | None = None
    revoked: bool = False
    expired: bool = False  # the feed says it is no longer live (e.g. URLhaus `offline`)
    ref: str | None = None  # the feed's own id of the entry


@dataclass
class Parsed:
    indicators: list[Indicator]
    rejected: int
    rejects: list[str]


def _ts(v) -> datetime | None:
    if not v:
        return None
    try:
        if isinstance(v, int | float) or (isinstance(v, str) and v.isdigit()):
            return datetime.fromtimestamp(int(v), tz=UTC)
        d = datetime.fromisoformat(str(v).strip().replace("Z", "+00:00").replace(" ", "T", 1))
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


# ---------------------------------------------------------------- fetching
def _auth(secret: dict | None) -> tuple[dict, tuple | None]:
    headers, basic = {}, None
    if secret:
        if secret.get("api_key"):
            headers["Authorization"] = str(secret["api_key"])
        elif secret.get("username"):
            basic = (str(secret["username"]), str(secret.get("password") or ""))
    return headers, basic


def _get(client, url: str, max_bytes: int) -> bytes:
    import httpx

    try:
        with client.stream("GET", url) as r:
            if r.status_code >= 400:
                raise FeedError(f"GET {url}: HTTP {r.status_code}", permanent=r.status_code in (400, 401, 403, 404))
            buf = bytearray()
            for chunk in r.iter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise FeedError(f"GET {url}: larger than {max_bytes} bytes", permanent=True)
            return bytes(buf)
    except httpx.HTTPError as e:
        raise FeedError(f"GET {url}: {type(e).__name__}") from None


def fetch(feed: FeedConfig, secret: dict | None) -> dict:
    """The feed's raw document: {"source", "kind", "url", "fetched_at", "content": ...}."""
    headers, basic = _auth(secret)
    doc = {"source": feed.name, "kind": feed.kind, "url": feed.url, "fetched_at": datetime.now(UTC).isoformat()}
    if feed.kind == "taxii":
        doc["content"] = _fetch_taxii(feed, basic, headers)
        return doc
    import httpx

    with httpx.Client(timeout=feed.timeout_seconds, headers=headers, auth=basic, follow_redirects=True) as c:
        if feed.kind == "misp":
            base = feed.url.rstrip("/")
            manifest = json.loads(_get(c, f"{base}/manifest.json", feed.max_bytes))
            if not isinstance(manifest, dict):
                raise FeedError(f"{base}/manifest.json is not a MISP manifest", permanent=True)
            events = {}
            for uuid_ in sorted(manifest):
                events[uuid_] = json.loads(_get(c, f"{base}/{uuid_}.json", feed.max_bytes))
            doc["content"] = {"manifest": manifest, "events": events}
        else:
            doc["content"] = _get(c, feed.url, feed.max_bytes).decode("utf-8", "replace")
    return doc


def _fetch_taxii(feed: FeedConfig, basic: tuple | None, headers: dict) -> dict:
    """All objects of the collection, page by page (the server's `next`), with their count of
    requests: {"objects": [...], "pages": n}."""
    from taxii2client.exceptions import TAXIIServiceException
    from taxii2client.v21 import ApiRoot, as_pages

    user, password = basic or (None, None)
    try:
        root = ApiRoot(feed.url, user=user, password=password)
        colls = [c for c in root.collections if not feed.collection or c.id == feed.collection or c.title == feed.collection]
        if not colls:
            raise FeedError(f"TAXII {feed.url}: no collection '{feed.collection}'", permanent=True)
        objects, pages = [], 0
        for bundle in as_pages(colls[0].get_objects, per_request=feed.page_size):
            pages += 1
            objects += bundle.get("objects", [])
            if len(objects) > 1_000_000:
                raise FeedError(f"TAXII {feed.url}: more than a million objects", permanent=True)
        return {"collection": colls[0].id, "objects": objects, "pages": pages}
    except TAXIIServiceException as e:
        raise FeedError(f"TAXII {feed.url}: {str(e)[:200]}") from None
    except Exception as e:  # requests errors: connection refused, 401, ...
        status = getattr(getattr(e, "response", None), "status_code", None)
        raise FeedError(f"TAXII {feed.url}: {type(e).__name__}{f' HTTP {status}' if status else ''}",
                        permanent=status in (401, 403, 404)) from None


# ---------------------------------------------------------------- parsing
_STIX_PATH = {
    ("ipv4-addr", "value"): "ip", ("ipv6-addr", "value"): "ip", ("domain-name", "value"): "domain",
    ("url", "value"): "url", ("file", "hashes.MD5"): "md5", ("file", "hashes.SHA-1"): "sha1",
    ("file", "hashes.SHA-256"): "sha256", ("file", "hashes.'SHA-256'"): "sha256",
}


def parse_stix(objects: list[dict], feed: FeedConfig) -> Parsed:
    """STIX 2.1 `indicator` objects with STIX patterns (each `=` comparison of a supported
    observable path is one indicator); confidence 0-100 scaled to 0-1; `revoked` and `valid_until`
    kept; other objects ignored."""
    from stix2patterns.pattern import Pattern

    out, rejects = [], []
    for o in objects:
        if not isinstance(o, dict) or o.get("type") != "indicator":
            continue
        try:
            if o.get("pattern_type", "stix") != "stix":
                raise ValueError(f"pattern_type {o.get('pattern_type')}")
            comps = Pattern(o["pattern"]).inspect().comparisons
            found = 0
            for otype, items in comps.items():
                for path, op, value in items:
                    key = (otype, ".".join(p if isinstance(p, str) else str(p) for p in path))
                    t = _STIX_PATH.get(key) or (_STIX_PATH.get((otype, "hashes.SHA-256")) if key[1].lower() in (
                        "hashes.sha-256", "hashes.sha256") else None)
                    if not t or op != "=":
                        continue
                    v = canonical(t, value.strip("'"))
                    if not v:
                        continue
                    conf = o.get("confidence")
                    out.append(Indicator(
                        t, v, min(max(float(conf) / 100.0, 0.0), 1.0) if conf is not None else feed.confidence,
                        threat_type=(o.get("indicator_types") or [None])[0], first_seen=_ts(o.get("valid_from") or o.get("created")),
                        valid_until=_ts(o.get("valid_until")), revoked=bool(o.get("revoked")), ref=o.get("id")))
                    found += 1
            if not found:
                raise ValueError("no supported observable in the pattern")
        except Exception as e:  # noqa: BLE001 - one bad object
            rejects.append(f"{str(o.get('id'))[:80]}: {str(e)[:150]}")
    return Parsed(out, len(rejects), rejects[:50])


_MISP_TYPES = {"ip-src": "ip", "ip-dst": "ip", "ip-src|port": "ip", "ip-dst|port": "ip", "domain": "domain",
               "hostname": "domain", "url": "url", "md5": "md5", "sha1": "sha1", "sha256": "sha256",
               "filename|md5": "md5", "filename|sha1": "sha1", "filename|sha256": "sha256"}
_MISP_LEVEL = {"1": 0.9, "2": 0.7, "3": 0.5, "4": 0.3}  # threat_level_id: high, medium, low, undefined


def parse_misp(content: dict, feed: FeedConfig) -> Parsed:
    """MISP feed events (`{"Event": {...}}`): attributes flagged `to_ids` (also inside objects),
    confidence from the event's threat level, `deleted` attributes as revoked."""
    out, rejects = [], []
    for uuid_, doc in sorted((content.get("events") or {}).items()):
        try:
            ev = doc["Event"]
            conf = _MISP_LEVEL.get(str(ev.get("threat_level_id")), feed.confidence)
            tags = [t.get("name") for t in ev.get("Tag") or [] if isinstance(t, dict)]
            attrs = list(ev.get("Attribute") or [])
            for obj in ev.get("Object") or []:
                attrs += obj.get("Attribute") or []
            for a in attrs:
                t = _MISP_TYPES.get(a.get("type"))
                if not t or not a.get("to_ids", True):
                    continue
                raw = str(a.get("value", ""))
                if "|" in a.get("type", ""):
                    parts = raw.split("|", 1)
                    raw = parts[0] if a["type"].startswith("ip-") else parts[-1]
                v = canonical(t, raw)
                if not v:
                    rejects.append(f"{uuid_}/{a.get('uuid')}: {a.get('type')} value not canonical")
                    continue
                out.append(Indicator(t, v, conf, threat_type=a.get("category") or (tags[0] if tags else None),
                                     first_seen=_ts(a.get("first_seen") or a.get("timestamp") or ev.get("date")),
                                     revoked=bool(a.get("deleted")), ref=a.get("uuid")))
        except Exception as e:  # noqa: BLE001
            rejects.append(f"{uuid_}: {str(e)[:150]}")
    return Parsed(out, len(rejects), rejects[:50])


def parse_csv(text: str, feed: FeedConfig) -> Parsed:
    """An abuse.ch-style CSV: `#` comment lines, then a header (commented or not) and rows. The
    feed's `columns` name the value, first-seen, status and threat-type columns; a status of
    `offline` marks the indicator expired at import."""
    lines = text.splitlines()
    header = None
    body = []
    for ln in lines:
        s = ln.strip()
        if not s:
            continue
        if s.startswith("#"):
            cand = s.lstrip("#").strip()
            if feed.columns["value"] in [c.strip().strip('"') for c in cand.split(",")]:
                header = [c.strip().strip('"') for c in cand.split(",")]
            continue
        body.append(ln)
    rows = csv.reader(io.StringIO("\n".join(body)))
    if header is None:
        header = next(rows, [])
    cols = {k: (header.index(v) if v in header else None) for k, v in feed.columns.items()}
    if cols.get("value") is None:
        raise FeedError(f"CSV feed {feed.name}: no column '{feed.columns['value']}' in header {header[:10]}", permanent=True)
    out, rejects = [], []
    for i, row in enumerate(rows, 1):
        try:
            raw = row[cols["value"]]
            t = feed.ioc_type if feed.ioc_type != "auto" else (hash_type(raw) or ("url" if "://" in raw else "ip"))
            v = canonical(t, raw)
            if not v:
                raise ValueError(f"not a {t}")

            def col(k, row=row):
                return row[cols[k]] if cols.get(k) is not None and cols[k] < len(row) else None

            status = (col("status") or "").lower()
            out.append(Indicator(t, v, feed.confidence, threat_type=col("threat_type") or None,
                                 first_seen=_ts(col("first_seen")),
                                 expired=status == "offline",
                                 ref=row[0] if row else None))
        except Exception as e:  # noqa: BLE001
            rejects.append(f"row {i}: {str(e)[:100]}")
    return Parsed(out, len(rejects), rejects[:50])


def parse(doc: dict, feed: FeedConfig) -> Parsed:
    c = doc.get("content")
    if feed.kind == "taxii":
        return parse_stix((c or {}).get("objects") or [], feed)
    if feed.kind == "misp":
        return parse_misp(c or {}, feed)
    return parse_csv(c or "", feed)

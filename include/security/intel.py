"""Threat intelligence: canonical IOC values, the feed parsers (STIX 2.1 bundles, MISP feed
events, abuse.ch-style CSV), the upsert that merges sources, and the score model.

Canonical forms (what makes two feeds' values the same indicator):
- ip: `ipaddress` form (IPv6 compressed lower case; IPv4-mapped IPv6 becomes IPv4); CIDRs kept as
  networks (`ip` type only for single addresses).
- domain: lower case, no trailing dot, IDNA (punycode) for non-ASCII labels.
- url: scheme and host lower case, default port dropped, fragment dropped, path and query kept.
- md5 / sha1 / sha256: lower-case hex; the type is checked against the length.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

HASH_LEN = {"md5": 32, "sha1": 40, "sha256": 64}
IOC_TYPES = ("ip", "domain", "url", *HASH_LEN)
_HEX = re.compile(r"^[0-9a-f]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def _ip(v: str) -> str | None:
    try:
        a = ipaddress.ip_address(v.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped:
        a = a.ipv4_mapped
    return str(a)


def _domain(v: str) -> str | None:
    d = v.strip().rstrip(".").lower()
    if not d:
        return None
    try:
        d = d.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return d if _DOMAIN.match(d) else None


def _url(v: str) -> str | None:
    v = v.strip()
    try:
        p = urlsplit(v)
        port = p.port
    except ValueError:
        return None
    scheme = p.scheme.lower()
    if scheme not in ("http", "https", "ftp", "tftp") or not p.hostname:
        return None
    host = _ip(p.hostname) or _domain(p.hostname)
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443, "ftp": 21, "tftp": 69}[scheme]
    netloc = host if port in (None, default) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, p.path or "/", p.query, ""))


def canonical(ioc_type: str, value: str) -> str | None:
    """The canonical value of an IOC of `ioc_type` (for `domain`, a URL gives its host), or None
    when the value is not of that type."""
    if not isinstance(value, str) or not value.strip() or len(value) > 4096:
        return None
    t = ioc_type.lower()
    if t == "ip":
        return _ip(value)
    if t == "domain":
        if "://" in value:
            try:
                host = urlsplit(value.strip()).hostname
            except ValueError:
                return None
            return _domain(host) if host and not _ip(host) else None
        return _domain(value)
    if t == "url":
        return _url(value)
    if t in HASH_LEN:
        h = value.strip().lower()
        return h if len(h) == HASH_LEN[t] and _HEX.match(h) else None
    return None


def hash_type(value: str) -> str | None:
    h = value.strip().lower()
    for t, n in HASH_LEN.items():
        if len(h) == n and _HEX.match(h):
            return t
    return None


# ---------------------------------------------------------------- scores
# Decay: score(t) = base * 0.5 ** (age_days / half_life), age from the last time a feed or an
# event confirmed the indicator. Addresses churn fastest, file hashes never change meaning.
HALF_LIFE_DAYS = {"ip": 30.0, "url": 60.0, "domain": 90.0, "md5": 365.0, "sha1": 365.0, "sha256": 365.0}
SIGHTING_BOOST = 0.1  # per doubling of sightings in the last 30 days
SCORE_FLOOR = 0.05  # below this an indicator is treated as expired


def combine_confidence(values: list[float]) -> float:
    """Independent sources corroborate: 1 - prod(1 - c_i) (noisy-OR), in [0, 1]."""
    p = 1.0
    for c in values:
        p *= 1.0 - min(max(float(c), 0.0), 1.0)
    return round(1.0 - p, 6)


def decayed_score(ioc_type: str, confidence: float, last_seen: datetime, at: datetime, recent_sightings: int) -> float:
    """The documented score: confidence halved every half-life since `last_seen`, raised by
    SIGHTING_BOOST per doubling of the sightings in the 30 days before `at`, capped at 1."""
    age = max((at - last_seen).total_seconds() / 86400.0, 0.0)
    base = confidence * 0.5 ** (age / HALF_LIFE_DAYS.get(ioc_type, 60.0))
    boost = SIGHTING_BOOST * math.log2(1 + recent_sightings) if recent_sightings > 0 else 0.0
    return round(min(1.0, base + boost), 6)


# ---------------------------------------------------------------- the merge
INTEL_LOCK = "sting_threat_intel"


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def _merge_same(indicators: list) -> dict[tuple[str, str], object]:
    """One feed naming an indicator twice: the strongest confidence, the earliest first sighting,
    revoked/expired only if every mention says so."""
    out: dict[tuple[str, str], object] = {}
    for i in indicators:
        k = (i.ioc_type, i.value)
        o = out.get(k)
        if o is None:
            out[k] = i
            continue
        o.confidence = max(o.confidence, i.confidence)
        o.first_seen = min((x for x in (o.first_seen, i.first_seen) if x), default=None)
        o.valid_until = max((x for x in (o.valid_until, i.valid_until) if x), default=None) if (o.valid_until and i.valid_until) else None
        o.revoked, o.expired = o.revoked and i.revoked, o.expired and i.expired
        o.threat_type = o.threat_type or i.threat_type
    return out


def upsert_indicators(conn, source: str, indicators: list, seen_at: datetime) -> dict:
    """Merge one feed's indicators into `threat_intel`: one row per (ioc_type, ioc_value);
    `first_seen` kept, `last_seen` moved to `seen_at`, the feed's entry in `sources` replaced
    (keeping its own first sighting), `confidence` combined across the sources that still vouch
    for it (noisy-OR), `status` revoked when every source revoked it, expired when none is live.
    Re-importing the same feed changes nothing but `last_seen` (and the sources' last_seen)."""
    import json

    merged = _merge_same(indicators)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (INTEL_LOCK,))
    keys = list(merged)
    existing: dict[tuple[str, str], dict] = {}
    for i in range(0, len(keys), 5000):
        part = keys[i:i + 5000]
        for r in conn.execute(
            """SELECT t.ioc_type, t.ioc_value, t.sources, t.first_seen, t.threat_type, t.source
                 FROM threat_intel t JOIN unnest(%s::text[], %s::text[]) AS k(t, v) ON t.ioc_type = k.t AND t.ioc_value = k.v""",
            ([k[0] for k in part], [k[1] for k in part])):
            existing[(r["ioc_type"], r["ioc_value"])] = r
    rows, new = [], 0
    for k, ind in merged.items():
        old = existing.get(k)
        sources = dict(old["sources"]) if old else {}
        prev = sources.get(source) or {}
        mine_first = min((x for x in (_parse(prev.get("first_seen")), ind.first_seen) if x), default=seen_at)
        expired = ind.expired or bool(ind.valid_until and ind.valid_until <= seen_at)
        sources[source] = {"confidence": round(float(ind.confidence), 6), "first_seen": _iso(mine_first),
                           "last_seen": _iso(seen_at), "threat_type": ind.threat_type, "revoked": ind.revoked,
                           "expired": expired, "valid_until": _iso(ind.valid_until), "ref": ind.ref}
        live = [s for s in sources.values() if not s.get("revoked") and not s.get("expired")]
        vouching = live or [s for s in sources.values() if not s.get("revoked")] or list(sources.values())
        status = ("revoked" if all(s.get("revoked") for s in sources.values())
                  else "active" if live else "expired")
        until = [_parse(s.get("valid_until")) for s in sources.values() if s.get("valid_until")]
        first = old["first_seen"] if old else mine_first
        new += old is None
        rows.append((k[0], k[1], (old and old["threat_type"]) or ind.threat_type,
                     combine_confidence([s["confidence"] for s in vouching]), (old and old["source"]) or source,
                     first, seen_at, json.dumps(sources, sort_keys=True), status,
                     max(until) if until and len(until) == len(sources) else None))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO threat_intel (ioc_type, ioc_value, threat_type, confidence, source, first_seen, last_seen,
                                         sources, status, valid_until, metadata)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '{}')
               ON CONFLICT (ioc_type, ioc_value) DO UPDATE SET
                   threat_type = EXCLUDED.threat_type, confidence = EXCLUDED.confidence,
                   first_seen = LEAST(threat_intel.first_seen, EXCLUDED.first_seen),
                   last_seen = GREATEST(threat_intel.last_seen, EXCLUDED.last_seen),
                   sources = EXCLUDED.sources, status = EXCLUDED.status, valid_until = EXCLUDED.valid_until""",
            rows)
    return {"indicators": len(rows), "new": new, "known": len(rows) - new,
            "revoked": sum(r[8] == "revoked" for r in rows), "expired": sum(r[8] == "expired" for r in rows)}


def _parse(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None

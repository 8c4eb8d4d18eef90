"""A small REST API of threat indicators, the sample source of the `api` comb (and a real HTTP
server for the tests): API-key auth, four pagination styles, incremental filtering, and a rate
limit that answers 429 with Retry-After.

    python -m include.devstack.sample_api --port 8765

GET /v1/indicators/{offset|page|cursor|link}?updated_since=...  header X-API-Key: <key>
GET /v1/moved/...  302 to /v1/indicators/... (of `redirect_to`, another origin, when set)
  offset: ?limit=&offset=   page: ?limit=&page= (1-based)   cursor: ?limit=&cursor= (body next_cursor)
  link: ?limit=&after= with an RFC 8288 `Link: <...>; rel="next"` header.
Records are sorted by (updated_at, id); `updated_since` is inclusive (>=), as many APIs are.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

DEFAULT_KEY = "sample-api-key"
# How real APIs quote a refused key back: as sent, inside the request's headers; PHP's
# json_encode (`\/` for every `/` of the body); an echoed `Authorization: Basic <base64 of key:>`
# (the key as user, no password); URL-encoded in an echoed query; hex.
ECHO_STYLES = ("headers", "php", "basic", "url", "hex")


def echo_body(key: str, headers: dict, path: str, styles: tuple[str, ...]) -> str:
    """The 401 body of an API that quotes what it refused, in the given styles (compact first: a
    client keeps the first few hundred characters)."""
    import base64
    from urllib.parse import quote

    echo = {}
    if "basic" in styles:
        echo["authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if "url" in styles:
        echo["query"] = "api_key=" + quote(key, safe="")
    if "hex" in styles:
        echo["key_hex"] = key.encode().hex()
    body: dict = {"error": "missing or wrong X-API-Key", "echo": echo}
    if "headers" in styles or "php" in styles:
        body["request"] = {"path": path, "headers": headers}
    text = json.dumps(body)
    return text.replace("/", "\\/") if "php" in styles else text


def sample_records(n: int = 250) -> list[dict]:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    kinds = ["ipv4", "domain", "sha256", "url"]
    out = []
    for i in range(1, n + 1):
        kind = kinds[i % 4]
        value = {"ipv4": f"203.0.113.{i % 250}", "domain": f"bad{i}.example.net",
                 "sha256": f"{i:064x}", "url": f"http://bad{i}.example.net/x"}[kind]
        out.append({
            "id": i, "type": kind, "value": value, "confidence": 50 + i % 50,
            "reporter_email": f"analyst{i % 7}@sting-ce.com", "reporter_ip": f"198.51.100.{i % 200}",
            "description": f"Seen by honey jar {i % 5} scanning port {[22, 23, 80, 443][i % 4]}; "
                           f"contact analyst{i % 7}@sting-ce.com or +1 415 555 {1000 + i:04d}.",
            "updated_at": (t0 + timedelta(minutes=7 * i)).isoformat().replace("+00:00", "Z"),
        })
    return out


class SampleAPI:
    """State of one server: records, key, rate limit and failure injection (for tests)."""

    def __init__(self, records: list | None = None, api_key: str | None = DEFAULT_KEY, rate_limit_every: int = 0,
                 fail_first: int = 0, fail_status: int = 429):
        self.records = records if records is not None else sample_records()
        self.api_key = api_key
        self.rate_limit_every = rate_limit_every  # every Nth request answers 429 (0 = never)
        self.fail_first = fail_first  # the first N requests answer fail_status
        self.fail_status = fail_status
        self.max_limit = 1_000  # page sizes above this are capped, as many APIs do
        self.echo_request_on_401 = False  # a 401 body that quotes the request's headers (some APIs do)
        # how a 401 echoes the refused key: any of ECHO_STYLES (all of them by default)
        self.echo_styles: tuple[str, ...] = ECHO_STYLES
        # where /v1/moved/... redirects to (/v1/indicators/... of this base URL; None: this server)
        self.redirect_to: str | None = None
        self.seen: deque = deque(maxlen=1000)  # host, path, credential headers of the requests received
        self.stuck_pagination = False  # cursor / next link that never advance (a buggy API)
        self.requests = 0
        self.log: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def sorted_records(self, since: str | None) -> list:
        def key(r):
            return (str(r.get("updated_at")) if isinstance(r, dict) else "", r.get("id", 0) if isinstance(r, dict) else 0)
        rs = sorted(self.records, key=key)
        if since:
            rs = [r for r in rs if not isinstance(r, dict) or str(r.get("updated_at", "")) >= since]
        return rs


def make_handler(api: SampleAPI):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def _send(self, status: int, body, headers: dict | None = None):
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            with api.lock:
                api.requests += 1
                n = api.requests
            u = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            with api.lock:
                api.seen.append({"host": self.headers.get("Host", ""), "path": self.path,
                                 "credentials": {k: v for k, v in self.headers.items()
                                                 if k.lower() in ("x-api-key", "authorization")}})
            if u.path == "/v1/_seen":  # what arrived, for tests
                return self._send(200, list(api.seen))
            if u.path.startswith("/v1/moved/"):  # moved: to redirect_to (another origin), or here
                target = self.path.replace("/v1/moved/", "/v1/indicators/", 1)
                return self._send(302, {}, {"Location": (api.redirect_to or "").rstrip("/") + target})
            if n <= api.fail_first:
                api.log.append((api.fail_status, self.path))
                return self._send(api.fail_status, {"error": "injected failure"}, {"Retry-After": "0"})
            if api.rate_limit_every and n % api.rate_limit_every == 0:
                api.log.append((429, self.path))
                return self._send(429, {"error": "rate limited"}, {"Retry-After": "1"})
            if api.api_key and self.headers.get("X-API-Key") != api.api_key:
                api.log.append((401, self.path))
                body = {"error": "missing or wrong X-API-Key"}
                if api.echo_request_on_401:
                    sent = self.headers.get("X-API-Key") or ""
                    return self._send(401, echo_body(sent, dict(self.headers.items()), self.path, api.echo_styles))
                return self._send(401, body)
            parts = u.path.strip("/").split("/")
            if parts[:2] != ["v1", "indicators"] or len(parts) != 3:
                return self._send(404, {"error": f"no such path {u.path}"})
            style = parts[2]
            rs = api.sorted_records(q.get("updated_since"))
            limit = min(int(q.get("limit", 50)), api.max_limit)
            api.log.append((200, self.path))
            if style == "offset":
                off = int(q.get("offset", 0))
                return self._send(200, {"data": rs[off:off + limit], "total": len(rs)})
            if style == "page":
                page = int(q.get("page", 1))
                return self._send(200, {"data": rs[(page - 1) * limit: page * limit]})
            if style == "cursor":
                start = int(q.get("cursor", 0))
                nxt = start + limit if start + limit < len(rs) else None
                if api.stuck_pagination:
                    nxt = limit
                return self._send(200, {"data": rs[start:start + limit], "meta": {"next_cursor": nxt}})
            if style == "link":
                after = int(q.get("after", 0))
                headers = {}
                if after + limit < len(rs):
                    nq = {**q, "after": limit if api.stuck_pagination else after + limit, "limit": limit}
                    headers["Link"] = f'<{u.path}?{urlencode(nq)}>; rel="next"'
                return self._send(200, rs[after:after + limit], headers)
            return self._send(404, {"error": f"unknown pagination style {style}"})

    return Handler


def serve(api: SampleAPI, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start in a thread; returns (server, thread). server.server_address has the port."""
    srv = ThreadingHTTPServer((host, port), make_handler(api))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv, t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--rate-limit-every", type=int, default=4)
    ap.add_argument("--no-echo", action="store_true", help="do not quote the request in 401 bodies")
    a = ap.parse_args()
    api = SampleAPI(rate_limit_every=a.rate_limit_every)
    # Like some real APIs, a 401 quotes the request it refused, headers (and key) included: the
    # combs must never let that reach a log or the audit.
    api.echo_request_on_401 = not a.no_echo
    srv = ThreadingHTTPServer((a.host, a.port), make_handler(api))
    srv.serve_forever()


if __name__ == "__main__":
    main()

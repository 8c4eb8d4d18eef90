"""A static threat-feed server of the local stack: the sample MISP feed and URLhaus-style CSV
behind an `Authorization` key (kept in Vault), so the feeds are fetched over real HTTP.

    python -m include.devstack.feed_server --port 8766 --key-file .stack/feed_key
GET /misp/manifest.json, /misp/{uuid}.json, /urlhaus/csv_recent.txt
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(files: dict[str, tuple[bytes, str]], key: str | None):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            if key is not None and self.headers.get("Authorization") != key:
                body, status, ctype = b'{"error": "unauthorized"}', 401, "application/json"
            elif self.path.split("?")[0] in files:
                (body, ctype), status = files[self.path.split("?")[0]], 200
            else:
                body, status, ctype = b'{"error": "not found"}', 404, "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return H


def sample_files() -> dict[str, tuple[bytes, str]]:
    from include.devstack.sample_intel import misp_feed, urlhaus_csv

    misp = misp_feed()
    files = {"/misp/manifest.json": (json.dumps(misp["manifest"]).encode(), "application/json"),
             "/urlhaus/csv_recent.txt": (urlhaus_csv().encode(), "text/csv")}
    for u, ev in misp["events"].items():
        files[f"/misp/{u}.json"] = (json.dumps(ev).encode(), "application/json")
    return files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--key-file", required=True)
    a = ap.parse_args()
    with open(a.key_file, encoding="utf-8") as f:
        key = f.read().strip()
    ThreadingHTTPServer((a.host, a.port), make_handler(sample_files(), key)).serve_forever()


if __name__ == "__main__":
    main()

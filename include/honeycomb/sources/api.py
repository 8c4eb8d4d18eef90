"""api combs: a REST endpoint, JSON records.

- auth: none, api_key (a header), bearer, basic; the secret comes from Vault (keys api_key /
  token / username+password), never from the comb file.
- pagination: offset, page, cursor (a value in the body), link (RFC 8288 `Link: <...>; rel="next"`).
- rate limiting: at most `requests_per_second` (client side); 429 and 5xx (and transport errors)
  are retried with exponential backoff, honouring `Retry-After`.
- incremental: the checkpoint is the largest value of the cursor field seen (and the primary keys
  seen at that value, so an API that filters with >= does not deliver them twice); the next run
  sends it in `incremental_param`.
A record that is not a JSON object, or lacks the cursor field, is rejected alone.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from include.honeycomb.errors import http_permanent
from include.honeycomb.sources import Extract, SourceReadError
from include.redaction import Redactor, redact_credential_fields, secret_values

log = logging.getLogger(__name__)
RETRY_STATUS = {429, 500, 502, 503, 504}


class RetryableHTTPError(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code} from {response.request.url}")
        self.response = response


def _dig(body: Any, path: str | None) -> Any:
    if not path:
        return body
    for part in path.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class _Wait:
    def __init__(self, base: float, cap: float):
        self.base, self.cap = base, cap

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableHTTPError):
            ra = _retry_after(exc.response)
            if ra is not None:
                return min(ra, self.cap)
        return min(self.base * 2 ** (state.attempt_number - 1), self.cap)


def _key(value: Any):
    # Cursor values: numbers compare as numbers, anything else as text (ISO-8601 sorts as text).
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


class ApiClient:
    def __init__(self, comb, secret: dict | None):
        self.comb = comb
        self._redactor = Redactor(secret_values(secret))
        self.p = comb.parameters
        self.requests = 0
        self.retries = 0
        self._last = 0.0
        headers = dict(self.p.headers)
        auth = None
        secret = secret or {}
        kind = self.p.auth.type
        try:
            if kind == "api_key":
                headers[self.p.auth.header] = secret["api_key"]
            elif kind == "bearer":
                headers["Authorization"] = f"Bearer {secret['token']}"
            elif kind == "basic":
                auth = (secret["username"], secret["password"])
        except KeyError as e:
            raise SourceReadError(f"comb '{comb.name}': auth '{kind}' needs key {e} in the Vault secret "
                                  f"'{comb.configuration.connection.vault_path}'", permanent=True) from None
        # Redirects are followed here (`_follow`), not by httpx: httpx strips `Authorization` on a
        # cross-origin redirect but sends every other header (an X-API-Key) to the new host.
        self.http = httpx.Client(base_url=self.p.base_url, headers=headers, auth=auth,
                                 timeout=self.p.timeout_seconds, follow_redirects=False)
        credential_headers = {h.lower() for h in (self.p.auth.header, "authorization")}
        self._plain_headers = {k: v for k, v in self.p.headers.items() if k.lower() not in credential_headers}
        self.redirects: list[dict] = []

    def close(self) -> None:
        self.http.close()

    def redact(self, text: str) -> str:
        """A message that quotes a request or a response never carries the comb's secrets, nor
        the auth header's value (APIs that echo the request put them in their error bodies)."""
        return redact_credential_fields(self._redactor(text), [self.p.auth.header])

    def _trusted(self, url: httpx.URL) -> bool:
        """Credentials go to the base URL's origin (scheme, host, port) and to `redirect_hosts`."""
        base = httpx.URL(self.p.base_url)
        if (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port):
            return True
        # a listed host, never by a downgrade to plain HTTP
        return url.host in {h.lower() for h in self.p.redirect_hosts} and (url.scheme == "https" or base.scheme == "http")

    def _follow(self, resp: httpx.Response) -> httpx.Response:
        """Follow a redirect chain (GET only), taking the credentials only where `_trusted`."""
        hops = 0
        while resp.is_redirect and "location" in resp.headers:
            hops += 1
            if hops > self.p.max_redirects:
                raise self.fail(f"more than max_redirects={self.p.max_redirects} redirects from {self.p.endpoint}", True)
            target = resp.url.join(resp.headers["location"])
            resp.close()
            if target.scheme not in ("http", "https"):
                raise self.fail(f"redirect to a non-HTTP URL ({target.scheme}:) refused", True)
            trusted = self._trusted(target)
            self.redirects.append({"host": target.host, "credentials": trusted})
            if trusted:
                resp = self.http.get(target)
            else:
                log.warning("comb %s: redirected to %s, another origin: followed without credentials (list the "
                            "host in redirect_hosts to send them there)", self.comb.name, target.host)
                resp = httpx.get(target, headers=self._plain_headers, timeout=self.p.timeout_seconds,
                                 follow_redirects=False)
        return resp

    def fail(self, message: str, permanent: bool) -> SourceReadError:
        return SourceReadError(self.redact(f"comb '{self.comb.name}': {message}"), permanent)

    def _throttle(self) -> None:
        if self.p.requests_per_second:
            gap = 1.0 / self.p.requests_per_second - (time.monotonic() - self._last)
            if gap > 0:
                time.sleep(gap)
        self._last = time.monotonic()

    def get(self, url: str, params: dict | None) -> httpx.Response:
        r = self.p.retry

        def once() -> httpx.Response:
            self._throttle()
            self.requests += 1
            resp = self._follow(self.http.get(url, params=params))
            if resp.status_code in RETRY_STATUS:
                raise RetryableHTTPError(resp)
            return resp

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            log.warning("comb %s: %s; retry %d of %d", self.comb.name, self.redact(str(state.outcome.exception())),
                        state.attempt_number, r.max_attempts - 1)

        try:
            resp = Retrying(
                stop=stop_after_attempt(r.max_attempts),
                wait=_Wait(r.backoff_seconds, r.max_backoff_seconds),
                retry=retry_if_exception(lambda e: isinstance(e, (RetryableHTTPError, httpx.TransportError))),
                before_sleep=before_sleep,
                reraise=True,
            )(once)
        except (RetryableHTTPError, httpx.HTTPError) as e:  # transient, retries exhausted: Airflow retries later
            raise self.fail(f"GET {url} failed after {r.max_attempts} attempt(s): {e}", False) from None
        if resp.status_code >= 400:
            # redacted before it is cut: a secret split by the cut would no longer match
            raise self.fail(f"GET {resp.request.url} returned HTTP {resp.status_code}: "
                            f"{self.redact(resp.text[:20_000])[:300]}", http_permanent(resp.status_code))
        return resp

    def pages(self, extra: dict) -> Any:
        """(page number, records, response) for each page."""
        p, pg = self.p, self.p.pagination
        url: str = p.endpoint
        base = {**p.params, **extra}
        offset, page, cursor = 0, pg.first_page, None
        seen_next: set[str] = set()  # cursors / next links already followed
        last_page_digest = None
        for n in range(1, pg.max_pages + 1):
            params: dict | None = dict(base)
            if pg.type == "offset":
                params.update({pg.size_param: pg.page_size, pg.offset_param: offset})
            elif pg.type == "page":
                params.update({pg.size_param: pg.page_size, pg.page_param: page})
            elif pg.type == "cursor":
                params[pg.size_param] = pg.page_size
                if cursor is not None:
                    params[pg.cursor_param] = cursor
            elif pg.type == "link" and n > 1:
                params = None  # the next link carries its own query
            resp = self.get(url, params)
            try:
                body = resp.json()
            except ValueError:
                raise self.fail(f"page {n} of {url} is not JSON", True) from None
            records = _dig(body, p.records_path)
            if not isinstance(records, list):
                raise self.fail(f"page {n}: no record list at '{p.records_path or '(body)'}'", True)
            if pg.type in ("offset", "page") and records:
                digest = hashlib.sha256(resp.content).hexdigest()
                if digest == last_page_digest:
                    raise self.fail(f"page {n} of {url} repeats page {n - 1} byte for byte: the API ignores the "
                                    f"{pg.type} parameter", True)
                last_page_digest = digest
            yield n, records
            if pg.type == "none":
                return
            if pg.type in ("offset", "page"):
                # An empty page ends it. A short page too, only if the API is known to honour
                # page_size: one capped lower than asked would otherwise end the run early.
                if not records or (pg.stop_on_short_page and len(records) < pg.page_size):
                    return
                offset += len(records)
                page += 1
            elif pg.type == "cursor":
                cursor = _dig(body, pg.next_cursor_path)
                if cursor in (None, ""):
                    return
                if str(cursor) in seen_next:
                    raise self.fail(f"page {n}: the next cursor repeats an earlier one ({str(cursor)[:100]}): "
                                    "the API would loop forever", True)
                seen_next.add(str(cursor))
            elif pg.type == "link":
                nxt = resp.links.get("next", {}).get("url")
                if not nxt:
                    return
                if nxt in seen_next or nxt == url:
                    raise self.fail(f"page {n}: the next link repeats an earlier one ({nxt[:200]}): "
                                    "the API would loop forever", True)
                seen_next.add(nxt)
                url = nxt
        raise self.fail(f"more than max_pages={pg.max_pages} pages", True)


def read(comb, secret: dict | None, state: dict | None, snapshot: bool) -> Extract:
    ex_cfg = comb.configuration.extraction
    p = comb.parameters
    inc = None if snapshot else ex_cfg.incremental_column
    pk = ex_cfg.primary_key
    last = (state or {}).get("cursor") if inc else None
    seen_at_last = {tuple(k) for k in (state or {}).get("keys_at_cursor", [])}
    extra = {p.incremental_param: last} if inc and p.incremental_param and last is not None else {}
    ex = Extract()
    client = ApiClient(comb, secret)
    records: list[dict] = []
    max_value, keys_at_max = last, set(seen_at_last)
    try:
        for n, page in client.pages(extra):
            for i, rec in enumerate(page):
                ref = f"page {n} record {i}"
                if not isinstance(rec, dict):
                    ex.reject(ref, f"{ref}: expected a JSON object, got {type(rec).__name__}")
                    continue
                if inc:
                    value = rec.get(inc)
                    if value is None:
                        ex.reject(ref, f"{ref}: cursor field '{inc}' is missing")
                        continue
                    key = tuple(str(rec.get(k)) for k in pk)
                    if last is not None:
                        if _key(value) < _key(last) or (value == last and pk and key in seen_at_last):
                            continue  # delivered by an earlier run
                    if max_value is None or _key(value) > _key(max_value):
                        max_value, keys_at_max = value, {key}
                    elif value == max_value:
                        keys_at_max.add(key)
                records.append(rec)
    finally:
        client.close()
    ex.add_records(records)
    if inc:
        ex.state = {"cursor": max_value, "keys_at_cursor": sorted(list(k) for k in keys_at_max)}
    ex.info = {"requests": client.requests, "retries": client.retries}
    if client.redirects:
        ex.info["redirects"] = client.redirects
    return ex

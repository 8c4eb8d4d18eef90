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

import logging
import time
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from include.honeycomb.sources import Extract, SourceReadError

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
                                  f"'{comb.configuration.connection.vault_path}'") from None
        self.http = httpx.Client(base_url=self.p.base_url, headers=headers, auth=auth,
                                 timeout=self.p.timeout_seconds, follow_redirects=True)

    def close(self) -> None:
        self.http.close()

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
            resp = self.http.get(url, params=params)
            if resp.status_code in RETRY_STATUS:
                raise RetryableHTTPError(resp)
            return resp

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            log.warning("comb %s: %s; retry %d of %d", self.comb.name, state.outcome.exception(),
                        state.attempt_number, r.max_attempts - 1)

        try:
            resp = Retrying(
                stop=stop_after_attempt(r.max_attempts),
                wait=_Wait(r.backoff_seconds, r.max_backoff_seconds),
                retry=retry_if_exception(lambda e: isinstance(e, (RetryableHTTPError, httpx.TransportError))),
                before_sleep=before_sleep,
                reraise=True,
            )(once)
        except (RetryableHTTPError, httpx.HTTPError) as e:
            raise SourceReadError(f"comb '{self.comb.name}': GET {url} failed after {r.max_attempts} attempt(s): "
                                  f"{e}") from None
        if resp.status_code >= 400:
            raise SourceReadError(f"comb '{self.comb.name}': GET {resp.request.url} returned HTTP "
                                  f"{resp.status_code}: {resp.text[:300]}")
        return resp

    def pages(self, extra: dict) -> Any:
        """(page number, records, response) for each page."""
        p, pg = self.p, self.p.pagination
        url: str = p.endpoint
        base = {**p.params, **extra}
        offset, page, cursor = 0, pg.first_page, None
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
                raise SourceReadError(f"comb '{self.comb.name}': page {n} of {url} is not JSON") from None
            records = _dig(body, p.records_path)
            if not isinstance(records, list):
                raise SourceReadError(f"comb '{self.comb.name}': page {n}: no record list at "
                                      f"'{p.records_path or '(body)'}'")
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
            elif pg.type == "link":
                nxt = resp.links.get("next", {}).get("url")
                if not nxt:
                    return
                url = nxt
        raise SourceReadError(f"comb '{self.comb.name}': more than max_pages={pg.max_pages} pages")


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
    return ex

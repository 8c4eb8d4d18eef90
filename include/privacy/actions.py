"""Scrubbing actions on Arrow arrays, vectorised with Arrow compute.

The one exception is SHA-256 (`hash`, and the keyed hash behind `tokenize`): Arrow has no such
kernel, so it runs once per *distinct* value (dictionary encoding), never once per cell.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pyarrow as pa
import pyarrow.compute as pc

REDACTED = "***REDACTED***"


def _as_string(arr: pa.Array) -> pa.Array:
    return arr if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else pc.cast(arr, pa.string())


def _map_distinct(arr: pa.Array, fn) -> pa.Array:
    """Apply a Python function to each distinct non-null value, then expand back (vectorised take)."""
    arr = _as_string(arr)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) > 20_000 and pc.count_distinct(pc.take(arr, pa.array(range(0, len(arr), len(arr) // 10_000)))
                                                ).as_py() > 8_000:
        # mostly distinct (ids, emails of a customer table): encoding would cost more than it saves
        return pa.array([None if v is None else fn(v) for v in arr.to_pylist()], pa.string())
    enc = pc.dictionary_encode(arr)
    mapped = pa.array([fn(v) for v in enc.dictionary.to_pylist()], pa.string())
    return pc.take(mapped, enc.indices)


def salted_sha256(arr: pa.Array, salt: str) -> pa.Array:
    """hex(sha256(salt || value)): the same formula as the database combs' pushed-down hash."""
    if len(salt) < 16:
        raise ValueError("hash salt must be at least 16 characters")
    salted = hashlib.sha256(salt.encode())  # the salt's state once; each value continues a copy

    def one(v: str) -> str:
        h = salted.copy()
        h.update(v.encode())
        return h.hexdigest()

    return _map_distinct(arr, one)


def keyed_token(arr: pa.Array, key: str, entity: str) -> pa.Array:
    return _map_distinct(arr, lambda v: "tok_" + hmac.new(key.encode(), f"{entity}\x1f{v}".encode(),
                                                          hashlib.sha256).hexdigest()[:32])


def mask(arr: pa.Array, keep_last: int = 4, char: str = "*") -> pa.Array:
    """Keep the last `keep_last` characters; values that short are masked whole."""
    s = _as_string(arr)
    n = pc.utf8_length(s)
    hidden = pc.max_element_wise(pc.subtract(n, keep_last), 0)
    tail = pc.if_else(pc.greater(n, keep_last), pc.utf8_slice_codeunits(s, start=-keep_last), "")
    return pc.binary_join_element_wise(pc.binary_repeat(char, pc.if_else(pc.greater(n, keep_last), hidden, n)),
                                       tail, "")


def redact(arr: pa.Array, entity: str) -> pa.Array:
    """A type placeholder, e.g. <EMAIL_ADDRESS>; nulls stay null."""
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.string()), pa.scalar(f"<{entity}>", pa.string()))


def generalize(arr: pa.Array, number_step: int = 10) -> pa.Array:
    """Dates and timestamps to the first day of their month; numbers rounded to `number_step`;
    strings that are ISO dates to YYYY-MM."""
    t = arr.type
    if pa.types.is_timestamp(t):
        return pc.floor_temporal(arr, unit="month")
    if pa.types.is_date(t):
        return pc.cast(pc.floor_temporal(pc.cast(arr, pa.timestamp("s")), unit="month"), t)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = pc.cast(arr, pa.float64())
        rounded = pc.multiply(pc.round(pc.divide(f, float(number_step))), float(number_step))
        return pc.cast(rounded, t) if not pa.types.is_decimal(t) else rounded
    s = _as_string(arr)
    return pc.if_else(pc.match_substring_regex(s, r"^\d{4}-\d{2}-\d{2}"), pc.utf8_slice_codeunits(s, 0, 7), s)


def _anonymize_ipv6(v: str) -> str:
    try:
        ip = ipaddress.ip_address(v)
    except ValueError:
        return REDACTED  # not an address: do not pass it through unscrubbed
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/48", strict=False).network_address)  # keep the /48 prefix
    return v


def anonymize_ip(arr: pa.Array) -> pa.Array:
    """IPv4: last octet to 0. IPv6: bits after the /48 prefix to 0. Anything else is redacted."""
    s = _as_string(arr)
    v4 = pc.fill_null(pc.match_substring_regex(s, r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"), True)
    out4 = pc.replace_substring_regex(s, r"\.\d{1,3}$", ".0")
    other = pc.invert(v4)
    if not pc.any(other).as_py():
        return out4
    # IPv6 (and anything else) in Python, once per distinct value, only for the rows that need it
    return pc.replace_with_mask(out4, other, _map_distinct(pc.filter(s, other), _anonymize_ipv6))

"""Scrubbing actions on Arrow arrays, vectorised with Arrow compute.

The one exception is SHA-256 (`hash`, and the keyed hash behind `tokenize`): Arrow has no such
kernel, so it runs once per *distinct* value (dictionary encoding), never once per cell.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

import pyarrow as pa
import pyarrow.compute as pc

REDACTED = "***REDACTED***"


def _as_string(arr: pa.Array) -> pa.Array:
    """Any column as text, so every action works on every type: bytes that are not UTF-8 as hex,
    nested values as JSON."""
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr
    if pa.types.is_nested(t):
        import json

        return pa.array([None if v is None else json.dumps(v, sort_keys=True, default=str) for v in arr.to_pylist()],
                        pa.string())
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            return pa.array([None if v is None else v.hex() for v in arr.to_pylist()], pa.string())
        return pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())


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


MIN_KEY_CHARS = 16


def hmac_sha256_hex(key: str):
    """A function value -> hex(HMAC-SHA256(key, value)): the pseudonym of every `hash` action
    (structured columns, free text, every comb type). The key's padded states are computed once;
    each value continues copies of them (RFC 2104, the same bytes as `hmac.new`)."""
    if not key or len(key) < MIN_KEY_CHARS:
        raise ValueError(f"the hash key must be at least {MIN_KEY_CHARS} characters (from Vault)")
    k = key.encode()
    if len(k) > 64:
        k = hashlib.sha256(k).digest()
    k = k.ljust(64, b"\0")
    inner0 = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    outer0 = hashlib.sha256(bytes(b ^ 0x5C for b in k))

    def one(v: str) -> str:
        i = inner0.copy()
        i.update(v.encode())
        o = outer0.copy()
        o.update(i.digest())
        return o.hexdigest()

    return one


def pseudonym_metadata(key_version: str | None) -> dict[bytes, bytes]:
    """What an output holding keyed-hash pseudonyms records about them (Parquet key-value
    metadata): the scheme and the Vault key's version, so a key rotation is traceable."""
    return {b"sting.hash": b"HMAC-SHA256", b"sting.hash_key_version": (key_version or "1").encode()}


def keyed_hash(arr: pa.Array, key: str) -> pa.Array:
    """hex(HMAC-SHA256(key, value)) per value: same value and key, same pseudonym in every comb,
    file and free text (joins work); without the key a pseudonym cannot be checked against a
    guess. Runs in the worker: the key never goes to a source."""
    return _map_distinct(arr, hmac_sha256_hex(key))


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


# Month names (and their usual abbreviations, matched by prefix) in the languages of the
# product's locales; a date whose month cannot be read is removed, never passed through.
_MONTHS = {
    1: ("january", "jan", "janvier", "janv", "januar", "jänner", "enero", "ene", "gennaio", "genn", "januari", "janeiro"),
    2: ("february", "feb", "février", "fevrier", "févr", "fevr", "februar", "febrero", "febbraio", "febr", "februari",
        "fevereiro", "fev"),
    3: ("march", "mar", "mars", "märz", "maerz", "marzo", "maart", "março", "marco", "mrt"),
    4: ("april", "apr", "avril", "avr", "abril", "abr", "aprile"),
    5: ("may", "mai", "mayo", "maggio", "mag", "mei", "maio"),
    6: ("june", "jun", "juin", "juni", "junio", "giugno", "giu", "junho"),
    7: ("july", "jul", "juillet", "juil", "juli", "julio", "luglio", "lug", "julho"),
    8: ("august", "aug", "août", "aout", "agosto", "ago", "augustus", "augusti"),
    9: ("september", "sep", "sept", "septembre", "septiembre", "settembre", "set", "setembro"),
    10: ("october", "oct", "octobre", "oktober", "okt", "octubre", "ottobre", "ott", "outubro", "out"),
    11: ("november", "nov", "novembre", "noviembre", "novembro"),
    12: ("december", "dec", "décembre", "decembre", "déc", "dezember", "dez", "diciembre", "dic", "dicembre",
         "dezembro"),
}
_MONTH_WORDS = sorted(((w, m) for m, ws in _MONTHS.items() for w in ws), key=lambda x: -len(x[0]))
_ISO = re.compile(r"^(\d{4})[-/.]?(\d{1,2})[-/.]?(\d{1,2})(?:[T\s].*)?$")
_NUMERIC_DMY = re.compile(r"^(\d{1,2})\s*([/.\-])\s*(\d{1,2})\s*[/.\-]\s*(\d{2}|\d{4})(?:[T\s,].*)?$")
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")


def _year2(y: int) -> int:
    import datetime as _dt

    return y + (2000 if y <= _dt.date.today().year % 100 else 1900)


def generalize_text(v: str, date_entity: bool = True) -> str:
    """A date written in any common form to its month ("YYYY-MM"), or to its year when day and
    month cannot be told apart ("03/04/1985"); a number stored as text rounded to tens (not for a
    date entity: "19850314" is a date). Anything else is removed: never passed through."""
    t = v.strip()
    if not t:
        return v
    m = _ISO.match(t)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if 1 <= mo <= 12 and 1 <= d <= 31:
            return f"{y:04d}-{mo:02d}"
    m = _NUMERIC_DMY.match(t)
    if m:
        a, b, y = int(m.group(1)), int(m.group(3)), m.group(4)
        y = int(y) if len(y) == 4 else _year2(int(y))
        if a > 12 and 1 <= b <= 12 and a <= 31:
            return f"{y:04d}-{b:02d}"  # day first
        if b > 12 and 1 <= a <= 12 and b <= 31:
            return f"{y:04d}-{a:02d}"  # month first (US)
        if 1 <= a <= 12 and a == b:
            return f"{y:04d}-{a:02d}"
        if 1 <= a <= 12 and 1 <= b <= 12:
            return f"{y:04d}"  # 03/04/1985: March or April; the year is certain
        return REDACTED
    low = t.lower()
    years = _YEAR.findall(low)
    if len(years) == 1:
        words = re.findall(r"[^\W\d_]+", low)
        found = {mo for w in words for name, mo in _MONTH_WORDS if w == name or (len(w) >= 3 and name.startswith(w)
                                                                                and len(name) - len(w) <= 6)}
        if len(found) == 1:
            return f"{int(years[0]):04d}-{found.pop():02d}"
    if _NUMBER.match(t) and not date_entity:
        n = float(t.replace(",", "."))
        return str(int(round(n / 10.0) * 10))
    if date_entity and re.fullmatch(r"\d{4}", t) and 1000 <= int(t) <= 2999:
        return t  # a year alone is already generalised
    return REDACTED


def generalize(arr: pa.Array, number_step: int = 10, entity: str | None = None) -> pa.Array:
    """Dates and timestamps to the first day of their month; numbers rounded to `number_step`
    (for a date entity, yyyymmdd integers to the first of their month and other numbers
    removed); strings of any common date form to YYYY-MM (see `generalize_text`). Fails closed:
    a value it cannot generalise is removed, never passed through."""
    t = arr.type
    date_entity = entity is None or "DATE" in entity.upper() or "BIRTH" in entity.upper() or "DOB" in entity.upper()
    if pa.types.is_timestamp(t):
        return pc.floor_temporal(arr, unit="month")
    if pa.types.is_date(t):
        return pc.cast(pc.floor_temporal(pc.cast(arr, pa.timestamp("s")), unit="month"), t)
    if pa.types.is_integer(t) and entity == "DATE_OF_BIRTH":
        ymd = pc.and_(pc.greater_equal(arr, 10000101), pc.less_equal(arr, 29991231))
        return pc.if_else(ymd, pc.add(pc.multiply(pc.divide(arr, 100), 100), 1), pa.scalar(None, t))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        if entity == "DATE_OF_BIRTH":
            return pa.nulls(len(arr), t)  # a fractional date of birth is nothing we can generalise
        f = pc.cast(arr, pa.float64(), safe=False)
        rounded = pc.multiply(pc.round(pc.divide(f, float(number_step))), float(number_step))
        return pc.cast(rounded, t, safe=False) if not pa.types.is_decimal(t) else rounded
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_nested(t):
        return redact(arr, entity or "DATE")
    return _map_distinct(arr, lambda v: generalize_text(v, date_entity))


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

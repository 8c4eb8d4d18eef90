"""Secrets out of every text a source's answer can put into a message: one redactor for every comb
source, applied before a message is stored, logged, mailed or sent as lineage.

A secret can come back in many shapes: as sent, JSON-escaped (`\\/` for `/`, PHP's default;
`\\u002f`; doubled when a JSON body quotes another one), URL-encoded (once or twice, either hex
case, `+` for a space), as an HTML character reference, base64 inside a longer base64 text (an
echoed `Authorization: Basic <base64 of key:>`, `:key`, `user:key`; standard and URL-safe
alphabets, at any of the three byte alignments), and as hex. Every form is matched, also mixed
within one occurrence (a character escaped, the next one not).

Pure Python, no Airflow: the Airflow layer registers the literal forms with Airflow's secrets
masker as a second line (plugins/sting_airflow/hooks.py).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

MASK = "***"
MIN_SECRET = 4  # shorter values would match ordinary text (and no real credential is that short)
_MIN_B64_CORE = 6  # a base64 fragment shorter than this is not distinctive


def _char_pattern(ch: str) -> str:
    """Every way one character of a secret can be written in an echoed text."""
    cp = ord(ch)
    # as is, after any run of backslashes: `\\/` (PHP), `\\\\/` (JSON quoting JSON)
    alts = [r"\\{0,8}" + re.escape(ch)]
    if cp < 0x10000:
        alts.append(rf"\\{{1,8}}u{cp:04x}")  # \u002f
    else:  # a JSON surrogate pair
        hi, lo = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
        alts.append(rf"\\{{1,8}}u{hi:04x}\\{{1,8}}u{lo:04x}")
    alts.append("".join(rf"%(?:25)?{b:02x}" for b in ch.encode("utf-8")))  # URL-encoded, once or twice
    if ch == " ":
        alts.append(r"\+")
    alts += [rf"&#0*{cp};", rf"&#x0*{cp:x};"]  # HTML character references
    return "(?:" + "|".join(alts) + ")"


_B64_EXT = r"(?:[A-Za-z0-9_-]|\\{0,8}[+/]|%(?:25)?2[bf]|\\{1,8}u002[bf])*"
_B64_PAD = r"(?:=|%(?:25)?3d|\\{1,8}u003d){0,2}"


def _b64_cores(value: bytes) -> set[str]:
    """The part of any base64 text that a value at each byte alignment always produces, whatever
    comes before or after it (`user:key`, `:key`, `key:` all contain one of these)."""
    out: set[str] = set()
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + value).decode()
        start = -(-8 * k // 6)  # first character made of the value's bits only
        end = (8 * (k + len(value))) // 6  # one past the last such character
        core = enc[start:end]
        if len(core) >= _MIN_B64_CORE:
            out.add(core)
            out.add(core.replace("+", "-").replace("/", "_"))  # URL-safe alphabet
    return out


class Redactor:
    """Replaces every form of the given secrets with `***`. Callable on a text."""

    def __init__(self, secrets: Iterable[object]):
        values = sorted({str(s) for s in secrets if s not in (None, "") and len(str(s)) >= MIN_SECRET},
                        key=len, reverse=True)
        self.values = values
        patterns: list[str] = []
        for v in values:
            patterns.append("".join(_char_pattern(ch) for ch in v))
            raw = v.encode("utf-8")
            # the whole base64 token around a core (its edges carry bits of the secret too), also
            # when its `/` and `+` are escaped or URL-encoded
            patterns.extend(_B64_EXT + "".join(_char_pattern(ch) for ch in c) + _B64_EXT + _B64_PAD
                            for c in sorted(_b64_cores(raw), key=len, reverse=True))
            patterns.append(re.escape(raw.hex()))  # hex (either case: the pattern ignores case)
        self._re = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None

    def __bool__(self) -> bool:
        return self._re is not None

    def __call__(self, text: str) -> str:
        if self._re is None or not text:
            return text
        return self._re.sub(MASK, text)

    def literal_forms(self) -> list[str]:
        """The common literal forms (for a masker that matches literal strings, such as Airflow's)."""
        import json
        from urllib.parse import quote, quote_plus

        out: set[str] = set()
        for v in self.values:
            raw = v.encode("utf-8")
            escaped = json.dumps(v)[1:-1]
            out |= {v, quote(v, safe=""), quote_plus(v), escaped, escaped.replace("/", "\\/"), raw.hex(),
                    *_b64_cores(raw)}
        return sorted((f for f in out if len(f) >= MIN_SECRET), key=len, reverse=True)


def secret_values(secret: dict | None) -> list[str]:
    """The values of a source secret worth redacting: every value (a username is not secret, but
    is harmless to hide, and some secrets are stored under unexpected keys)."""
    return [str(v) for v in (secret or {}).values() if v not in (None, "") and not isinstance(v, bool)]


# The value of a credential header or parameter quoted in a text (`X-API-Key: abc`,
# `"Authorization": "Bearer abc"`, `api_key=abc`), whatever the secret: what an API echoes may
# be a key other than ours (a rotated one, another tenant's).
_HEADER_VALUE = re.compile(
    r"""(?ix)
    ((?:authorization|proxy-authorization|x-api-key|api[-_]?key|x-auth-token|access[-_]?token|token|password|secret)
     \\{0,8}["']?\s*[:=]\s*\\{0,8}["']?\s*)
    (?:(basic|bearer|token|digest)\s+)?
    ([^\s"',}\\&]+)""")


def redact_credential_fields(text: str, extra_headers: Iterable[str] = ()) -> str:
    """Values of credential-looking headers and fields, whatever they are."""
    out = _HEADER_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{MASK}", text)
    for h in extra_headers:
        if h:
            out = re.sub(rf"(?i)({re.escape(h)}\\{{0,8}}[\"']?\s*[:=]\s*\\{{0,8}}[\"']?\s*)([^\s\"',}}\\&]+)",
                         rf"\1{MASK}", out)
    return out

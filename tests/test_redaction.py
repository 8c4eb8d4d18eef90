"""The redactor every comb source uses (include/redaction.py): each form a secret can take in an
echoed text is hidden, also mixed and inside a longer base64 or JSON-in-JSON text."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from include.redaction import Redactor, redact_credential_fields

KEY = "sk/live+AbC9=xY_7\u00e9 q"


def _forms(k: str) -> dict[str, str]:
    return {
        "raw": k,
        "json": json.dumps({"k": k}),
        "php": json.dumps({"k": k}).replace("/", "\\/"),
        "unicode escapes": json.dumps({"k": k}, ensure_ascii=True).replace("/", "\\u002F"),
        "json in json": json.dumps(json.dumps({"k": k}).replace("/", "\\/")),
        "url": quote(k, safe=""),
        "url lower hex": quote(k, safe="").lower(),
        "form": quote_plus(k),
        "url twice": quote(quote(k, safe=""), safe=""),
        "basic key:": "Authorization: Basic " + base64.b64encode(f"{k}:".encode()).decode(),
        "basic :key": base64.b64encode(f":{k}".encode()).decode(),
        "basic user:key": base64.b64encode(f"someone:{k}".encode()).decode(),
        "basic ab:key": base64.b64encode(f"ab:{k}".encode()).decode(),
        "base64 url-safe": base64.urlsafe_b64encode(f"x:{k}".encode()).decode(),
        "base64 php-escaped": json.dumps(base64.b64encode(f"{k}:".encode()).decode()).replace("/", "\\/"),
        "hex": k.encode().hex(),
        "HEX": k.encode().hex().upper(),
        "html": "".join(f"&#{ord(c)};" for c in k),
    }


@pytest.mark.parametrize("style", list(_forms(KEY)))
def test_every_form_is_hidden(style):
    text = _forms(KEY)[style]
    out = Redactor([KEY])(f"error: {text} (refused)")
    assert "***" in out and text not in out
    for form in _forms(KEY).values():
        assert form not in out
    assert out.startswith("error: ") and out.endswith(" (refused)")


def test_short_values_and_plain_text_are_left_alone():
    r = Redactor(["abc", None, ""])
    assert not r and r("abc def") == "abc def"
    assert Redactor(["s3cr3t-value"])("nothing to see here") == "nothing to see here"


def test_credential_fields_are_hidden_whatever_their_value():
    text = '{"headers": {"X-Api-Key": "another-key-123", "Authorization": "Bearer eyJabc.def"}}, api_key=zzz999'
    out = redact_credential_fields(text, ["X-Custom-Auth"])
    assert "another-key-123" not in out and "eyJabc" not in out and "zzz999" not in out
    assert redact_credential_fields("X-Custom-Auth: v4lue", ["X-Custom-Auth"]) == "X-Custom-Auth: ***"

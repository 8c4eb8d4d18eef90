"""The structured privacy engine: every action, profiles, secrets, tokenization with an audited
detokenize, files in and out, and zero leaks of structured values on Faker data."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

import pyarrow as pa
import pytest

from include.db import connect
from include.privacy import actions
from include.privacy.engine import Scrubber, ScrubConfigError, scrub_file
from include.privacy.profiles import SYSTEM_PROFILES
from include.privacy.tokens import TokenVault

SALT = "0123456789abcdef-test-salt"


@pytest.fixture(scope="module")
def vault(stack):
    return TokenVault.from_vault()


def test_actions():
    emails = pa.array(["a@x.org", None, "a@x.org", "b@y.org"])
    h = actions.salted_sha256(emails, SALT).to_pylist()
    assert h[0] == h[2] == hashlib.sha256((SALT + "a@x.org").encode()).hexdigest() and h[1] is None and h[3] != h[0]
    assert actions.mask(pa.array(["+1 555 0100 1234", "12", None])).to_pylist() == ["************1234", "**", None]
    assert actions.redact(pa.array(["x", None]), "EMAIL_ADDRESS").to_pylist() == ["<EMAIL_ADDRESS>", None]
    assert actions.generalize(pa.array([date(1984, 7, 23)])).to_pylist() == [date(1984, 7, 1)]
    assert actions.generalize(pa.array([datetime(2026, 3, 9, 13, 5)])).to_pylist() == [datetime(2026, 3, 1)]
    assert actions.generalize(pa.array([1234, 5678])).to_pylist() == [1230, 5680]
    assert actions.generalize(pa.array(["1984-07-23", "n/a"])).to_pylist() == ["1984-07", "n/a"]
    ips = actions.anonymize_ip(pa.array(["203.0.113.77", "2001:db8:85a3:8d3:1319:8a2e:370:7348", "junk", None]))
    assert ips.to_pylist() == ["203.0.113.0", "2001:db8:85a3::", actions.REDACTED, None]
    with pytest.raises(ValueError, match="at least 16"):
        actions.salted_sha256(emails, "short")


def test_secrets_are_always_redacted_even_nested_and_without_profile():
    t = pa.table({"user": ["ann"], "api_key": ["sk-live-123"], "payload": [{"password": "hunter2", "ok": 1,
                                                                             "auth": {"token": "abc"}}]})
    out, report = Scrubber().scrub_table(t)
    row = out.to_pylist()[0]
    assert row["user"] == "ann" and row["api_key"] == actions.REDACTED
    assert row["payload"]["password"] == actions.REDACTED and row["payload"]["auth"]["token"] == actions.REDACTED
    assert row["payload"]["ok"] == 1 and "payload.auth.token" in report["columns"]


def test_tokenize_then_detokenize_is_audited(vault):
    toks = vault.tokenize(pa.array(["MRN-0042", "MRN-0042", None, "MRN-7"]), "MEDICAL_RECORD_NUMBER").to_pylist()
    assert toks[0] == toks[1] and toks[2] is None and toks[0] != toks[3] and toks[0].startswith("tok_")
    assert vault.detokenize(toks[0], actor="analyst@sting", reason="patient access request #12") == "MRN-0042"
    assert vault.detokenize("tok_unknown", actor="analyst@sting", reason="probe") is None
    with pytest.raises(ValueError, match="audited"):
        vault.detokenize(toks[0], actor="", reason="")
    with connect() as conn:
        audit = conn.execute("SELECT * FROM privacy_token_audit WHERE token IN (%s, 'tok_unknown') ORDER BY id DESC LIMIT 2",
                             (toks[0],)).fetchall()
        stored = conn.execute("SELECT ciphertext FROM privacy_tokens WHERE token = %s", (toks[0],)).fetchone()
    assert {(a["found"], a["actor"]) for a in audit} == {(True, "analyst@sting"), (False, "analyst@sting")}
    assert "MRN-0042" not in stored["ciphertext"]


def test_profiles_are_seeded_and_hipaa_removes_safe_harbor_identifiers(stack, vault):
    with connect() as conn:
        names = {r["name"] for r in conn.execute("SELECT name FROM scrubbing_profiles WHERE is_system_default")}
    assert {"gdpr", "ccpa", "hipaa", "financial_data"} <= names
    t = pa.table({"patient_name": ["Ann Lee"], "email": ["ann@x.org"], "phone": ["+1 555 0100"],
                  "date_of_birth": [date(1950, 5, 17)], "mrn": ["MRN-9"], "diagnosis": ["J45"], "zip": ["94110"]})
    out, report = Scrubber(profile="hipaa", salt=SALT, token_vault=vault).scrub_table(t)
    row = out.to_pylist()[0]
    assert set(row) == {"diagnosis", "zip"}  # name, email, phone, date of birth, MRN removed
    assert row["zip"] == "<ZIP_CODE>"
    assert report["records_scrubbed"] == 1
    with pytest.raises(ScrubConfigError, match="unknown scrubbing profile"):
        Scrubber(profile="sox")
    assert set(SYSTEM_PROFILES["gdpr"]["entities"].values()) <= {"hash", "remove", "mask", "redact", "tokenize",
                                                                  "generalize", "anonymize_ip"}


def test_files_in_the_same_format_out_with_zero_structured_leaks(tmp_path, vault):
    import pyarrow.parquet as pq
    from faker import Faker

    fake = Faker(["en_US", "de_DE", "fr_FR", "en_GB"])
    Faker.seed(7)
    rows = [{"id": i, "full_name": fake.name(), "email": fake.email(), "phone_mobile": fake.phone_number(),
             "ssn": fake["en_US"].ssn(), "ip_address": fake.ipv4() if i % 2 else fake.ipv6(),
             "iban": fake["de_DE"].iban(), "card_number": fake.credit_card_number(),
             "date_of_birth": fake.date_of_birth().isoformat(), "city": fake.city(), "api_token": fake.sha1()}
            for i in range(500)]
    raw_values = [r[k] for r in rows for k in ("full_name", "email", "phone_mobile", "ssn", "iban", "card_number",
                                               "api_token")]
    src = {"csv": tmp_path / "in.csv", "jsonl": tmp_path / "in.jsonl", "parquet": tmp_path / "in.parquet"}
    table = pa.Table.from_pylist(rows)
    from pyarrow import csv

    csv.write_csv(table, src["csv"])
    src["jsonl"].write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(table, src["parquet"])
    for fmt, path in src.items():
        dst = tmp_path / f"out.{fmt}"
        report = scrub_file(path, dst, profile="gdpr", salt=SALT, token_vault=vault)
        body = dst.read_bytes().decode("utf-8", errors="replace")
        leaked = [v for v in raw_values if v in body]
        assert leaked == [], (fmt, leaked[:3])
        assert report["records_scrubbed"] == 500 and report["columns"]["ssn"]["action"] == "remove"
        assert report["columns"]["ip_address"]["action"] == "anonymize_ip"


def test_free_text_with_presidio_offline_and_stable(monkeypatch, stack):
    import socket

    from include.privacy import text

    def no_network(*a, **k):
        raise AssertionError(f"network attempted: {a}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    notes = ["Call Jane Doe at 415-555-0134 or mail jane.doe@example.com from 198.51.100.23.",
             None, "No personal data in this sentence."]
    t = pa.table({"id": [1, 2, 3], "notes": notes, "email": ["jane.doe@example.com", None, None]})
    out, _ = Scrubber(profile="gdpr", salt=SALT, text_fields=["not*"]).scrub_table(t)
    row = out.to_pylist()[0]
    scrubbed = row["notes"]
    for raw in ("Jane Doe", "415-555-0134", "jane.doe@example.com", "198.51.100.23"):
        assert raw not in scrubbed
    assert "198.51.100.0" in scrubbed and "0134" in scrubbed  # anonymize_ip, mask keeps the last 4
    assert row["email"] in scrubbed  # the same salted hash in the column and in the prose
    assert out.column("notes").to_pylist()[1:] == [None, "No personal data in this sentence."]
    again, _ = text.scrub_texts(notes, SYSTEM_PROFILES["gdpr"]["entities"], salt=SALT)
    assert again[0] == scrubbed
    ents = text.analyzer(frozenset({"EMAIL_ADDRESS"}))  # patterns only: the NER is not run
    assert "ner" not in ents.nlp_engine.nlp["en"].pipe_names

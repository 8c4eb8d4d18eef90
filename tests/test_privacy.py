"""The structured privacy engine: every action, profiles, secrets, tokenization with an audited
detokenize, files in and out, and zero leaks of structured values on Faker data."""

from __future__ import annotations

import hashlib
import hmac
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
    h = actions.keyed_hash(emails, SALT).to_pylist()  # HMAC-SHA256 with the key (RFC 2104)
    assert h[0] == h[2] == hmac.new(SALT.encode(), b"a@x.org", hashlib.sha256).hexdigest() and h[1] is None
    assert h[3] != h[0] and h[0] != hashlib.sha256((SALT + "a@x.org").encode()).hexdigest()
    assert actions.mask(pa.array(["+1 555 0100 1234", "12", None])).to_pylist() == ["************1234", "**", None]
    assert actions.redact(pa.array(["x", None]), "EMAIL_ADDRESS").to_pylist() == ["<EMAIL_ADDRESS>", None]
    assert actions.generalize(pa.array([date(1984, 7, 23)])).to_pylist() == [date(1984, 7, 1)]
    assert actions.generalize(pa.array([datetime(2026, 3, 9, 13, 5)])).to_pylist() == [datetime(2026, 3, 1)]
    assert actions.generalize(pa.array([1234, 5678])).to_pylist() == [1230, 5680]
    assert actions.generalize(pa.array(["1984-07-23", "n/a"])).to_pylist() == ["1984-07", actions.REDACTED]  # fails closed
    ips = actions.anonymize_ip(pa.array(["203.0.113.77", "2001:db8:85a3:8d3:1319:8a2e:370:7348", "junk", None]))
    assert ips.to_pylist() == ["203.0.113.0", "2001:db8:85a3::", actions.REDACTED, None]
    with pytest.raises(ValueError, match="at least 16"):
        actions.keyed_hash(emails, "short")


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


# ---------------------------------------------------------------- operator, recognizers, options

def test_presidio_scrub_operator_scrubs_an_object(stack):
    import io
    import uuid

    import pyarrow as pa
    from pyarrow import csv

    from include import storage
    from sting_airflow.operators import PresidioScrubOperator

    key = f"tests/privacy/{uuid.uuid4().hex[:8]}"
    rows = [{"id": 1, "full_name": "Anne Roy", "email": "anne.roy@example.com", "ip_address": "203.0.113.77",
             "note": "Anne Roy asked to be called on +1 415 555 0134; card 4111 1111 1111 1111."},
            {"id": 2, "full_name": "Paul Martin", "email": "paul@example.org", "ip_address": "198.51.100.4",
             "note": "Spoke with Dr. Jane Doe about the Honey Jar Pro renewal."}]
    buf = io.BytesIO()
    csv.write_csv(pa.Table.from_pylist(rows), buf)
    storage.s3_client().put_object(Bucket="user-files", Key=f"{key}/in.csv", Body=buf.getvalue())
    op = PresidioScrubOperator(task_id="scrub", input_uri=f"s3://user-files/{key}/in.csv",
                               output_uri=f"s3://user-files/{key}/out.csv", profile="gdpr",
                               custom_rules=[{"field": "email", "action": "tokenize"}], text_fields=["note"],
                               text_allow_list=["Honey Jar Pro"])
    assert {"input_uri", "output_uri", "profile", "custom_rules", "text_fields"} <= set(op.template_fields)
    report = op.execute({})
    body = storage.s3_client().get_object(Bucket="user-files", Key=f"{key}/out.csv")["Body"].read()
    out = csv.read_csv(io.BytesIO(body)).to_pylist()
    assert report["records"] == 2 and report["columns"]["email"]["action"] == "tokenize"
    assert out[0]["email"].startswith("tok_") and out[0]["ip_address"] == "203.0.113.0"
    text = " ".join(r["note"] for r in out)
    for raw in ("Anne Roy", "Jane Doe", "415 555", "4111 1111"):  # masks keep the last 4 only
        assert raw not in text, raw
    assert "Honey Jar Pro" in text  # allow-listed product name kept
    assert "Paul Martin" not in str(out)


def test_bad_object_fails_alone_with_its_name(stack):
    from airflow.sdk.exceptions import AirflowFailException

    from include import storage
    from sting_airflow.operators import PresidioScrubOperator

    storage.s3_client().put_object(Bucket="user-files", Key="tests/privacy/bad.parquet", Body=b"not parquet")
    op = PresidioScrubOperator(task_id="scrub", input_uri="s3://user-files/tests/privacy/bad.parquet",
                               output_uri="s3://user-files/tests/privacy/bad.out.parquet")
    with pytest.raises(AirflowFailException, match="bad.parquet: cannot parse as parquet"):
        op.execute({})


def test_record_values_are_scrubbed_from_free_text_and_text_entities_skip_the_ner():
    import pyarrow as pa

    from include.privacy.engine import Scrubber
    from include.privacy.text import analyzer

    t = pa.table({"customer_name": ["Xq Zyvorra"], "city": ["Quillmarsh"],
                  "notes": ["xq zyvorra from Quillmarsh wrote in; see ticket 77."]})
    out, _ = Scrubber(profile="gdpr", salt="s" * 16, text_fields=["notes"]).scrub_table(t)
    note = out.column("notes")[0].as_py()
    assert "zyvorra" not in note.lower() and "Quillmarsh" not in note  # names the NER cannot know
    s = Scrubber(profile="gdpr", salt="s" * 16, text_fields=["notes"], text_entities=["EMAIL_ADDRESS", "PHONE_NUMBER"])
    assert set(s.text_actions()) == {"EMAIL_ADDRESS", "PHONE_NUMBER"}
    engine = analyzer(frozenset({"EMAIL_ADDRESS", "PHONE_NUMBER"}))
    assert "ner" not in engine.nlp_engine.nlp["en"].pipe_names  # no NER entity asked: no NER run


def test_custom_recognizers_find_what_the_stock_engine_misses():
    from include.privacy.text import analyze_texts

    text = ("Kimberly Reed called from 1600 Pennsylvania Avenue NW; card 2223 0031 2200 3222, "
            "phone 7785 7948, invoice INV-8614.")
    found = {(f.entity_type, text[f.start:f.end]) for f in analyze_texts(
        [text], frozenset({"PERSON", "LOCATION", "CREDIT_CARD", "PHONE_NUMBER"}))[0]}
    assert ("PERSON", "Kimberly Reed") in found
    assert ("CREDIT_CARD", "2223 0031 2200 3222") in found  # Mastercard 2-series (Luhn-valid)
    assert ("PHONE_NUMBER", "7785 7948") in found  # local number, phone word near
    assert any(e == "LOCATION" and "Pennsylvania Avenue" in v for e, v in found)
    assert not any("INV-8614" in v for _, v in found)  # ids are not names or places


def test_parallel_free_text_scrubbing_equals_one_process():
    from include.privacy.text import PARALLEL_MIN_TEXTS, scrub_texts

    texts = [f"ticket {i}: write to user{i}@example.com or call +1 415 555 {i % 10000:04d}" if i % 7 else None
             for i in range(PARALLEL_MIN_TEXTS + 101)]
    actions_ = {"EMAIL_ADDRESS": "hash", "PHONE_NUMBER": "mask"}
    one, c1 = scrub_texts(texts, actions_, salt="s" * 16, processes=1)
    two, c2 = scrub_texts(texts, actions_, salt="s" * 16, processes=2)
    assert one == two and c1 == c2 and c1["EMAIL_ADDRESS"] == sum(t is not None for t in texts)
    assert one[0] is None and "@" not in one[1]


def test_dates_in_prose_follow_the_profile_and_only_a_birth_date_is_one():
    from include.privacy.text import scrub_texts

    text = "Patient seen on 2026-02-03 at 5pm, DOB 03/14/1985; card ending 4421. Born on March 2, 1990 in Leeds."
    gdpr, counts = scrub_texts([text], {"DATE_OF_BIRTH": "generalize"}, salt="s" * 16)
    assert gdpr[0] == ("Patient seen on 2026-02-03 at 5pm, DOB 1985-03; card ending 4421. Born on 1990-03 in Leeds.")
    assert counts == {"DATE_OF_BIRTH": 2}
    hipaa, counts = scrub_texts([text], SYSTEM_PROFILES["hipaa"]["entities"], salt="s" * 16)
    assert "2026-02-03" not in hipaa[0] and "1985" not in hipaa[0] and "1990" not in hipaa[0]  # Safe Harbor: dates go
    assert "5pm" in hipaa[0] and "4421" in hipaa[0]  # a time and four digits are not dates
    assert counts["DATE"] == 1 and counts["DATE_OF_BIRTH"] == 2


def test_identifiers_named_in_prose_are_scrubbed():
    from include.privacy.text import analyze_texts

    text = ("MRN: 00482913 and med rec #A1234567; insurance member ID XJH123456789, Medicare MBI 1EG4-TE5-MK73; "
            "paid from acct # 4455667788 (a/c 123 456 7890). Invoice INV-88213, port 8080, account ending 4821.")
    found = {(f.entity_type, text[f.start:f.end]) for f in analyze_texts(
        [text], frozenset({"MEDICAL_RECORD_NUMBER", "HEALTH_PLAN_ID", "BANK_ACCOUNT"}))[0]}
    assert found == {("MEDICAL_RECORD_NUMBER", "00482913"), ("MEDICAL_RECORD_NUMBER", "A1234567"),
                     ("HEALTH_PLAN_ID", "XJH123456789"), ("HEALTH_PLAN_ID", "1EG4-TE5-MK73"),
                     ("BANK_ACCOUNT", "4455667788"), ("BANK_ACCOUNT", "123 456 7890")}


def test_a_name_in_prose_gets_the_pseudonym_of_the_name_column():
    t = pa.table({"full_name": ["Jane Roe", "Omar Haddad"],
                  "notes": ["Customer Jane Roe asked for a refund.", "Dear Omar Haddad, your order shipped."]})
    out, _ = Scrubber(profile="gdpr", salt=SALT, text_fields=["notes"]).scrub_table(t)
    for i in range(2):
        pseudonym = out.column("full_name")[i].as_py()
        assert pseudonym in out.column("notes")[i].as_py()
    assert out.column("notes")[0].as_py().startswith("Customer ")  # the role word is not part of the name
    # the analyzer alone, without the record's column, finds the same span
    from include.privacy.text import analyze_texts

    f = [x for x in analyze_texts(["Customer Jane Roe asked for a refund."], frozenset({"PERSON"}))[0]]
    assert [("Customer Jane Roe asked for a refund."[x.start:x.end]) for x in f] == ["Jane Roe"]

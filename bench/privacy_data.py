"""Labelled synthetic records for the privacy evaluation and benchmark: structured PII fields
and a free-text note with PII at known character spans, generated with Faker (fixed seed) across
locales and formats. Distractors (invoice ids, hostnames, ports, product names) are unlabelled
non-PII that a good engine leaves alone."""

from __future__ import annotations

import random
import string
from datetime import date

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_AU"]

TEMPLATES = [
    "{PERSON} called about invoice {inv} and asked us to call back on {PHONE_NUMBER} or email {EMAIL_ADDRESS}.",
    "Ticket {ticket}: login from {IP_ADDRESS} for user {EMAIL_ADDRESS}; card {CREDIT_CARD} was charged twice.",
    "Customer {PERSON} (SSN {US_SSN}) moved to {ADDRESS}, {CITY}.",
    "Spoke with {PERSON} regarding the refund to IBAN {IBAN_CODE}. {sentence}",
    "Please ship the {product} to {ADDRESS}. Contact {PHONE_NUMBER}. Host srv-{n}.corp.example noted port {port}.",
    "{sentence} The payment card {CREDIT_CARD} was declined from IP {IP_ADDRESS}.",
    "Met {PERSON} in {CITY} to review the {product} renewal; follow-up via {EMAIL_ADDRESS}.",
    "Dear {PERSON}, your SSN {US_SSN} and phone number {PHONE_NUMBER} were verified for order {inv}.",
    "Escalated by {PERSON}: repeated failures from {IP_ADDRESS} against {product}, see case {ticket}.",
    "{PERSON} reported that the technician visited {ADDRESS} in {CITY}; reach them at {PHONE_NUMBER}.",
]
# Written after the recognizers were tuned on TEMPLATES, and never used for tuning: the held-out set.
HOLDOUT_TEMPLATES = [
    "As discussed, {PERSON} will send the signed contract; her number is {PHONE_NUMBER}.",
    "Chargeback opened for {CREDIT_CARD}. Cardholder: {PERSON}, billing address {ADDRESS}, {CITY}.",
    "VPN session {ticket} came from {IP_ADDRESS}; the account owner {PERSON} denies it.",
    "Forwarded to {EMAIL_ADDRESS} at the request of {PERSON}; tax id on file {US_SSN}.",
    "Our driver could not find {ADDRESS}; {PERSON} asked to redeliver to the {CITY} depot.",
    "Wire of 1,200 EUR to {IBAN_CODE} approved; beneficiary {PERSON}, {CITY}.",
    "{product} alert: brute force from {IP_ADDRESS}, {n} attempts on port {port}, notify {EMAIL_ADDRESS}.",
    "Voicemail left on {PHONE_NUMBER} for {PERSON} about the {product} outage.",
]
# Identifiers the profiles cover as structured fields, written in prose (medical record numbers,
# health plan / insurance member ids, account numbers), dates of birth among other dates and
# times that are not PII (visit dates, "5pm", a card's last four digits), and names after role
# words ("Customer Jane Roe"). DEV_V2 is tuned on; HOLDOUT_V2 was written before any of that
# tuning and is only measured.
DEV_V2_TEMPLATES = [
    "Patient {PERSON}, MRN {MRN}, DOB {DOB}, seen on {VISIT} at {TIME} for a follow-up.",
    "Customer {PERSON} paid from account number {ACCOUNT}; card ending {last4} kept on file.",
    "Insurance member ID {HEALTH_PLAN}; the claim for the {VISIT} visit was approved for {PERSON}.",
    "Medical record number {MRN} belongs to {PERSON} (date of birth {DOB}); next appointment {VISIT}.",
    "Refund sent to acct # {ACCOUNT} on {VISIT}. Client {PERSON} confirmed by phone at {TIME}.",
    "{PERSON} (born {DOB}) updated the health plan number to {HEALTH_PLAN} and the email to {EMAIL_ADDRESS}.",
]
HOLDOUT_V2_TEMPLATES = [
    "Admitted {VISIT} around {TIME}; pt {PERSON}, chart no. {MRN}, birthdate {DOB}.",
    "Per our call, subscriber {PERSON} (plan ID {HEALTH_PLAN}) needs the {VISIT} bill re-issued to {ADDRESS}.",
    "Direct debit failed: A/C {ACCOUNT} held by {PERSON}. Retry scheduled {VISIT}, 9:30 am.",
    "Caller {PERSON} verified identity with D.O.B. {DOB} and the last four of the card ({last4}).",
    "Lab results for {PERSON} (med rec #{MRN}) were faxed to {PHONE_NUMBER} on {VISIT}.",
    "Beneficiary {PERSON}, policy number {HEALTH_PLAN}, asked that statements for account {ACCOUNT} go to {EMAIL_ADDRESS}.",
    "Technician {PERSON} logged in from {IP_ADDRESS} at {TIME} on {VISIT} to patch {product}.",
]
PRODUCTS = ["Honey Jar Pro", "Sentinel Edge", "Comb Analytics", "Hive Gateway", "Nectar Vault"]
LABELS = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "LOCATION",
          "MEDICAL_RECORD_NUMBER", "HEALTH_PLAN_ID", "BANK_ACCOUNT", "DATE_OF_BIRTH"]
# Template fields -> label (the others are the label's own name, or not PII)
FIELD_LABEL = {"ADDRESS": "LOCATION", "CITY": "LOCATION", "MRN": "MEDICAL_RECORD_NUMBER", "HEALTH_PLAN": "HEALTH_PLAN_ID",
               "ACCOUNT": "BANK_ACCOUNT", "DOB": "DATE_OF_BIRTH"}
# Not PII, and their meaning should survive scrubbing (unless a profile's date rule says otherwise)
KEEP_FIELDS = ("VISIT", "TIME", "last4")


def _mrn(rng) -> str:
    d = "".join(rng.choice(string.digits) for _ in range(10))
    return rng.choice([d[:8], f"{d[:7]}", f"{d[:4]}-{d[4:7]}-{d[7:9]}", f"{rng.choice('ABEHKM')}{d[:7]}",
                       f"MR{d[:8]}"])


def _health_plan(rng) -> str:
    up, dg = string.ascii_uppercase, string.digits
    mbi = f"{rng.choice('123456789')}{rng.choice(up)}{rng.choice(up + dg)}{rng.choice(dg)}-" \
          f"{rng.choice(up)}{rng.choice(up + dg)}{rng.choice(dg)}-{rng.choice(up)}{rng.choice(up)}{rng.choice(dg)}{rng.choice(dg)}"
    return rng.choice([mbi, "".join(rng.choice(up) for _ in range(3)) + "".join(rng.choice(dg) for _ in range(9)),
                       "W" + "".join(rng.choice(dg) for _ in range(9)),
                       f"{''.join(rng.choice(up) for _ in range(2))}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"])


def _account(rng) -> str:
    d = "".join(rng.choice(string.digits) for _ in range(14))
    return rng.choice([d[:8], d[:10], d[:12], f"{d[:4]}-{d[4:8]}-{d[8:12]}", f"{d[:3]} {d[3:6]} {d[6:10]}"])


def _date(d, rng) -> str:
    return rng.choice([d.isoformat(), d.strftime("%m/%d/%Y"), d.strftime("%d.%m.%Y"), d.strftime("%B %d, %Y"),
                       d.strftime("%d %B %Y"), d.strftime("%b %d %Y")])


def _time(rng) -> str:
    h = rng.randint(1, 12)
    return rng.choice([f"{h}pm", f"{h} pm", f"{h}:{rng.choice(['00', '15', '30', '45'])} am", f"{rng.randint(7, 19):02d}:{rng.choice(['05', '20', '40'])}"])


def _card(f, rng) -> str:
    n = f.credit_card_number(card_type=rng.choice(["visa16", "mastercard", "amex", "discover"]))
    style = rng.random()
    if style < 0.3 and len(n) == 16:
        return " ".join(n[i:i + 4] for i in range(0, 16, 4))
    if style < 0.5 and len(n) == 16:
        return "-".join(n[i:i + 4] for i in range(0, 16, 4))
    return n


def _ssn(us, rng) -> str:
    s = us.ssn()
    return s if rng.random() < 0.7 else s.replace("-", " ")


def make_records(n: int = 2400, seed: int = 20261123, templates: list[str] | None = None) -> list[dict]:
    from faker import Faker

    fake = Faker(LOCALES)
    Faker.seed(seed)
    rng = random.Random(seed)
    us = fake["en_US"]
    out = []
    for i in range(n):
        loc = LOCALES[i % len(LOCALES)]
        f = fake[loc]
        rec = {
            "id": i + 1, "locale": loc, "full_name": f.name(), "email": f.email(), "phone_mobile": f.phone_number(),
            "ssn": _ssn(us, rng), "credit_card_number": _card(us, rng), "iban": f.iban(),
            "ip_address": f.ipv4_public() if rng.random() < 0.7 else f.ipv6(),
            "date_of_birth": f.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
            "street_address": f.street_address().replace("\n", ", "), "city": f.city(),
        }
        values = {
            # 60% of the notes talk about the record's own customer, 40% about someone else
            "PERSON": rec["full_name"] if rng.random() < 0.6 else fake[rng.choice(LOCALES)].name(),
            "EMAIL_ADDRESS": rec["email"] if rng.random() < 0.6 else fake[rng.choice(LOCALES)].email(),
            "PHONE_NUMBER": rec["phone_mobile"] if rng.random() < 0.6 else fake[rng.choice(LOCALES)].phone_number(),
            "US_SSN": rec["ssn"], "CREDIT_CARD": rec["credit_card_number"], "IBAN_CODE": rec["iban"],
            "IP_ADDRESS": rec["ip_address"], "ADDRESS": rec["street_address"], "CITY": rec["city"],
            "inv": f"INV-{rng.randint(1000, 99999)}", "ticket": f"TCK-{rng.randint(100, 9999)}",
            "product": rng.choice(PRODUCTS), "n": rng.randint(1, 99), "port": rng.choice([22, 23, 443, 8080]),
            "sentence": us.sentence(nb_words=rng.randint(6, 14)),
            "MRN": _mrn(rng), "HEALTH_PLAN": _health_plan(rng), "ACCOUNT": _account(rng),
            "DOB": _date(date.fromisoformat(rec["date_of_birth"]), rng),
            "VISIT": _date(f.date_between(start_date="-2y", end_date="today"), rng), "TIME": _time(rng),
            "last4": "".join(rng.choice(string.digits) for _ in range(4)),
        }
        rec.update(mrn=values["MRN"], health_plan_id=values["HEALTH_PLAN"], account_number=values["ACCOUNT"])
        pool = templates or TEMPLATES
        template = pool[rng.randrange(len(pool))]
        text, spans, keep = "", [], []

        for literal, field, _, _ in string.Formatter().parse(template):
            text += literal
            if field is None:
                continue
            value = str(values[field])
            label = FIELD_LABEL.get(field, field)
            if label in LABELS:
                spans.append({"entity": label, "start": len(text), "end": len(text) + len(value), "value": value})
            elif field in KEEP_FIELDS:
                keep.append({"field": field, "start": len(text), "end": len(text) + len(value), "value": value})
            text += value
        rec["notes"] = text
        rec["_spans"] = spans
        rec["_keep"] = keep
        out.append(rec)
    return out

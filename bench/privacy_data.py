"""Labelled synthetic records for the privacy evaluation and benchmark: structured PII fields
and a free-text note with PII at known character spans, generated with Faker (fixed seed) across
locales and formats. Distractors (invoice ids, hostnames, ports, product names) are unlabelled
non-PII that a good engine leaves alone."""

from __future__ import annotations

import random
import string

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
PRODUCTS = ["Honey Jar Pro", "Sentinel Edge", "Comb Analytics", "Hive Gateway", "Nectar Vault"]
LABELS = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "LOCATION"]


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
        }
        pool = templates or TEMPLATES
        template = pool[rng.randrange(len(pool))]
        text, spans = "", []

        for literal, field, _, _ in string.Formatter().parse(template):
            text += literal
            if field is None:
                continue
            value = str(values[field])
            label = "LOCATION" if field in ("ADDRESS", "CITY") else field
            if label in LABELS:
                spans.append({"entity": label, "start": len(text), "end": len(text) + len(value), "value": value})
            text += value
        rec["notes"] = text
        rec["_spans"] = spans
        out.append(rec)
    return out

"""Compliance profiles: which entity types a profile protects and how, and which structured
fields are which entity. Seeded into `scrubbing_profiles` as system defaults.

Why these entities (see the README for the full table):
- gdpr: personal data that identifies a person directly or by combination (Art. 4(1)), and
  online identifiers such as IP addresses (Recital 30); special categories (health) removed.
- ccpa: "personal information" of Cal. Civ. Code 1798.140(v): identifiers, government ids,
  financial account numbers, internet activity (IP), geolocation, biometrics.
- hipaa: the 18 Safe Harbor identifiers of 45 CFR 164.514(b)(2): names, geography smaller than a
  state, all date elements except year, phone, fax, email, SSN, medical record numbers, health
  plan numbers, account numbers, licence numbers, vehicle and device ids, URLs, IP addresses,
  biometrics, photos, any other unique id. Safe Harbor allows only the year of a date, and
  `generalize` keeps the month, so HIPAA removes dates of birth.
- financial_data (from upstream STING): card numbers, IBAN/bank accounts, tax ids.
"""

from __future__ import annotations

import fnmatch

# Structured field name globs -> entity type (first match wins; case-insensitive).
FIELD_ENTITIES: list[tuple[str, str]] = [
    ("*password*", "SECRET"), ("*secret*", "SECRET"), ("*token*", "SECRET"), ("*api_key*", "SECRET"),
    ("*email*", "EMAIL_ADDRESS"), ("*e_mail*", "EMAIL_ADDRESS"),
    ("*phone*", "PHONE_NUMBER"), ("*mobile*", "PHONE_NUMBER"), ("*fax*", "PHONE_NUMBER"),
    ("ssn", "US_SSN"), ("*_ssn", "US_SSN"), ("*social_security*", "US_SSN"),
    ("*date_of_birth*", "DATE_OF_BIRTH"), ("dob", "DATE_OF_BIRTH"), ("*birth*", "DATE_OF_BIRTH"),
    ("*card_number*", "CREDIT_CARD"), ("*credit_card*", "CREDIT_CARD"), ("pan", "CREDIT_CARD"),
    ("*iban*", "IBAN_CODE"), ("*account_number*", "BANK_ACCOUNT"), ("*routing*", "BANK_ACCOUNT"),
    ("*ip_address*", "IP_ADDRESS"), ("*source_ip*", "IP_ADDRESS"), ("*client_ip*", "IP_ADDRESS"), ("ip", "IP_ADDRESS"),
    ("*_ip", "IP_ADDRESS"), ("ip_*", "IP_ADDRESS"),
    ("*mrn*", "MEDICAL_RECORD_NUMBER"), ("*medical_record*", "MEDICAL_RECORD_NUMBER"),
    ("*health_plan*", "HEALTH_PLAN_ID"), ("*insurance_id*", "HEALTH_PLAN_ID"),
    ("*full_name*", "PERSON"), ("first_name", "PERSON"), ("last_name", "PERSON"), ("*patient_name*", "PERSON"),
    ("*owner_name*", "PERSON"), ("*customer_name*", "PERSON"), ("*contact_name*", "PERSON"),
    ("*mac_address*", "DEVICE_ID"), ("*serial_number*", "DEVICE_ID"),
    ("city", "LOCATION"), ("*_city", "LOCATION"), ("town", "LOCATION"), ("*street*", "LOCATION"), ("*address*", "LOCATION"), ("*zip*", "ZIP_CODE"), ("*postal_code*", "ZIP_CODE"),
    ("*passport*", "PASSPORT"), ("*driver_licen*", "DRIVER_LICENSE"), ("*tax_id*", "TAX_ID"),
    ("*vin*", "VEHICLE_ID"), ("*device_id*", "DEVICE_ID"), ("*url*", "URL"),
]

# GDPR's actions; CCPA differs only where identifiers must stay reversible for consumer requests.
_GDPR_ENTITIES = {
    "PERSON": "hash", "EMAIL_ADDRESS": "hash", "PHONE_NUMBER": "mask", "US_SSN": "remove",
    "DATE_OF_BIRTH": "generalize", "CREDIT_CARD": "mask", "IBAN_CODE": "mask", "BANK_ACCOUNT": "mask",
    "IP_ADDRESS": "anonymize_ip", "LOCATION": "redact", "ZIP_CODE": "redact", "PASSPORT": "remove",
    "DRIVER_LICENSE": "remove", "TAX_ID": "remove", "MEDICAL_RECORD_NUMBER": "remove",
    "HEALTH_PLAN_ID": "remove", "DEVICE_ID": "hash", "VEHICLE_ID": "hash", "URL": "redact",
}
# HIPAA Safe Harbor: every identifier removed, except ZIP codes (redacted).
# DATE (free text only: a calendar date that is not a date of birth, e.g. an admission date) is
# one of Safe Harbor's date elements; gdpr and ccpa keep it.
_SAFE_HARBOR = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "DATE_OF_BIRTH", "DATE", "MEDICAL_RECORD_NUMBER",
                "HEALTH_PLAN_ID", "BANK_ACCOUNT", "IBAN_CODE", "CREDIT_CARD", "DRIVER_LICENSE", "PASSPORT", "TAX_ID",
                "VEHICLE_ID", "DEVICE_ID", "URL", "IP_ADDRESS", "LOCATION"]

SYSTEM_PROFILES: dict[str, dict] = {
    "gdpr": {
        "description": "EU GDPR: direct identifiers hashed (joinable), contact data masked, online ids anonymised",
        "compliance_standard": "gdpr",
        "entities": _GDPR_ENTITIES,
    },
    "ccpa": {
        "description": "California CCPA/CPRA personal information: identifiers tokenized (reversible for access requests)",
        "compliance_standard": "ccpa",
        "entities": {**_GDPR_ENTITIES, **dict.fromkeys(("PERSON", "EMAIL_ADDRESS", "DEVICE_ID", "VEHICLE_ID"),
                                                       "tokenize")},
    },
    "hipaa": {
        "description": "HIPAA Safe Harbor (45 CFR 164.514(b)(2)): the 18 identifiers removed or generalised",
        "compliance_standard": "hipaa",
        "entities": {**dict.fromkeys(_SAFE_HARBOR, "remove"), "ZIP_CODE": "redact"},
    },
    "financial_data": {
        "description": "Payment and banking data (upstream STING): PCI card numbers masked, accounts tokenized",
        "compliance_standard": "pci",
        "entities": {
            "CREDIT_CARD": "mask", "IBAN_CODE": "tokenize", "BANK_ACCOUNT": "tokenize", "TAX_ID": "remove",
            "US_SSN": "remove", "EMAIL_ADDRESS": "hash", "PERSON": "hash", "PHONE_NUMBER": "mask",
        },
    },
}


SECRET_MARKERS = ("password", "token", "key", "secret")


def is_secret_key(name: str) -> bool:
    n = name.lower()
    return any(m in n for m in SECRET_MARKERS)


def decide(path: str, profile: str | None, custom_rules: list[dict]) -> tuple[str, str] | None:
    """(action, entity) for a column or dotted field path, or None to keep it: keys holding
    secrets are always redacted ('secret'); then custom rules, top to bottom (field = exact
    name or path, pattern = glob); then the profile's action for the field's entity type.
    Light on purpose (no pyarrow): comb definitions call it at DAG parse time."""
    leaf = path.rsplit(".", 1)[-1]
    entity = field_entity(leaf)
    if is_secret_key(leaf) or entity == "SECRET":
        return "secret", "SECRET"
    for r in custom_rules:
        target = r.get("field") or r.get("pattern")
        if (r.get("field") and target in (path, leaf)) or (r.get("pattern") and (
                fnmatch.fnmatchcase(path, target) or fnmatch.fnmatchcase(leaf, target))):
            return r["action"], r.get("entity") or entity or leaf.upper()
    if profile and entity:
        action = SYSTEM_PROFILES[profile]["entities"].get(entity)
        if action:
            return action, entity
    return None


def field_entity(column: str) -> str | None:
    c = column.lower()
    for pattern, entity in FIELD_ENTITIES:
        if fnmatch.fnmatchcase(c, pattern):
            return entity
    return None


def seed_profiles(conn) -> list[str]:
    """Upsert the system profiles into scrubbing_profiles (by name)."""
    from psycopg.types.json import Jsonb

    for name, p in SYSTEM_PROFILES.items():
        conn.execute(
            """INSERT INTO scrubbing_profiles (name, description, compliance_standard, rules, is_system_default)
               VALUES (%s, %s, %s, %s, TRUE)
               ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description,
                   compliance_standard = EXCLUDED.compliance_standard, rules = EXCLUDED.rules,
                   is_system_default = TRUE""",
            (name, p["description"], p["compliance_standard"],
             Jsonb({"entities": p["entities"], "fields": [{"pattern": pt, "entity": e} for pt, e in FIELD_ENTITIES]})),
        )
    return list(SYSTEM_PROFILES)

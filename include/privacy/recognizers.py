"""Recognizers added to Presidio's stock set, and a filter for its false positives. Measured by
bench/privacy_eval.py (README: "Measured quality"); each one is there because it moved a number.

- NameLikeOrgRecognizer: en_core_web_sm often labels a person's name ORG or NORP ("Kimberly Reed
  called ..."), which Presidio ignores. A span of 2-3 title-case alphabetic words with no
  organisation word in it is reported as PERSON (over-scrubbing an organisation that looks like a
  name is the cheaper mistake here).
- TriggeredNameRecognizer: a title-case name after a title or a contact verb ("Dr. Anne Roy",
  "spoke with Paul Martin", "contact: Jane Doe").
- Street addresses ("42 Rue de la Paix", "1600 Pennsylvania Avenue NW", "Hauptstrasse 5") and
  "City, ST 12345" as LOCATION.
- Findings of PERSON / LOCATION / NRP that contain a digit are dropped (invoice ids, hostnames,
  ticket numbers the NER mislabels).
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult

ORG_WORDS = {
    "inc", "inc.", "llc", "ltd", "ltd.", "gmbh", "ag", "sa", "sarl", "plc", "corp", "corp.", "co", "co.", "company",
    "group", "bank", "university", "college", "school", "hospital", "clinic", "foundation", "institute", "agency",
    "association", "partners", "holdings", "services", "solutions", "systems", "technologies", "international",
    "department", "ministry", "council", "committee", "airlines", "insurance", "capital", "labs", "studio", "the",
    "and", "&", "of", "und", "et", "und", "kg", "gbr", "e.v.", "s.a.", "s.p.a.", "spa", "bv", "nv", "oy", "ab",
}
_WORD = re.compile(r"^[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿß'’-]+$")


def looks_like_name(text: str) -> bool:
    words = text.split()
    if not 2 <= len(words) <= 3:
        return False
    return all(_WORD.match(w) and w.lower() not in ORG_WORDS for w in words)


class NameLikeOrgRecognizer(EntityRecognizer):
    """PERSON from spaCy ORG/NORP/GPE spans that look like a personal name (needs the NER)."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="NameLikeOrgRecognizer", supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        doc = getattr(nlp_artifacts, "tokens", None)
        if doc is None or "PERSON" not in entities:
            return []
        out = []
        for ent in doc.ents:
            if ent.label_ in ("ORG", "NORP") and looks_like_name(ent.text):
                out.append(RecognizerResult("PERSON", ent.start_char, ent.end_char, 0.6))
        return out


_NAME = r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿß'’-]+(?:[ ](?:de |van |von |da |di |le |la )?[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿß'’-]+){1,2}"
_TRIGGER = (r"(?<=\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Herr|Frau|M|Mme|Sr|Sra)\.?[ ])"
            r"|(?<=\b(?:called|contact|contacted|spoke with|speak to|talked to|customer|patient|client|owner|"
            r"assigned to|reported by|signed by|from|Dear|Name|name)[:,]?[ ])")


# Presidio compiles patterns case-insensitively by default; capitals are the signal here.
_FLAGS = re.DOTALL | re.MULTILINE


def triggered_name_recognizer() -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity="PERSON", name="TriggeredNameRecognizer", supported_language="en", global_regex_flags=_FLAGS,
        patterns=[Pattern("name after a title or a contact word", f"(?:{_TRIGGER}){_NAME}", 0.55)],
    )


_STREET_WORDS = (r"Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Lane|Ln\.?|Drive|Dr\.?|Boulevard|Blvd\.?|Court|Ct\.?|"
                 r"Way|Place|Pl\.?|Square|Sq\.?|Terrace|Parkway|Pkwy|Circle|Highway|Hwy|Crescent|Close|Row|Trail")
_CAP = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'’.-]*"


def address_recognizer() -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity="LOCATION", name="StreetAddressRecognizer", supported_language="en", global_regex_flags=_FLAGS,
        patterns=[
            # 1600 Pennsylvania Avenue NW / 12 Baker Street, Suite 4
            Pattern("number street-name street-word", rf"\b\d{{1,6}}[ ](?:{_CAP}[ ]){{1,4}}(?:{_STREET_WORDS})"
                    r"(?:[ ](?:N|S|E|W|NE|NW|SE|SW))?\b(?:,?[ ](?:Apt\.?|Suite|Unit)[ ]\d+\w?)?", 0.6),
            # 42 rue de la Paix / 7 Via Roma / 3 Calle Mayor
            Pattern("number rue/via/calle", r"\b\d{1,5},?[ ](?:rue|Rue|avenue|boulevard|place|allée|chemin|impasse|"
                    r"Via|via|Calle|calle|Avenida|Rua|Paseo)[ ](?:(?:de|du|des|la|le|del|da|dos|l')[ ]?)*"
                    rf"{_CAP}(?:[ ]{_CAP}){{0,3}}", 0.6),
            # Hauptstraße 5 / Am Markt 12a / Kirchweg 3
            Pattern("German street number", r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|"
                    r"damm|ufer)[ ]\d{1,4}[a-z]?\b", 0.6),
            # Springfield, IL 62704
            Pattern("city, state zip", rf"\b{_CAP}(?:[ ]{_CAP})?,[ ][A-Z]{{2}}[ ]\d{{5}}(?:-\d{{4}})?\b", 0.6),
        ],
    )


def card_recognizer():
    """Presidio's card pattern misses Mastercard's 2221-2720 range (and 4-6-5 grouped Amex): any
    13-19 digit run starting 2-6, single spaces or dashes allowed, kept only if the Luhn check
    passes (CreditCardRecognizer's own validation)."""
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    return CreditCardRecognizer(
        patterns=[Pattern("13-19 digits incl. the 2-series", r"\b[2-6]\d{3}(?:[ -]?\d){9,15}\b", 0.3)],
        name="StingCreditCardRecognizer", supported_language="en")


def phone_recognizer() -> PatternRecognizer:
    """Numbers the phonenumbers library rejects (local numbers without an area code, foreign
    formats, extensions) still are phone numbers when a phone word is near: a weak digit pattern
    that the context words lift over the threshold."""
    return PatternRecognizer(
        supported_entity="PHONE_NUMBER", name="ContextPhoneRecognizer", supported_language="en",
        patterns=[Pattern("digits with phone separators", r"(?<![\w.+-])(?:\+|00)?\(?\d[\d ()./-]{5,18}\d"
                          r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?(?![\w.-]*\w)", 0.15)],
        context=["phone", "call", "tel", "telephone", "mobile", "cell", "contact", "reach", "fax", "number", "sms",
                 "whatsapp", "dial", "ring"],
        global_regex_flags=_FLAGS)


def custom_recognizers(entities: frozenset[str], with_ner: bool) -> list:
    out = []
    if "CREDIT_CARD" in entities:
        out.append(card_recognizer())
    if "PHONE_NUMBER" in entities:
        out.append(phone_recognizer())
    if "PERSON" in entities:
        out.append(triggered_name_recognizer())
        if with_ner:
            out.append(NameLikeOrgRecognizer())
    if "LOCATION" in entities:
        out.append(address_recognizer())
    return out


_DIGIT = re.compile(r"\d")


_PRECISE = {"IP_ADDRESS", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS"}


def drop_false_positives(text: str, findings: list) -> list:
    """PERSON / LOCATION / NRP spans with a digit are ids, not names or places - except the
    address patterns above, which carry their own numbers. A PHONE_NUMBER overlapping a
    validated entity (IP, SSN, card, IBAN, email) is that entity, not a phone."""
    keep = []
    precise = [f for f in findings if f.entity_type in _PRECISE]
    for f in findings:
        if f.entity_type == "PHONE_NUMBER" and any(p.start < f.end and p.end > f.start for p in precise):
            continue
        if f.entity_type in ("PERSON", "NRP") and _DIGIT.search(text[f.start:f.end]):
            continue
        if f.entity_type == "LOCATION" and _DIGIT.search(text[f.start:f.end]) and not _is_address(f):
            continue
        keep.append(f)
    return keep


def _is_address(f) -> bool:
    meta = getattr(f, "recognition_metadata", None) or {}
    return meta.get("recognizer_name") == "StreetAddressRecognizer"

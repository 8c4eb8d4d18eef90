"""One document never takes the rest down: a DOCX decompression bomb fails alone in seconds and
under 1 GB; any exception while preparing a document fails that document, not its batch; the
byte and character limits agree (a text file within its byte limit always fits); a document that
is re-registered while it is processed is never claimed twice."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import zipfile

from include import storage
from include.db import connect
from include.documents import ingest
from include.documents.extract import ExtractionError, Limits, extract_text
from tests.doctools import docx_bytes
from tests.test_documents import docs, jar, upload  # noqa: F401  (fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_HEAD = {
    "word/document.xml": (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w='
                          b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>',
                          b"<w:p/>", b"</w:body></w:document>"),
    "word/styles.xml": (b'<?xml version="1.0" encoding="UTF-8"?><w:styles xmlns:w='
                        b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main">',
                        b'<w:style w:type="paragraph"/>', b"</w:styles>"),
    "word/numbering.xml": (b'<?xml version="1.0"?><w:numbering xmlns:w='
                           b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main">',
                           b"<w:num/>", b"</w:numbering>"),
    "_rels/.rels": (b'<?xml version="1.0"?><Relationships xmlns='
                    b'"http://schemas.openxmlformats.org/package/2006/relationships">',
                    b"<x/>", b"</Relationships>"),
    "word/media/image1.png": (b"\x89PNG\r\n\x1a\n", b"\0" * 64, b""),
}


def docx_bomb(mb: float = 200, part: str = "word/document.xml", keep_text: bool = True) -> bytes:
    """A real DOCX (python-docx's template) whose `part` holds `mb` MB of repeated elements (or
    zero bytes for a media part), deflated to a few hundred KB. The other parts stay as they were:
    the main document still has its text."""
    src = zipfile.ZipFile(io.BytesIO(docx_bytes(["the real text of the document"] if keep_text else ["x"])))
    out = io.BytesIO()
    head, unit, tail = _HEAD[part]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in src.infolist():
            if info.filename != part:
                z.writestr(info, src.read(info.filename))
        with z.open(part, "w", force_zip64=True) as f:
            f.write(head)
            block = unit * max(1, 1_000_000 // len(unit))
            for _ in range(max(1, int(mb * 1024 * 1024 // len(block)))):
                f.write(block)
            f.write(tail)
    return out.getvalue()


_PROBE = """
import json, sys, time
sys.path[:0] = ['.']
if sys.argv[1] == 'model':
    from include.documents import embedding
    embedding.embed(['a warm-up sentence'])  # the worker's steady state: model loaded and used
from include.documents.extract import extract_text, ExtractionError

def peak_mb():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024

print(json.dumps({'baseline_mb': peak_mb()}), flush=True)
for path in sys.argv[2:]:
    open('/proc/self/clear_refs', 'w').write('5')  # reset the peak: each document measured alone
    t = time.monotonic()
    try:
        extract_text(open(path, 'rb').read(), 'docx'); error = None
    except ExtractionError as e:
        error = str(e)
    print(json.dumps({'path': path, 'error': error, 'seconds': time.monotonic() - t, 'peak_mb': peak_mb()}),
          flush=True)
"""


def measure(paths: list, with_model: bool) -> tuple[float, list[dict]]:
    import json

    p = subprocess.run([sys.executable, "-c", _PROBE, "model" if with_model else "bare", *map(str, paths)],
                       cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert lines and len(lines) == len(paths) + 1, p.stdout + p.stderr[-3000:]
    return lines[0]["baseline_mb"], lines[1:]


BOMBS = {  # name -> (part, MB expanded)
    "document.xml, 200 MB": ("word/document.xml", 200),
    "styles.xml, 200 MB": ("word/styles.xml", 200),
    "numbering.xml, 90 MB": ("word/numbering.xml", 90),
    "_rels/.rels, 90 MB": ("_rels/.rels", 90),
    "media part, 400 MB of zeros": ("word/media/image1.png", 400),
    # within the byte limit, over the element limit: 1.99 million empty paragraphs in ~20 KB
    "1.99M empty paragraphs": ("word/document.xml", 11.4),
    "1.2M style elements": ("word/styles.xml", 34),
}


def test_a_bomb_in_any_part_fails_its_document_under_1gb_with_the_model_loaded(tmp_path):
    """Each part of a DOCX can carry the bomb: the main document, styles, numbering, the package
    relationships, a media part, or an element count within the byte limit. Each fails alone,
    in seconds; the peak RSS of the whole worker process (embedding model loaded and used) stays
    under 1 GB while it is refused, and a real DOCX beside them still extracts."""
    paths = []
    for name, (part, mb) in BOMBS.items():
        data = docx_bomb(mb, part)
        assert len(data) < 1_000_000, (name, len(data))
        path = tmp_path / (name.replace(" ", "_").replace(",", "").replace("/", "_") + ".docx")
        path.write_bytes(data)
        paths.append(path)
    good = tmp_path / "good.docx"
    good.write_bytes(docx_bytes([f"paragraph {i} about SSH honeypots" for i in range(5000)],
                                table=[["ip", "port"], ["203.0.113.7", "22"]]))
    baseline, results = measure([*paths, good], with_model=True)
    print(f"\nworker with the model loaded: {baseline:.0f} MiB")
    for name, r in zip([*BOMBS, "good"], results, strict=True):
        print(f"{name:32s} {r['seconds']:5.2f} s  peak {r['peak_mb']:6.0f} MiB  {(r['error'] or 'ok')[:90]}")
    for name, r in zip(BOMBS, results, strict=False):
        assert r["error"] and ("decompression bomb" in r["error"] or "XML elements" in r["error"]), (name, r)
        assert r["peak_mb"] < 1024 and r["seconds"] < 30, (name, r)
    assert results[-1]["error"] is None and results[-1]["peak_mb"] < 1024


def test_docx_text_streams_in_document_order():
    segs = extract_text(docx_bytes(["first paragraph", "second\tone"], table=[["a", "b"], ["1", "2"]]), "docx")
    assert segs[0].text.splitlines() == ["first paragraph", "second\tone", "a | b", "1 | 2"]


def test_docx_bomb_fails_alone_in_seconds_under_1gb(tmp_path):
    """The bare extraction under a hard 1 GB address-space limit (no model)."""
    bomb = docx_bomb()
    assert len(bomb) < 1_000_000
    path = tmp_path / "bomb.docx"
    path.write_bytes(bomb)
    code = ("import sys, time, resource; sys.path[:0] = ['.']\n"
            "from include.documents.extract import extract_text, ExtractionError\n"
            "t = time.monotonic()\n"
            "try:\n"
            "    extract_text(open(sys.argv[1], 'rb').read(), 'docx'); print('NO ERROR')\n"
            "except ExtractionError as e:\n"
            "    print('ERROR', e)\n"
            "print('SECONDS', time.monotonic() - t)\n"
            "print('RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1024 ** 3, 1024 ** 3))  # 1 GB of address space

    p = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                       timeout=60, preexec_fn=limit_memory)
    out = dict(line.split(" ", 1) for line in p.stdout.splitlines() if " " in line)
    assert "ERROR" in out and "decompression bomb" in out["ERROR"], p.stdout + p.stderr[-2000:]
    assert float(out["SECONDS"]) < 10 and float(out["RSS_MB"]) < 1024


def test_html_with_too_many_tags_is_refused_before_parsing():
    lim = Limits(max_html_elements=1000)
    try:
        extract_text(b"<html><body>" + b"<p>x</p>" * 2000 + b"</body></html>", "html", lim)
        raise AssertionError("over the limit")
    except ExtractionError as e:
        assert "tags, over the limit of 1,000" in str(e)
    assert extract_text(b"<html><body><p>fine</p></body></html>", "html", lim)[0].text == "fine"


def test_limits_agree_a_text_file_within_its_byte_limit_always_fits():
    lim = Limits(max_bytes=1_000_000, max_chars=10_000)
    assert len(extract_text(b"a" * 10_000, "txt", lim)[0].text) == 10_000  # the largest text file accepted
    try:
        extract_text(b"a" * 10_001, "txt", lim)
        raise AssertionError("over the limit")
    except ExtractionError as e:
        assert "txt file of 10,001 bytes exceeds the limit of 10,000 bytes" in str(e)
    assert lim.byte_limit("pdf") == 1_000_000 and lim.byte_limit("md") == 10_000


def test_any_exception_fails_the_document_not_the_batch(jar):  # noqa: F811
    deep = ("[" * 200_000 + "]" * 200_000).encode()  # json.loads raises RecursionError
    ids = [upload(jar, "deep.json", deep), upload(jar, "fine.txt", b"Honeypots catch SSH brute force on port 22.")]
    out = ingest.process(ids)
    d = docs(jar)
    assert d["deep.json"]["processing_status"] == "failed"
    assert "RecursionError" in d["deep.json"]["metadata"]["error"]["reason"]
    assert d["fine.txt"]["processing_status"] == "completed" and out is not None


def test_re_registering_a_document_being_processed_never_shares_it(jar):  # noqa: F811
    doc = upload(jar, "a.txt", b"first version about telnet honeypots")
    assert ingest.claim(document_ids=[doc]) == [doc]  # run 1 is processing it
    key = f"documents/{jar}/a.txt"
    storage.s3_client().put_object(Bucket="user-files", Key=key, Body=b"second version about ssh honeypots")
    with connect() as conn:  # re-registered (no etag) while run 1 holds it
        ingest.register_upload(conn, jar, storage.uri("user-files", key))
    assert docs(jar)["a.txt"]["processing_status"] == "processing"
    assert doc not in ingest.claim(jar_id=jar)  # a second run does not take it
    ingest.discover_uploads(prefix=f"documents/{jar}/")
    assert docs(jar)["a.txt"]["processing_status"] == "processing"
    ingest.process([doc])  # run 1 finishes: the document goes back to pending for the new bytes
    row = docs(jar)["a.txt"]
    assert row["processing_status"] == "pending" and "requeue" not in row["metadata"]
    assert ingest.claim(jar_id=jar) == [doc]
    ingest.process([doc])
    assert docs(jar)["a.txt"]["processing_status"] == "completed"

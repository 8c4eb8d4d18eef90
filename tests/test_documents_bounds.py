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


def docx_bomb(mb: int = 200) -> bytes:
    """A real DOCX whose word/document.xml holds `mb` MB of empty paragraphs (a few hundred KB)."""
    src = zipfile.ZipFile(io.BytesIO(docx_bytes(["x"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                z.writestr(info, src.read(info.filename))
        head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w='
                b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(head)
            block = b"<w:p/>" * 100_000
            for _ in range(mb * 1024 * 1024 // len(block)):
                f.write(block)
            f.write(b"</w:body></w:document>")
    return out.getvalue()


def test_docx_bomb_fails_alone_in_seconds_under_1gb(tmp_path):
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

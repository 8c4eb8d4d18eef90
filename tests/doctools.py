"""Real documents of every supported format, made in the test (fpdf2, python-docx, pypdf)."""

from __future__ import annotations

import functools
import io
import json

LONG_LINE = " ".join(f"token{i}" for i in range(1200))  # one line of ~11,000 characters


def pdf_bytes(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def encrypted_pdf_bytes() -> bytes:
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["top secret"]))))
    w.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-256")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    from docx import Document

    d = Document()
    for p in paragraphs:
        d.add_paragraph(p)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, val in enumerate(row):
                t.cell(r, c).text = val
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@functools.cache
def corpus() -> dict[str, bytes]:
    """name -> bytes; every file carries a distinctive phrase the tests look for."""
    return {
        "guide.pdf": pdf_bytes(["Deploying an SSH honeypot: page one talks about port 22.",
                                "Page two covers rotating credentials every week."]),
        "policy.docx": docx_bytes(["Incident response policy for honey jars.", "Escalate critical alerts."],
                                  [["severity", "owner"], ["critical", "on-call analyst"]]),
        "page.html": b"<html><head><title>Telnet traps</title><style>p{}</style><script>var x=1;</script></head>"
                     b"<body><h1>Telnet honeypots</h1><p>Mirai scans telnet on port 23.</p></body></html>",
        "notes.md": ("# Retention\n\nEvents stay hot for **seven days**.\n\n" + LONG_LINE + "\n").encode(),
        "latin1.txt": "Réseau compromis: l'équipe a bloqué l'adresse à Göteborg.".encode("latin-1"),
        "utf16.txt": "Threat feed imported: 1,204 indicators from the Zürich sensor.".encode("utf-16"),
        "alert.json": json.dumps({"alert": {"type": "credential stuffing", "source": {"ip": "203.0.113.9"}},
                                  "tags": ["web", "login"]}).encode(),
        "iocs.csv": b"indicator;type;confidence\nevil.example;domain;0.9\n198.51.100.7;ip;0.7\n",
    }


@functools.cache
def bad_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, the reason the pipeline must report)."""
    return {
        "corrupt.pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without xref", "corrupt PDF"),
        "locked.pdf": (encrypted_pdf_bytes(), "encrypted PDF"),
        "empty.txt": (b"", "empty file"),
        "program.txt": (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40, "binary content"),
        "garbage.txt": (bytes([0x81, 0x8d, 0x8f, 0x90, 0x9d]) * 200 + b"\xff\xfe\xfd" * 300, "undecodable"),
        "huge.txt": (b"word " * 300_000, "exceeds the limit"),
    }

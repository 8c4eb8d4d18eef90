"""Text extraction: bytes of a document in, text segments out, or a clear reason why not.

One well-kept library per format: pypdf (PDF), python-docx (DOCX), BeautifulSoup + lxml (HTML),
charset-normalizer (plain text and Markdown in any common encoding), the standard library's json
and csv, pyarrow (Parquet delivered by honey combs). No line is dropped or cut, however long.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

COMMON_ENCODINGS = ["utf_8", "utf_16", "utf_32", "cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2", "cp1251",
                    "koi8_r", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "shift_jis", "euc_jp", "gb18030",
                    "big5", "euc_kr"]
TEXT_TYPES = {"txt", "md", "csv", "json"}  # formats whose characters are (about) their bytes
SUPPORTED = {"pdf", "docx", "html", "htm", "md", "markdown", "txt", "text", "json", "csv", "parquet"}


class ExtractionError(ValueError):
    """The document cannot be turned into text; the message is the reason shown to users."""


@dataclass(frozen=True)
class Limits:
    """What one document may cost. `max_bytes` bounds a file whose text is a fraction of its bytes
    (PDF, DOCX, HTML, Parquet); text formats (txt, md, csv, json) are bounded by `max_chars` bytes,
    so every text file within its byte limit also fits the character limit. `max_expanded_bytes`
    and `max_xml_elements` bound what a compressed container (DOCX) expands to, checked before
    it is parsed."""

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_chars: int = 5_000_000
    max_expanded_bytes: int = 100 * 1024 * 1024
    max_xml_elements: int = 2_000_000

    FIELDS = ("max_bytes", "max_pages", "max_chars", "max_expanded_bytes", "max_xml_elements")

    @classmethod
    def from_jar_config(cls, config: dict | None, default: Limits | None = None) -> Limits:
        """Per-jar overrides in honey_jars.config.limits ({max_bytes, max_pages, max_chars, ...})."""
        base = default or cls()
        over = (config or {}).get("limits") or {}
        return cls(**{f: int(over.get(f, getattr(base, f))) for f in cls.FIELDS})

    def byte_limit(self, file_type: str) -> int:
        """The largest file accepted for this type (checked before it is read)."""
        if normalize_type(file_type) in TEXT_TYPES:
            return min(self.max_bytes, self.max_chars)
        return self.max_bytes


@dataclass
class Segment:
    """A piece of text with metadata that every chunk made from it inherits (e.g. a PDF page
    number, or the primary key of a comb's record)."""

    text: str
    meta: dict = field(default_factory=dict)


def normalize_type(file_type: str) -> str:
    t = file_type.lower().lstrip(".")
    return {"htm": "html", "markdown": "md", "text": "txt"}.get(t, t)


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding; binary or undecodable bytes are an error, not mojibake."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractionError("binary content (NUL bytes), not text")
    from charset_normalizer import from_bytes

    try:
        text = data.decode("utf-8-sig")  # the common case, and exact
    except UnicodeDecodeError:
        # Short texts fit several code pages equally well: among the best-scoring candidates,
        # take the most widely used encoding (COMMON_ENCODINGS is in order of preference).
        matches = list(from_bytes(data, cp_isolation=COMMON_ENCODINGS)) or list(from_bytes(data))
        if not matches:
            raise ExtractionError("undecodable bytes: no text encoding fits") from None
        rank = {e: i for i, e in enumerate(COMMON_ENCODINGS)}
        best = min(matches, key=lambda m: (round(m.chaos, 3), -round(m.coherence, 3), rank.get(m.encoding, 99)))
        text = str(best)
    if text and sum(1 for ch in text[:20000] if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\n\r\t\f")) > 0.05 * min(len(text), 20000):
        raise ExtractionError("binary content: mostly control characters")
    return text


def _pdf(data: bytes, limits: Limits) -> list[Segment]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):  # owner-password-only PDFs open with an empty user password
                    raise ExtractionError("encrypted PDF: a password is required")
            except ExtractionError:
                raise
            except Exception:
                raise ExtractionError("encrypted PDF: a password is required") from None
        n = len(reader.pages)
        if n > limits.max_pages:
            raise ExtractionError(f"PDF has {n} pages, over the limit of {limits.max_pages}")
        segments = []
        for i, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            if text.strip():
                segments.append(Segment(text, {"page": i}))
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise ExtractionError(f"corrupt PDF: {type(e).__name__}: {e}") from None
    if not segments:
        raise ExtractionError("PDF has no extractable text (scanned images need OCR, not supported)")
    return segments


def _check_docx_expansion(data: bytes, limits: Limits) -> None:
    """A DOCX is a zip: check what it expands to before anything parses it (a 342 KB file can
    hold 200 MB of XML). Sizes from the zip directory, then a streaming count of the main
    document's XML elements that stops at the limit: memory stays flat, time is bounded."""
    import zipfile

    from lxml import etree

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, ValueError) as e:
        raise ExtractionError(f"corrupt DOCX: {type(e).__name__}: {e}") from None
    if len(infos) > 10_000:
        raise ExtractionError(f"DOCX with {len(infos):,} parts: refused")
    total = sum(i.file_size for i in infos)
    if total > limits.max_expanded_bytes:
        raise ExtractionError(f"DOCX expands to {total:,} bytes, over the limit of {limits.max_expanded_bytes:,} "
                              "(a decompression bomb?)")
    if "word/document.xml" not in z.namelist():
        raise ExtractionError("corrupt DOCX: no word/document.xml")
    n = 0
    with z.open("word/document.xml") as f:
        try:
            for _, el in etree.iterparse(f, events=("end",), resolve_entities=False, no_network=True):
                n += 1
                if n > limits.max_xml_elements:
                    raise ExtractionError(f"DOCX has more than {limits.max_xml_elements:,} XML elements: refused "
                                          "(a decompression bomb?)")
                el.clear()
        except etree.XMLSyntaxError as e:
            raise ExtractionError(f"corrupt DOCX: {e}") from None
        except zipfile.BadZipFile as e:  # a lying directory: more bytes than declared
            raise ExtractionError(f"corrupt DOCX: {e}") from None


def _docx(data: bytes, limits: Limits) -> list[Segment]:
    import zipfile

    from docx import Document

    _check_docx_expansion(data, limits)
    try:
        doc = Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ExtractionError(f"corrupt DOCX: {type(e).__name__}: {e}") from None
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    return [Segment("\n".join(parts))]


def _html(data: bytes) -> list[Segment]:
    import warnings

    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():  # XHTML pages are HTML to us
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "lxml")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    # A table becomes one line per row, cells joined by " | " (innermost tables first), so the
    # chunker can keep its header with its rows; get_text alone puts every cell on its own line.
    for table in reversed(soup.find_all("table")):
        rows = []
        for tr in table.find_all("tr"):
            cells = [" ".join(c.get_text(" ", strip=True).split()) for c in tr.find_all(["th", "td"], recursive=False)]
            if any(cells):
                rows.append(" | ".join(cells))
        table.replace_with(soup.new_string("\n" + "\n".join(rows) + "\n"))
    body = soup.body or soup
    lines = [ln.strip() for ln in body.get_text("\n").splitlines()]
    text = "\n".join(ln for ln in lines if ln)
    return [Segment(text, {"html_title": title} if title else {})]


def _json(data: bytes) -> list[Segment]:
    try:
        obj = json.loads(decode_text(data))
    except json.JSONDecodeError as e:
        raise ExtractionError(f"invalid JSON: {e}") from None
    lines: list[str] = []

    def walk(v, path: str) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}" if path else str(k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")
        elif v is not None:
            lines.append(f"{path}: {v}" if path else str(v))

    walk(obj, "")
    return [Segment("\n".join(lines))]


def _csv(data: bytes) -> list[Segment]:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        return [Segment("")]
    header, lines = rows[0], []
    for row in rows[1:]:
        lines.append("; ".join(f"{h}: {v}" for h, v in zip(header, row, strict=False) if v != ""))
    return [Segment("\n".join(lines) if lines else ", ".join(header))]


def _parquet(data: bytes, text_fields: list[str], key_fields: list[str]) -> list[Segment]:
    """A comb output: one segment per record with its (already scrubbed) text fields, and the
    record's primary key in the metadata so search results lead back to the source record."""
    import pyarrow.parquet as pq

    if not text_fields:
        raise ExtractionError("parquet document without text fields to embed (configure embed_text_fields)")
    table = pq.read_table(io.BytesIO(data))
    missing = [f for f in [*text_fields, *key_fields] if f not in table.column_names]
    if missing:
        raise ExtractionError(f"parquet lacks field(s) {', '.join(missing)}")
    cols = {f: table.column(f).to_pylist() for f in [*key_fields, *text_fields]}
    segments = []
    for i in range(table.num_rows):
        parts = [f"{f}: {cols[f][i]}" for f in text_fields if cols[f][i] not in (None, "")]
        if parts:
            meta = {f"record_{k}": str(cols[k][i]) for k in key_fields}
            segments.append(Segment("\n".join(parts), meta))
    return segments


def extract_text(data: bytes, file_type: str, limits: Limits | None = None, *, text_fields: list[str] | None = None,
                 key_fields: list[str] | None = None) -> list[Segment]:
    """Segments of text of a document. Raises ExtractionError with the reason."""
    limits = limits or Limits()
    kind = normalize_type(file_type)
    if kind not in {normalize_type(t) for t in SUPPORTED}:
        raise ExtractionError(f"unsupported file type '{file_type}'")
    if len(data) == 0:
        raise ExtractionError("empty file")
    if len(data) > limits.byte_limit(kind):
        raise ExtractionError(f"{kind} file of {len(data):,} bytes exceeds the limit of {limits.byte_limit(kind):,} "
                              "bytes")
    if kind == "pdf":
        segments = _pdf(data, limits)
    elif kind == "docx":
        segments = _docx(data, limits)
    elif kind == "html":
        segments = _html(data)
    elif kind == "json":
        segments = _json(data)
    elif kind == "csv":
        segments = _csv(data)
    elif kind == "parquet":
        segments = _parquet(data, text_fields or [], key_fields or [])
    else:  # txt, md: Markdown is embedded as written (its syntax is light and meaningful)
        segments = [Segment(decode_text(data))]
    total = sum(len(s.text) for s in segments)
    if total > limits.max_chars:
        raise ExtractionError(f"{total:,} characters of text exceed the limit of {limits.max_chars:,}")
    if not any(s.text.strip() for s in segments):
        raise ExtractionError("no text in the document")
    return segments

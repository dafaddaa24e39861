"""Fetches web pages and sitemaps with limits: size, redirects, timeouts, content type, encoding."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

_TEXT_TYPES = (
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "text/markdown",
    "text/x-markdown",
    "application/xml",
    "text/xml",
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)


class FetchError(Exception):
    """A page could not be fetched or read; the message says why, for the sync run's errors."""


@dataclass(frozen=True)
class Fetched:
    url: str
    not_modified: bool
    text: str
    content_type: str
    etag: str
    last_modified: str


def client() -> httpx.Client:
    return httpx.Client(
        follow_redirects=True,
        max_redirects=5,
        timeout=settings.KNOWLEDGE_FETCH_TIMEOUT_SECONDS,
        headers={"User-Agent": "AutoGLM-knowledge-sync/1.0"},
    )


def decode(data: bytes, *, charset: str | None, sniff_html: bool) -> str:
    """Text of DATA: the declared charset, else a <meta charset>, else UTF-8; errors are loud."""
    if b"\x00" in data[:8192]:
        raise FetchError(_("The content is binary, not text."))
    if not charset and sniff_html:
        match = _META_CHARSET.search(data[:4096])
        charset = match.group(1).decode("ascii") if match else None
    encoding = charset or "utf-8"
    try:
        return data.decode(encoding)
    except LookupError as exc:
        raise FetchError(_("Unknown text encoding %(encoding)s.") % {"encoding": encoding}) from exc
    except UnicodeDecodeError as exc:
        raise FetchError(
            _("The content is not valid %(encoding)s text.") % {"encoding": encoding}
        ) from exc


def fetch(http: httpx.Client, url: str, *, etag: str = "", last_modified: str = "") -> Fetched:
    """GET URL (conditionally when validators are given) within the configured limits."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise FetchError(_("Only http and https URLs can be fetched: %(url)s") % {"url": url})
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    limit = settings.KNOWLEDGE_FETCH_MAX_BYTES
    try:
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return Fetched(url, True, "", "", etag, last_modified)
            if response.status_code >= 400:
                raise FetchError(
                    _("The server answered HTTP %(status)s.") % {"status": response.status_code}
                )
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and content_type not in _TEXT_TYPES:
                raise FetchError(_("Unsupported content type %(type)s.") % {"type": content_type})
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(_("The page is larger than %(limit)s bytes.") % {"limit": limit})
            body = bytearray()
            for part in response.iter_bytes():
                body.extend(part)
                if len(body) > limit:
                    raise FetchError(
                        _("The page is larger than %(limit)s bytes.") % {"limit": limit}
                    )
            text = decode(
                bytes(body),
                charset=response.charset_encoding,
                sniff_html=content_type in {"text/html", "application/xhtml+xml", ""},
            )
            return Fetched(
                url=str(response.url),
                not_modified=False,
                text=text,
                content_type=content_type,
                etag=response.headers.get("etag", ""),
                last_modified=response.headers.get("last-modified", ""),
            )
    except httpx.TooManyRedirects as exc:
        raise FetchError(_("Too many redirects (a redirect loop?).")) from exc
    except httpx.TimeoutException as exc:
        raise FetchError(_("The server did not answer in time.")) from exc
    except httpx.HTTPError as exc:
        raise FetchError(
            _("The page could not be fetched: %(error)s")
            % {"error": str(exc) or type(exc).__name__}
        ) from exc

"""Turns fetched or uploaded documents (HTML, Markdown, text, PDF) into a title and Markdown."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as xml_fromstring
from django.utils.translation import gettext as _

from knowledge.fetch import FetchError, decode

_SKIP = {"script", "style", "noscript", "template", "svg", "iframe", "object", "head", "nav"}
_BLOCK = {"p", "div", "section", "article", "li", "tr", "br", "table", "ul", "ol", "pre", "main"}
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


class _HTMLToMarkdown(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.first_h1 = ""
        self._skip_depth = 0
        self._in_title = False
        self._heading: str | None = None
        self._heading_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP:
            self._skip_depth += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = tag
            self._heading_text = []
        elif tag in _BLOCK:
            self.parts.append("\n\n" if tag != "li" else "\n\n- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP:
            self._skip_depth = max(self._skip_depth - 1, 0)
        elif tag == self._heading:
            text = " ".join("".join(self._heading_text).split())
            if tag == "h1" and not self.first_h1:
                self.first_h1 = text
            if text:
                self.parts.append(f"\n\n{'#' * int(tag[1])} {text}\n\n")
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skip_depth:
            return
        elif self._heading:
            self._heading_text.append(data)
        else:
            self.parts.append(data)


def html_to_markdown(html: str) -> tuple[str, str]:
    """(title, Markdown body) of an HTML page; scripts, styles and navigation are dropped."""
    parser = _HTMLToMarkdown()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join(parser.title.split()) or parser.first_h1
    return title, body


def markdown_title(text: str, *, fallback: str) -> tuple[str, str]:
    """(title, body) of Markdown or plain text: a leading "# Title" line, else FALLBACK."""
    stripped = text.lstrip("\ufeff").strip()
    match = re.match(r"#\s+(.+)\n?", stripped)
    if match:
        return match.group(1).strip(), stripped[match.end() :].strip()
    return fallback, stripped


def document_from_bytes(*, name: str, data: bytes) -> tuple[str, str]:
    """(title, Markdown body) of an uploaded file, chosen by its extension."""
    lowered = name.lower()
    stem = re.sub(r"\.[^.]+$", "", name.rsplit("/", 1)[-1]).replace("_", " ").replace("-", " ")
    if lowered.endswith(".pdf"):
        return _pdf(data, fallback=stem)
    if lowered.endswith((".html", ".htm")):
        title, body = html_to_markdown(decode(data, charset=None, sniff_html=True))
        return title or stem, body
    if lowered.endswith((".md", ".markdown", ".txt", ".text")):
        return markdown_title(decode(data, charset=None, sniff_html=False), fallback=stem)
    raise FetchError(
        _("Unsupported file type: %(name)s (use .md, .html, .txt or .pdf).") % {"name": name}
    )


def _pdf(data: bytes, *, fallback: str) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or fallback
    except (PdfReadError, ValueError, KeyError) as exc:
        raise FetchError(_("The PDF could not be read: %(error)s") % {"error": exc}) from exc
    return str(title), "\n\n".join(page.strip() for page in pages if page.strip())


def sitemap_entries(xml: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(pages as (loc, lastmod), nested sitemap URLs) of a sitemap or sitemap index."""
    try:
        # defusedxml: no DTD at all (wherever it starts), so no entity expansion ("billion
        # laughs") and no external entities.
        root = xml_fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FetchError(_("Sitemaps with a DTD or entities are refused.")) from exc
    except ParseError as exc:
        raise FetchError(_("The sitemap is not valid XML: %(error)s") % {"error": exc}) from exc
    pages: list[tuple[str, str]] = []
    nested: list[str] = []
    tag = root.tag.removeprefix(_SITEMAP_NS)
    for entry in root:
        loc = (entry.findtext(f"{_SITEMAP_NS}loc") or entry.findtext("loc") or "").strip()
        lastmod = (
            entry.findtext(f"{_SITEMAP_NS}lastmod") or entry.findtext("lastmod") or ""
        ).strip()
        if not loc:
            continue
        if tag == "sitemapindex":
            nested.append(loc)
        else:
            pages.append((loc, lastmod))
    return pages, nested

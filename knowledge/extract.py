"""Turns fetched or uploaded documents (HTML, Markdown, text, PDF) into a title and Markdown."""

from __future__ import annotations

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
_VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
# Inline styles that hide an element from readers: text a reader cannot see must not reach
# the prompt (hidden instructions, phishing links in "official" answers).
_HIDING_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*(hidden|collapse)|font-size\s*:\s*0(?![.\d]*[1-9])"
    r"|opacity\s*:\s*0(?![.\d]*[1-9])|(?:^|;)\s*(width|height)\s*:\s*0(px)?\s*(;|$)",
    re.IGNORECASE,
)


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    values = {name.lower(): (value or "") for name, value in attrs}
    if "hidden" in values or values.get("aria-hidden", "").lower() == "true":
        return True
    return bool(_HIDING_STYLE.search(values.get("style", "")))


class _HTMLToMarkdown(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.first_h1 = ""
        self._skip_depth = 0
        self._hidden_tag = ""  # the element hiding its content, and how deep we are in it
        self._hidden_depth = 0
        self._in_title = False
        self._heading: str | None = None
        self._heading_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden_depth:
            self._hidden_depth += tag == self._hidden_tag
            return
        if tag not in _VOID and _hidden(attrs):
            self._hidden_tag, self._hidden_depth = tag, 1
            return
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
        if self._hidden_depth:
            self._hidden_depth -= tag == self._hidden_tag
            return
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
        if self._hidden_depth:
            return
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


def _pdf_limits() -> None:  # pragma: no cover - runs in the child, before exec
    import resource

    from django.conf import settings

    memory = settings.KNOWLEDGE_PDF_MEMORY_MB * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    seconds = int(settings.KNOWLEDGE_PDF_TIMEOUT_SECONDS)
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))


def _pdf(data: bytes, *, fallback: str) -> tuple[str, str]:
    """A PDF's text, parsed in a child process with memory and time limits (pdf_worker)."""
    import json
    import signal
    import subprocess
    import sys

    from django.conf import settings

    try:
        finished = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "knowledge.pdf_worker"],
            input=data,
            capture_output=True,
            timeout=settings.KNOWLEDGE_PDF_TIMEOUT_SECONDS,
            preexec_fn=_pdf_limits,  # noqa: PLW1509 - only setrlimit, before exec
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(_("The PDF took too long to read.")) from exc
    if finished.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # its CPU-time limit
        raise FetchError(_("The PDF took too long to read."))
    try:
        result = json.loads(finished.stdout or b"{}")
    except ValueError:
        result = {}
    if finished.returncode != 0 or not isinstance(result, dict) or "body" not in result:
        error = result.get("error") if isinstance(result, dict) else None
        if error is None:
            # Killed by its limits (memory, CPU) or crashed: too big or broken, either way.
            error = _("it is too large or complex to read")
        raise FetchError(_("The PDF could not be read: %(error)s") % {"error": error})
    return str(result.get("title") or fallback), str(result["body"])


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

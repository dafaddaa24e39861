"""A conversation's transcript as PDF (Arabic and Hebrew shaped and in visual order) or as text."""

from __future__ import annotations

import functools
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from chat.models import Conversation, Message, MessageTranslation
from chat.selectors import reply_citations

# --- Fonts -----------------------------------------------------------------------------------
# ReportLab embeds TrueType outlines only: Noto CJK (fonts-noto-cjk) is CFF-based, which
# ReportLab refuses ("postscript outlines are not supported"), so CJK comes from WenQuanYi Micro
# Hei (fonts-wqy-microhei, TrueType; Han, kana and Hangul).
_NOTO = Path("/usr/share/fonts/truetype/noto")
_CJK = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


@dataclass(frozen=True)
class _Face:
    key: str
    regular: Path
    bold: Path | None = None
    subfont: int = 0
    package: str = "fonts-noto-core"


# Order matters: a character none of the script rules place goes to the first face that has it.
_FACES = (
    _Face("latin", _NOTO / "NotoSans-Regular.ttf", _NOTO / "NotoSans-Bold.ttf"),
    _Face("arabic", _NOTO / "NotoSansArabic-Regular.ttf", _NOTO / "NotoSansArabic-Bold.ttf"),
    _Face("hebrew", _NOTO / "NotoSansHebrew-Regular.ttf", _NOTO / "NotoSansHebrew-Bold.ttf"),
    _Face("cjk", _CJK, package="fonts-wqy-microhei"),
    _Face("thai", _NOTO / "NotoSansThai-Regular.ttf", _NOTO / "NotoSansThai-Bold.ttf"),
    _Face("devanagari", _NOTO / "NotoSansDevanagari-Regular.ttf"),
    _Face("bengali", _NOTO / "NotoSansBengali-Regular.ttf"),
    _Face("tamil", _NOTO / "NotoSansTamil-Regular.ttf"),
    _Face("armenian", _NOTO / "NotoSansArmenian-Regular.ttf"),
    _Face("georgian", _NOTO / "NotoSansGeorgian-Regular.ttf"),
    _Face("ethiopic", _NOTO / "NotoSansEthiopic-Regular.ttf"),
    _Face("khmer", _NOTO / "NotoSansKhmer-Regular.ttf"),
    _Face("lao", _NOTO / "NotoSansLao-Regular.ttf"),
    _Face("myanmar", _NOTO / "NotoSansMyanmar-Regular.ttf"),
)

# (first, last, face): scripts whose characters go to their own face even where another has them.
_SCRIPT_RANGES = (
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x08A0, 0x08FF, "arabic"),
    (0x0E00, 0x0E7F, "thai"),
    (0x1100, 0x11FF, "cjk"),
    (0x2E80, 0x9FFF, "cjk"),
    (0xA960, 0xA97F, "cjk"),
    (0xAC00, 0xD7FF, "cjk"),
    (0xF900, 0xFAFF, "cjk"),
    (0xFB1D, 0xFB4F, "hebrew"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE30, 0xFE4F, "cjk"),
    (0xFE70, 0xFEFF, "arabic"),
    (0xFF00, 0xFFEF, "cjk"),
    (0x20000, 0x3FFFF, "cjk"),
)

_RTL_SCRIPTS = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")
# Characters that may break a line on either side (CJK writes no spaces between words).
_CJK_CHAR = re.compile(
    "[\u2e80-\u9fff\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]"
)


_CJK_CLOSING = frozenset("，。、：；！？）」』】〉》〕］｝”’・ー")


class FontMissing(RuntimeError):
    """A font the transcripts embed is not installed (make install installs them)."""


@dataclass(frozen=True)
class _LoadedFace:
    key: str
    regular: str  # ReportLab's registered font names
    bold: str
    covers: frozenset[int]


@functools.cache
def _faces() -> dict[str, _LoadedFace]:
    """Register the fonts with ReportLab once per process (read lazily: tens of milliseconds)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    missing = [
        f"{path} ({face.package})"
        for face in _FACES
        for path in (face.regular, face.bold)
        if path is not None and not path.is_file()
    ]
    if missing:
        raise FontMissing(
            "Transcripts need these fonts: " + ", ".join(missing) + ". Install them with "
            "`make install` (apt-get install fonts-noto-core fonts-wqy-microhei)."
        )
    loaded: dict[str, _LoadedFace] = {}
    for face in _FACES:
        regular_name = f"AutoGLM-{face.key}"
        regular = TTFont(regular_name, str(face.regular), subfontIndex=face.subfont)
        pdfmetrics.registerFont(regular)
        bold_name = regular_name
        if face.bold is not None:
            bold_name = f"AutoGLM-{face.key}-bold"
            pdfmetrics.registerFont(TTFont(bold_name, str(face.bold)))
        loaded[face.key] = _LoadedFace(
            key=face.key,
            regular=regular_name,
            bold=bold_name,
            covers=frozenset(regular.face.charToGlyph),
        )
    return loaded


def _face_for(char: str, current: str | None, faces: dict[str, _LoadedFace]) -> str:
    code = ord(char)
    # Spaces, combining marks and joiners stay in the run they are in: a mark drawn in another
    # font than its base letter lands in the wrong place.
    if current is not None and code in faces[current].covers:
        category = unicodedata.category(char)
        if category[0] in "MZ" or category == "Cf":
            return current
    for first, last, key in _SCRIPT_RANGES:
        if first <= code <= last:
            if code in faces[key].covers:
                return key
            break
    for key, face in faces.items():
        if code in face.covers:
            return key
    return current or "latin"


def _runs(text: str, faces: dict[str, _LoadedFace]) -> Iterator[tuple[str, str]]:
    """TEXT cut into (face key, text) runs, in the order given."""
    current: str | None = None
    start = 0
    for index, char in enumerate(text):
        key = _face_for(char, current, faces)
        if key != current:
            if current is not None and index > start:
                yield current, text[start:index]
            current, start = key, index
    if current is not None and start < len(text):
        yield current, text[start:]


# --- Bidirectional text ----------------------------------------------------------------------


def _is_rtl(text: str) -> bool:
    """The paragraph direction of TEXT by its first strong character (HTML's dir="auto")."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


_LEVEL = re.compile(r"Level\(\s*(\d+),?\s*\)")


def _visual(line: str, *, rtl: bool) -> str:
    """One line, already wrapped, in the left-to-right order ReportLab draws glyphs in.

    python-bidi's Rust algorithm (brackets paired as in Unicode 6.3+; its pure-Python one gets
    "[x] 42" wrong in a right-to-left line) does not mirror: "(" in Hebrew text must be drawn
    as ")". So the levels are taken from it and the line is reordered here (UAX #9 L2) with
    mirroring (L4); should its levels not add up, its own order is used, unmirrored."""
    if not _RTL_SCRIPTS.search(line) and not rtl:
        return line
    from bidi import get_display
    from bidi.mirror import MIRRORED

    base_dir = "R" if rtl else "L"
    display = str(get_display(line, base_dir=base_dir))
    levels = _levels(str(get_display(line, base_dir=base_dir, debug=True)), line)
    if levels is None:
        return display
    order = list(range(len(line)))
    for level in range(max(levels), 0, -1):
        start = 0
        while start < len(order):
            if levels[order[start]] < level:
                start += 1
                continue
            end = start
            while end < len(order) and levels[order[end]] >= level:
                end += 1
            order[start:end] = order[start:end][::-1]
            start = end
    if "".join(line[i] for i in order) != display:
        return display
    return "".join(MIRRORED.get(line[i], line[i]) if levels[i] % 2 else line[i] for i in order)


def _levels(debug: str, line: str) -> list[int] | None:
    """Each character's embedding level, from python-bidi's debug dump (one level per byte of
    UTF-8); None where the dump is not what it was."""
    try:
        section = debug.split("levels:", 1)[1].split("paragraphs:", 1)[0]
    except IndexError:
        return None
    per_byte = [int(level) for level in _LEVEL.findall(section)]
    if len(per_byte) != len(line.encode()):
        return None
    levels, offset = [], 0
    for char in line:
        levels.append(per_byte[offset])
        offset += len(char.encode())
    return levels


def _shape(text: str) -> str:
    """Arabic letters in their joined (presentation) forms: ReportLab does no shaping."""
    if not _ARABIC.search(text):
        return text
    import arabic_reshaper

    return str(arabic_reshaper.reshape(text))


def _tokens(text: str) -> list[str]:
    """Words, runs of spaces and single CJK characters: the places a line may break."""
    tokens: list[str] = []
    for part in re.split(r"(\s+)", text):
        if not part:
            continue
        if not _CJK_CHAR.search(part):
            tokens.append(part)
            continue
        for piece in re.split(f"({_CJK_CHAR.pattern})", part):
            # Closing punctuation never starts a line: it stays with the character before.
            if piece in _CJK_CLOSING and tokens and not tokens[-1].isspace():
                tokens[-1] += piece
            elif piece:
                tokens.append(piece)
    return tokens


def _wrap(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Greedy line breaking in logical order. Bidi reordering has to come after it, per line:
    wrapping a reordered paragraph puts its last words on its first line."""
    lines: list[str] = []
    line = ""
    for token in _tokens(text):
        if token.isspace():
            if line:
                line += " "
            continue
        candidate = line + token
        if measure(candidate) <= width or not line.strip():
            line = candidate
        else:
            lines.append(line.rstrip())
            line = token
        while measure(line) > width and len(line) > 1:  # a word longer than the line
            cut = 1
            while cut < len(line) - 1 and measure(line[: cut + 1]) <= width:
                cut += 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


# --- PDF -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """One paragraph of the transcript, in logical order; rendered by _PdfWriter.paragraph."""

    text: str
    kind: str  # title, meta, label, body, translation, citation, note, event
    # None: the direction of the text itself; True/False: the page's (labels, headings).
    rtl: bool | None = None


class _PdfWriter:
    _SIZES = {
        "title": 18.0,
        "meta": 9.0,
        "label": 9.0,
        "body": 11.0,
        "translation": 10.0,
        "citation": 9.0,
        "note": 10.0,
        "event": 9.0,
    }
    _COLOURS = {
        "meta": "#555555",
        "label": "#1f3a5f",
        "translation": "#333333",
        "citation": "#2b5797",
        "note": "#7a4b00",
        "event": "#666666",
    }
    _BOLD = {"title", "label"}

    def __init__(self, *, width: float) -> None:
        self.faces = _faces()
        self.width = width

    def _measure(self, text: str, *, size: float, bold: bool) -> float:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        total = 0.0
        for key, run in _runs(text, self.faces):
            face = self.faces[key]
            total += stringWidth(run, face.bold if bold else face.regular, size)
        return total

    def _markup(self, visual: str, *, bold: bool) -> str:
        """Paragraph markup for one visual line: every run escaped (visitors' text is hostile,
        "<font>" must print as it is), each in the font that has its characters."""
        parts = []
        for key, run in _runs(visual, self.faces):
            face = self.faces[key]
            name = face.bold if bold else face.regular
            parts.append(f'<font name="{name}">{escape(run)}</font>')
        return "".join(parts)

    def paragraph(self, block: _Block, *, indent: float = 0.0) -> Any:
        from reportlab.lib import colors
        from reportlab.lib.enums import TA_LEFT, TA_RIGHT
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.platypus import Paragraph

        size = self._SIZES[block.kind]
        bold = block.kind in self._BOLD
        rtl = _is_rtl(block.text) if block.rtl is None else block.rtl
        # A little slack: ReportLab must never wrap a line again (it would undo the bidi order).
        width = self.width - indent - 2.0
        lines: list[str] = []
        for logical in block.text.replace("\t", "    ").splitlines() or [""]:
            shaped = _shape(logical)
            for line in _wrap(shaped, width, lambda t: self._measure(t, size=size, bold=bold)):
                lines.append(self._markup(_visual(line, rtl=rtl), bold=bold) or "&nbsp;")
        style = ParagraphStyle(
            block.kind,
            fontName=self.faces["latin"].regular,
            fontSize=size,
            leading=size * 1.45,
            alignment=TA_RIGHT if rtl else TA_LEFT,
            textColor=colors.HexColor(self._COLOURS.get(block.kind, "#000000")),
            leftIndent=0 if rtl else indent,
            rightIndent=indent if rtl else 0,
            spaceBefore={"label": 8.0, "title": 0.0}.get(block.kind, 1.0),
            spaceAfter={"title": 6.0}.get(block.kind, 1.0),
        )
        return Paragraph("<br/>".join(lines), style)


def _pdf(
    blocks: list[tuple[_Block, float]], *, title: str, footer: Callable[[int], str], rtl: bool
) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    buffer = io.BytesIO()
    margin = 18 * mm
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin,
        bottomMargin=margin,
        title=title,
        creator="AutoGLM",
    )
    # The frame pads its flowables by 6 points on each side.
    writer = _PdfWriter(width=document.width - 12.0)
    story = [writer.paragraph(block, indent=indent) for block, indent in blocks]

    def on_page(canvas: Any, doc: Any) -> None:
        flowable = writer.paragraph(_Block(text=footer(doc.page), kind="event", rtl=rtl))
        flowable.wrapOn(canvas, document.width, margin)
        flowable.drawOn(canvas, margin, margin / 2)

    document.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


# --- The transcript --------------------------------------------------------------------------

_SHOWN_REPLY = {Message.Status.COMPLETE, Message.Status.CANCELLED}


@dataclass(frozen=True)
class _Entry:
    label: str
    text: str
    kind: str  # body, note, event
    translations: list[tuple[str, str]]  # (label, text)
    citations: list[str]


def _language_name(code: str) -> str:
    names = {lang: str(name) for lang, name in settings.LANGUAGES}
    if code in names:
        return names[code]
    try:
        return str(translation.get_language_info(code)["name_translated"])
    except KeyError:
        return code


def _when(moment: datetime) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def _user_name(user: Any) -> str:
    try:
        return str(user.agent_profile.name)
    except ObjectDoesNotExist:  # no AgentProfile: the account's own name
        return str(user.get_full_name() or user.get_username())


def _agent_name(message: Message) -> str:
    return _("Agent") if message.author is None else _user_name(message.author)


def _messages(conversation: Conversation, *, include_notes: bool) -> list[Message]:
    roles = [Message.Role.USER, Message.Role.ASSISTANT, Message.Role.AGENT, Message.Role.SYSTEM]
    if include_notes:
        roles.append(Message.Role.NOTE)
    return list(
        Message.objects.filter(conversation=conversation, role__in=roles)
        .exclude(text="")
        .select_related("author__agent_profile", "reply_to__prompt_knowledge")
        .prefetch_related("translations")
        .order_by("created_at", "id")
    )


def _entries(conversation: Conversation, *, include_notes: bool) -> list[_Entry]:
    """The messages a reader sees, labelled in the active language."""
    entries: list[_Entry] = []
    for message in _messages(conversation, include_notes=include_notes):
        if not message.text.strip() or (
            message.role == Message.Role.ASSISTANT and message.status not in _SHOWN_REPLY
        ):
            continue
        when = _when(message.created_at)
        kind = "body"
        if message.role == Message.Role.USER:
            author = _("Visitor")
        elif message.role == Message.Role.ASSISTANT:
            author = _("Assistant")
        elif message.role == Message.Role.AGENT:
            author = _agent_name(message)
        elif message.role == Message.Role.NOTE:
            author = _("Private note by %(name)s") % {"name": _agent_name(message)}
            kind = "note"
        else:
            author = _("Event")
            kind = "event"
        # Translators: above each message of a transcript: who wrote it, and when.
        label = _("%(author)s, %(time)s") % {"author": author, "time": when}
        if message.role == Message.Role.ASSISTANT and message.status == Message.Status.CANCELLED:
            label = _("%(label)s (stopped before the end)") % {"label": label}
        original = message.language or conversation.language
        translations = []
        done: list[MessageTranslation] = [
            item
            for item in message.translations.all()
            if item.status == MessageTranslation.Status.DONE
            and item.text.strip()
            and item.language != original
        ]
        for item in sorted(done, key=lambda item: item.language):
            translations.append(
                (
                    _("Translated from %(source)s into %(target)s:")
                    % {"source": _language_name(original), "target": _language_name(item.language)},
                    item.text,
                )
            )
        citations = []
        if message.role == Message.Role.ASSISTANT:
            for citation in reply_citations(reply=message):
                citations.append(
                    # Translators: a knowledge article a reply drew on, in a transcript.
                    _("%(title)s: %(url)s") % citation if citation["url"] else citation["title"]
                )
        entries.append(
            _Entry(
                label=label,
                text=message.text,
                kind=kind,
                translations=translations,
                citations=citations,
            )
        )
    return entries


def _header(conversation: Conversation) -> tuple[str, list[str]]:
    lines = [
        _("Conversation %(id)s") % {"id": conversation.pk},
        _("Started: %(time)s") % {"time": _when(conversation.created_at)},
        _("Language: %(language)s") % {"language": _language_name(conversation.language)},
        _("Status: %(status)s") % {"status": conversation.get_status_display()},
    ]
    if conversation.assignee is not None:
        lines.append(_("Agent: %(name)s") % {"name": _user_name(conversation.assignee)})
    lines.append(_("Times in %(zone)s") % {"zone": timezone.get_current_timezone_name()})
    return _("Transcript"), lines


def transcript_pdf(
    *, conversation: Conversation, language: str, include_notes: bool = False
) -> bytes:
    """The conversation as an A4 PDF with its labels in LANGUAGE (right to left for ar/he).

    Every message is printed as written, followed by its finished translations; private notes
    only with INCLUDE_NOTES."""
    with translation.override(language):
        rtl = translation.get_language_bidi()
        title, meta = _header(conversation)
        blocks: list[tuple[_Block, float]] = [(_Block(text=title, kind="title", rtl=rtl), 0.0)]
        blocks += [(_Block(text=line, kind="meta", rtl=rtl), 0.0) for line in meta]
        for entry in _entries(conversation, include_notes=include_notes):
            blocks.append((_Block(text=entry.label, kind="label", rtl=rtl), 0.0))
            blocks.append((_Block(text=entry.text, kind=entry.kind), 0.0))
            for label, text in entry.translations:
                blocks.append((_Block(text=label, kind="meta", rtl=rtl), 12.0))
                blocks.append((_Block(text=text, kind="translation"), 12.0))
            if entry.citations:
                blocks.append((_Block(text=_("Sources:"), kind="meta", rtl=rtl), 12.0))
                blocks += [(_Block(text=c, kind="citation"), 12.0) for c in entry.citations]

        def footer(page: int) -> str:
            # Translators: the footer of each page of a transcript PDF.
            return _("%(title)s, page %(page)s") % {"title": title, "page": page}

        return _pdf(blocks, title=title, footer=footer, rtl=rtl)


def transcript_text(
    *, conversation: Conversation, language: str, include_notes: bool = False
) -> str:
    """The same transcript as plain text (for emails): logical order, the reader's client does
    the bidi layout and shaping."""
    with translation.override(language):
        title, meta = _header(conversation)
        out = [title, "=" * len(title), *meta, ""]
        for entry in _entries(conversation, include_notes=include_notes):
            out.append(f"[{entry.label}]")
            out.append(entry.text)
            for label, text in entry.translations:
                out.append(f"    {label}")
                out.extend(f"    {line}" for line in text.splitlines())
            if entry.citations:
                out.append("    " + _("Sources:"))
                out.extend(f"    - {citation}" for citation in entry.citations)
            out.append("")
        return "\n".join(out).rstrip() + "\n"

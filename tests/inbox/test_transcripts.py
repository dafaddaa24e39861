"""Transcripts as PDF and text: every script embedded, Arabic shaped, right-to-left in order."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from chat.models import Conversation, Message, MessageTranslation, TurnKnowledge, Visitor
from inbox import transcripts
from inbox.models import AgentProfile
from inbox.transcripts import transcript_pdf, transcript_text

pytestmark = pytest.mark.django_db

ARABIC = "مرحبا، لدي مشكلة مع Galaxy S24 منذ 3 أيام"
ARABIC_WORDS = "مرحبا لدي مشكلة مع Galaxy S24 منذ 3 أيام"
# Long enough to wrap over several lines: the numbers must come out in reading order.
ARABIC_LONG = " ".join(f"الخطوة {n} تمت" for n in range(1, 41))
GERMAN = "Guten Tag! Ihr Galaxy S24 wird morgen ersetzt, die Rücksendung ist kostenlos."
GERMAN_IN_ARABIC = "مرحبا! سيتم استبدال Galaxy S24 غدا، والإرجاع مجاني."
HEBREW = "שלום, ההזמנה שלי 42 לא הגיעה"
CHINESE = "您好，我的订单还没有到，请帮我查一下。"
HOSTILE = "<font color=red>x</font> & <b>bold</b>"
NOTE = "Customer is a VIP: offer the express replacement."
ASSISTANT = "You can return the device within 30 days."
CITATION_TITLE = "Returns and refunds"
CITATION_URL = "https://help.example.com/returns"
RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
BIDI_CONTROLS = dict.fromkeys(
    [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)], None
)


@dataclass
class Transcript:
    conversation: Conversation
    agent_reply: Message


@pytest.fixture
def transcript() -> Transcript:
    agent = User.objects.create_user("agent", "agent@example.com", "x-long-password")
    AgentProfile.objects.create(user=agent, display_name="Dana Weber", preferred_language="de")
    conversation = Conversation.objects.create(
        visitor=Visitor.objects.create(), language="ar", opening_client_id="c1", assignee=agent
    )

    def message(role: str, text: str, **fields: object) -> Message:
        fields.setdefault("status", Message.Status.COMPLETE)
        return Message.objects.create(conversation=conversation, role=role, text=text, **fields)

    question = message(Message.Role.USER, ARABIC, client_id="c1")
    TurnKnowledge.objects.create(
        message=question, snippets=[{"title": CITATION_TITLE, "url": CITATION_URL}]
    )
    message(Message.Role.ASSISTANT, ASSISTANT, reply_to=question)
    message(Message.Role.ASSISTANT, "", reply_to=question)  # an empty reply: left out
    message(Message.Role.ASSISTANT, "half a reply that failed", status=Message.Status.FAILED)
    message(Message.Role.NOTE, NOTE, author=agent)
    reply = message(Message.Role.AGENT, GERMAN, language="de", author=agent)
    MessageTranslation.objects.create(
        message=reply, language="ar", text=GERMAN_IN_ARABIC, status=MessageTranslation.Status.DONE
    )
    MessageTranslation.objects.create(
        message=reply, language="fr", text="pas encore", status=MessageTranslation.Status.PENDING
    )
    message(Message.Role.USER, HEBREW, client_id="c2")
    message(Message.Role.USER, CHINESE, client_id="c3")
    message(Message.Role.USER, ARABIC_LONG, client_id="c4")
    message(Message.Role.USER, HOSTILE, client_id="c5")
    return Transcript(conversation=conversation, agent_reply=reply)


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is needed: apt-get install poppler-utils (make install does).")
    return path


def _pdftotext(pdf: bytes, tmp_path: Path, *options: str) -> str:
    """The PDF's text as `pdftotext -raw` gives it (words in the order drawn), less the bidi
    embedding marks it adds around right-to-left words."""
    source = tmp_path / "transcript.pdf"
    source.write_bytes(pdf)
    return subprocess.run(
        [_poppler("pdftotext"), *(options or ("-raw",)), str(source), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.translate(BIDI_CONTROLS)


def _reading_order(raw: str) -> str:
    """`pdftotext -raw` text as a person reads it, in words.

    -raw gives each line's words in the order they are drawn, left to right, with the letters
    of an Arabic or Hebrew word put back in logical order; it keeps the presentation forms.
    A line with right-to-left words is read from the right, a run of left-to-right words in it
    (a product name, a number) from its left. So text drawn in logical order instead of
    visual, as without bidi reordering, comes out backwards."""
    lines = []
    for line in raw.splitlines():
        words = line.split()
        if not any(RTL.search(word) for word in words):
            lines.append(line)
            continue
        runs: list[list[str]] = []
        for word in words:
            if runs and bool(RTL.search(word)) == bool(RTL.search(runs[-1][0])):
                runs[-1].append(word)
            else:
                runs.append([word])
        lines.append(
            " ".join(" ".join(run[::-1] if RTL.search(run[0]) else run) for run in reversed(runs))
        )
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", "\n".join(lines))))


def test_pdf_prints_each_script_and_the_translation_beside_the_original(
    transcript: Transcript, tmp_path: Path
) -> None:
    from pypdf import PdfReader

    pdf = transcript_pdf(conversation=transcript.conversation, language="de")
    assert pdf.startswith(b"%PDF-")
    assert len(PdfReader(io.BytesIO(pdf)).pages) >= 1
    text = _pdftotext(pdf, tmp_path)
    assert GERMAN in text
    assert CHINESE in text.replace("\n", "")
    assert CITATION_TITLE in text and CITATION_URL in text
    assert ASSISTANT in text
    assert "half a reply" not in text
    assert "pas encore" not in text  # a translation still pending
    assert "Dana Weber" in text
    words = _reading_order(text)
    assert ARABIC_WORDS in words  # the visitor's message, Latin name and number in place
    assert " ".join(re.findall(r"\w+", GERMAN_IN_ARABIC)) in words  # ... and the translation
    assert " ".join(re.findall(r"\w+", HEBREW)) in words


def test_arabic_is_shaped_and_wrapped_lines_keep_reading_order(
    transcript: Transcript, tmp_path: Path
) -> None:
    pdf = transcript_pdf(conversation=transcript.conversation, language="ar")
    text = _pdftotext(pdf, tmp_path)
    # Shaped: every Arabic letter is drawn as its joined (presentation) form; unshaped text
    # would extract as the isolated letters U+0621 to U+064A.
    assert sum("\ufe70" <= char <= "\ufeff" for char in text) > 100
    assert not [char for char in text if "\u0621" <= char <= "\u064a"]
    # Reordered per line after wrapping: a paragraph reordered as a whole and then wrapped
    # would print its last steps on its first line.
    steps = [int(n) for n in re.findall(r"الخطوة (\d+) تمت", _reading_order(text))]
    assert steps == list(range(1, 41)), steps


def test_hostile_markup_is_printed_literally(transcript: Transcript, tmp_path: Path) -> None:
    pdf = transcript_pdf(conversation=transcript.conversation, language="en")
    assert HOSTILE in _pdftotext(pdf, tmp_path)


def test_notes_only_with_include_notes(transcript: Transcript, tmp_path: Path) -> None:
    without = _pdftotext(
        transcript_pdf(conversation=transcript.conversation, language="en"), tmp_path
    )
    assert "VIP" not in without
    with_notes = _pdftotext(
        transcript_pdf(conversation=transcript.conversation, language="en", include_notes=True),
        tmp_path,
    )
    assert NOTE in with_notes.replace("\n", " ")
    assert "Private note by Dana Weber" in with_notes


def test_page_is_right_to_left_for_arabic_readers(transcript: Transcript, tmp_path: Path) -> None:
    def title_box(language: str) -> tuple[float, float]:
        pdf = transcript_pdf(conversation=transcript.conversation, language=language)
        html = _pdftotext(pdf, tmp_path, "-bbox", "-f", "1", "-l", "1")
        words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)"', html)
        assert words
        # The title is the first line: every word drawn at the first word's height (a
        # translated title may have several words, drawn right to left in Arabic).
        line = [w for w in words if abs(float(w[1]) - float(words[0][1])) < 1]
        return min(float(w[0]) for w in line), max(float(w[2]) for w in line)

    page_width = 595.27  # A4
    left, _right = title_box("de")
    assert left < 80
    _left, right = title_box("ar")
    assert right > page_width - 80


def test_page_renders_with_ink(transcript: Transcript, tmp_path: Path) -> None:
    from PIL import Image

    source = tmp_path / "transcript.pdf"
    source.write_bytes(transcript_pdf(conversation=transcript.conversation, language="he"))
    subprocess.run(
        [
            _poppler("pdftoppm"),
            "-png",
            "-r",
            "60",
            "-f",
            "1",
            "-l",
            "1",
            str(source),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    (png,) = tmp_path.glob("page*.png")
    image = Image.open(png).convert("L")
    dark = sum(count for value, count in enumerate(image.histogram()) if value < 128)
    assert image.width > 400 and dark > 500


def test_text_version_has_originals_and_translations(transcript: Transcript) -> None:
    text = transcript_text(conversation=transcript.conversation, language="en")
    for original in (ARABIC, GERMAN, HEBREW, CHINESE, HOSTILE, ASSISTANT):
        assert original in text
    assert GERMAN_IN_ARABIC in text
    assert "Translated from German into Arabic:" in text
    assert CITATION_URL in text
    assert NOTE not in text
    assert NOTE in transcript_text(
        conversation=transcript.conversation, language="en", include_notes=True
    )


def test_labels_follow_the_reader_language(transcript: Transcript) -> None:
    text = transcript_text(conversation=transcript.conversation, language="de")
    assert "Arabisch" in text  # the conversation's language, named in the reader's
    assert "[Besucher, " in text


def test_brackets_are_mirrored_in_right_to_left_lines() -> None:
    assert transcripts._visual("שלום (בדיקה)", rtl=True) == "(הקידב) םולש"
    assert transcripts._visual("abc (x)", rtl=False) == "abc (x)"


def test_missing_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = transcripts._Face("latin", Path("/nonexistent/NotoSans-Regular.ttf"))
    monkeypatch.setattr(transcripts, "_FACES", (broken,))
    transcripts._faces.cache_clear()
    try:
        with pytest.raises(transcripts.FontMissing, match="fonts-noto-core"):
            transcripts._faces()
    finally:
        monkeypatch.undo()
        transcripts._faces.cache_clear()

"""The assistant's text made right for the reply language as it streams: Traditional characters
for zh-hant (the packaged model writes Simplified), and no letters of a script the language is
not written in (a small model drifts into Chinese or Cyrillic mid-sentence)."""

from __future__ import annotations

import functools
import re

import regex

from autoglm_site.languages import LANGUAGE_SCRIPTS, SCRIPTS, letter_count
from knowledge.text.chinese import traditional
from knowledge.text.detect import detect_language
from knowledge.text.generic import WORD, fold

# Characters held back at the end of each piece in zh-hant: OpenCC converts by phrase, and a
# phrase cut between two pieces would be converted character by character (头发 -> 頭發).
_HOLD = 2


@functools.cache
def _foreign_letters(language: str) -> regex.Pattern[str] | None:
    """One pattern for the letters of every script LANGUAGE is not written in (Latin aside);
    None when there are none or the language's scripts are unknown."""
    if language not in LANGUAGE_SCRIPTS:
        return None
    allowed = {*LANGUAGE_SCRIPTS[language], "latin"}
    foreign = [pattern.pattern for script, pattern in SCRIPTS.items() if script not in allowed]
    return regex.compile("|".join(foreign)) if foreign else None


class ReplyFilter:
    """Feed it the reply's pieces in order; it returns what to show of each, then the rest on
    flush(). Latin letters are always allowed (product names, links, code); so are digits,
    punctuation and symbols. Verbatim text (a knowledge fallback quoting articles) is not
    filtered: pass it with verbatim=True."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._foreign = _foreign_letters(language)
        self._traditional = language == "zh-hant"
        self._held = ""

    def _clean(self, text: str) -> str:
        # Every piece of every reply passes here, on the event loop: one pass, none for ASCII
        # (Latin is always allowed), not one per script (a tenth of the loop's time at 500
        # conversations, py-spy).
        if self._foreign is None or text.isascii():
            return text
        return self._foreign.sub("", text)

    def feed(self, text: str, *, verbatim: bool = False) -> str:
        if verbatim:
            return self.flush() + text
        text = self._held + self._clean(text)
        self._held = ""
        if not self._traditional:
            return text
        self._held, text = text[-_HOLD:], text[:-_HOLD]
        return traditional(text) if text else ""

    def flush(self) -> str:
        held, self._held = self._held, ""
        return traditional(held) if held and self._traditional else held


class NoteFilter:
    """Drops the lines of a reply that are wholly in square brackets: the packaged model
    sometimes ends an answer by echoing the prompt's bracketed note, word for word or in its
    own words ("[Answer from the excerpts above: …]", "[Используйте информацию из …]",
    bench/answers.py: 4 replies in 156). A line that starts with "[" is held until it ends;
    it is shown unless it also ends with "]" (a Markdown link "[Settings](…)" or a numbered
    "[1] Open …" is shown). Feed it the pieces in order, then flush() for the rest."""

    def __init__(self) -> None:
        self._held = ""  # a line that began with "[", not yet ended
        self._at_line_start = True

    def feed(self, text: str) -> str:
        shown: list[str] = []
        for line in text.splitlines(keepends=True):
            if self._held or (self._at_line_start and line.lstrip(" ").startswith("[")):
                self._held += line
                if line.endswith("\n"):
                    shown.append(self._release())
            else:
                shown.append(line)
            self._at_line_start = line.endswith("\n")
        return "".join(shown)

    def flush(self) -> str:
        return self._release()

    def _release(self) -> str:
        held, self._held = self._held, ""
        line = held.strip()
        if line.startswith("[") and line.endswith("]") and "](" not in line:
            return "\n" if held.endswith("\n") else ""
        return held


def _letters(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


# A restated question may add one short word ("Sí", "Yes", "Да") and still say nothing more.
_EXTRA_WORD_LETTERS = 4


def echoes_question(reply: str, question: str) -> bool:
    """Whether REPLY only repeats QUESTION (once or more, or a part of it), punctuation and
    spacing aside: what the packaged 1.5B model sometimes writes for a one-line question
    ("部署網站  部署網站  部署網站"); or, in a language written with spaces, restates it with
    its own words and at most one short word more ("¿Necesito software antivirus?" → "Sí,
    necesito software antivirus.", "Почему мой планшет не распознан?" → "Почему планшет не
    распознан?"): a claim, or nothing, that no excerpt was needed for."""
    said, asked = _letters(reply), _letters(question)
    if not said or len(asked) < 2:
        return False
    if said in asked:  # a cut-off repetition, not a one-word answer inside the question
        return 2 * len(said) >= len(asked)
    times, rest = divmod(len(said), len(asked))
    if said == asked * times + asked[:rest]:
        return True
    said_words = [fold(word) for word in WORD.findall(reply)]
    asked_words = {fold(word) for word in WORD.findall(question)}
    if len(said_words) < 2 or len(asked_words) < 2 or len(said_words) > len(asked_words) + 1:
        return False
    extra = [word for word in said_words if word not in asked_words]
    return len(extra) <= 1 and all(len(word) <= _EXTRA_WORD_LETTERS for word in extra)


# A loop: the same stretch of 8 to 80 characters four times in a row at the end of the text
# ("GNOME Version, GNOME Version, GNOME Version, …", the packaged model's way to fail).
_LOOP_UNIT = (8, 80)
_LOOP_TIMES = 4


def loop_cut(text: str) -> int | None:
    """Where to cut TEXT when it ends in a loop (its unit repeated _LOOP_TIMES times or more):
    after the loop's first full unit, so the text says it once; None when it does not."""
    shortest, longest = _LOOP_UNIT
    for unit in range(shortest, longest + 1):
        span = unit * _LOOP_TIMES
        if len(text) < span:
            break
        tail = text[-span:]
        if tail[unit:] != tail[:-unit] or not tail[:unit].strip():
            continue
        if any(tail[short:] == tail[:-short] for short in range(1, shortest)):
            return None  # a rule or padding ("=====", "- - - -"), not a phrase
        start = len(text) - span
        while start > 0 and text[start - 1] == text[start - 1 + unit]:
            start -= 1
        return start + unit
    return None


# Code, inline code and links say nothing of a reply's language.
_NOT_PROSE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`|<?https?://\S+>?", re.DOTALL)
_TOO_SHORT_TO_TELL = 20  # letters


def written_in(text: str, language: str) -> bool:
    """Whether TEXT, code and links aside, reads as LANGUAGE to the product's detector
    (knowledge.text.detect; a text of fewer than 20 letters does: too short to tell). Chinese
    is Chinese in either script, Portuguese in either variant."""
    prose = _NOT_PROSE.sub(" ", text)
    if letter_count(prose) < _TOO_SHORT_TO_TELL:
        return True
    found = detect_language(prose, default=language)
    return found.split("-")[0] == language.split("-")[0]

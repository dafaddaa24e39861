"""Finding what moderation rules match in a text, the same way in every script.

Text and words are compared normalised: NFKC, case-folded, Arabic and Hebrew vowel marks
dropped and Arabic letter variants unified (knowledge.text.arabic.normalize), one grapheme
cluster at a time so that every match maps back to the characters of the original text.
A listed word written in a script without spaces between words (Chinese, Japanese, Korean,
Thai, Lao, Khmer, Burmese) matches anywhere; any other word matches only as a whole word, with
Unicode-aware boundaries: "ass" is not found in "class", nor "Hölle" in "Höllental". A regular
expression runs on the normalised text, ignoring case, and gives up after a time limit.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import regex

from knowledge.text.arabic import normalize as arabic_normalize

logger = logging.getLogger(__name__)

MAX_PATTERN_CHARS = 500
REGEX_TIMEOUT_SECONDS = 0.05

_NO_SPACES = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}ー]"
)
# Hebrew points and cantillation; Arabic marks are knowledge.text.arabic's.
_HEBREW_MARKS = regex.compile(r"[\u0591-\u05BD\u05BF\u05C1\u05C2\u05C4\u05C5\u05C7]")
# What continues a word on either side of a whole-word match: letters, marks, digits and
# the underscore, except those of the scripts written without spaces (an English word right
# after a Chinese character is still a word of its own).
_WORD_CHAR = (
    r"[[\p{L}\p{M}\p{N}_]--[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}\p{Lao}"
    r"\p{Khmer}\p{Myanmar}]]"
)
_GRAPHEME = regex.compile(r"\X")


def normalise(text: str) -> str:
    """TEXT as rules compare it (see the module docstring)."""
    return Normalised(text).text


class Normalised:
    """TEXT normalised, with the span of the original each normalised character came from."""

    __slots__ = ("ends", "starts", "text")

    def __init__(self, text: str) -> None:
        pieces: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for cluster in _GRAPHEME.finditer(text):
            folded = _fold(cluster.group())
            pieces.append(folded)
            starts.extend([cluster.start()] * len(folded))
            ends.extend([cluster.end()] * len(folded))
        self.text = "".join(pieces)
        self.starts = starts
        self.ends = ends

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that normalised [START, END) came from."""
        return self.starts[start], self.ends[end - 1]


@functools.lru_cache(maxsize=4096)
def _fold(cluster: str) -> str:
    folded = unicodedata.normalize("NFKC", cluster).casefold()
    folded = _HEBREW_MARKS.sub("", arabic_normalize(folded))
    return unicodedata.normalize("NFKC", folded)


@dataclass(frozen=True)
class Rule:
    """A compiled rule: what the matcher needs of a ModerationRule."""

    rule_id: int | None
    action: str  # moderation.models.Action
    pattern: regex.Pattern[str]
    # Longest text a match can span (for streamed text: how much to hold back); None: unknown.
    longest: int | None
    directions: tuple[str, ...] = ("input", "output")


@dataclass(frozen=True)
class Match:
    rule: Rule
    start: int  # in the original text
    end: int


def words_pattern(words: Iterable[str]) -> tuple[regex.Pattern[str], int] | None:
    """One pattern for a word list (normalised), and its longest word; None when empty."""
    spaced: list[str] = []
    unspaced: list[str] = []
    for word in {normalise(w.strip()) for w in words}:
        if not word:
            continue
        (unspaced if _NO_SPACES.search(word) else spaced).append(word)
    if not spaced and not unspaced:
        return None
    by_length = functools.partial(sorted, key=lambda w: (-len(w), w))
    alternatives: list[str] = []
    if spaced:
        # Inner runs of spaces in a phrase match any run of white space.
        joined = "|".join(
            r"\s+".join(regex.escape(part) for part in word.split()) for word in by_length(spaced)
        )
        alternatives.append(rf"(?<!{_WORD_CHAR})(?:{joined})(?!{_WORD_CHAR})")
    if unspaced:
        alternatives.append("|".join(regex.escape(word) for word in by_length(unspaced)))
    longest = max(len(word) for word in (*spaced, *unspaced))
    return regex.compile("|".join(alternatives), regex.V1), longest


def regex_compile(pattern: str) -> regex.Pattern[str]:
    """An admin's regular expression, compiled as it runs; raises regex.error if invalid."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise regex.error(f"longer than {MAX_PATTERN_CHARS} characters")
    return regex.compile(pattern, regex.IGNORECASE | regex.V0)


def find(rules: Iterable[Rule], text: str, *, before: str = "") -> list[Match]:
    """Every match of RULES in TEXT, in order, not overlapping (the first rule wins a tie).

    BEFORE is the text that precedes TEXT (already shown, when TEXT streams): it decides
    word boundaries at TEXT's start, but no match starting in it is returned.
    """
    rules = list(rules)
    if not rules or not text:
        return []
    whole = Normalised(before + text)
    offset = len(before)
    found: list[Match] = []
    for rule in rules:
        try:
            for hit in rule.pattern.finditer(whole.text, timeout=REGEX_TIMEOUT_SECONDS):
                if hit.end() == hit.start():
                    continue
                start, end = whole.original_span(hit.start(), hit.end())
                if start >= offset:
                    found.append(Match(rule=rule, start=start - offset, end=end - offset))
        except TimeoutError:
            logger.warning("moderation rule %s took too long and was skipped", rule.rule_id)
    found.sort(key=lambda m: (m.start, -m.end))
    kept: list[Match] = []
    for match in found:
        if not kept or match.start >= kept[-1].end:
            kept.append(match)
    return kept


MASK = "***"


def masked(text: str, matches: Iterable[Match]) -> str:
    """TEXT with each match replaced by ***."""
    out: list[str] = []
    at = 0
    for match in sorted(matches, key=lambda m: m.start):
        if match.start < at:
            continue
        out.append(text[at : match.start])
        out.append(MASK)
        at = match.end
    out.append(text[at:])
    return "".join(out)


def excerpt(text: str, match: Match, *, width: int = 200) -> str:
    """The matched text with some context, at most WIDTH characters."""
    room = max(0, (width - (match.end - match.start)) // 2)
    start = max(0, match.start - min(room, 40))
    return text[start : start + width]

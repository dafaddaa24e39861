"""Unicode word segmentation with case and accent folding, for languages written with spaces."""

from __future__ import annotations

import unicodedata

import regex

# Letters and digits, joined by inner apostrophes or hyphens ("don't", "e-mail"), per UAX #29
# word boundaries (regex's WORD flag); CJK runs are matched separately and handled as bigrams.
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}ー"
# A word as the tokenizer sees it (also used by search to take words out of a question).
WORD = regex.compile(rf"[{_CJK}]+|[^\W{_CJK}_]+(?:['’\-][^\W{_CJK}_]+)*", regex.WORD)
_CJK_RUN = regex.compile(rf"^[{_CJK}]+$")


def fold(word: str) -> str:
    """Case-fold and strip combining marks: "Éclair" -> "eclair", "ЁЛКА" -> "елка"."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).replace("’", "'")


def bigrams(run: str) -> list[str]:
    """Overlapping character bigrams of a CJK run; a single character stands alone."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def words(text: str) -> list[str]:
    """Folded words of TEXT; runs of Chinese, Japanese or Korean characters become bigrams."""
    tokens: list[str] = []
    for match in WORD.finditer(unicodedata.normalize("NFKC", text)):
        word = match.group()
        if _CJK_RUN.match(word):
            tokens.extend(bigrams(word))
        elif folded := fold(word):  # a lone combining mark folds to nothing
            tokens.append(folded)
    return tokens

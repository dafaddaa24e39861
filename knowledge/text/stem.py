"""Snowball stems for the keyword index, so "Passwörter" finds "Passwort" and "сбросить" finds
"сброс" (the snowballstemmer package: pure Python, the algorithms PostgreSQL's own
dictionaries use).

A word and its stem are both index terms: a product or brand name written inside a question
in another language ("Google Drive" in a German question) is stemmed by that language's rules
and would miss the English article's stem, but its surface form still matches.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import snowballstemmer

# Language family (the part of a Django code before "-") -> Snowball algorithm.
ALGORITHMS = {
    "ca": "catalan",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "ne": "nepali",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}

# A stemmer object keeps the word it works on: one per thread and algorithm.
_local = threading.local()


def _stemmer(algorithm: str) -> snowballstemmer.BaseStemmer:
    stemmers = _local.__dict__.setdefault("stemmers", {})
    stemmer = stemmers.get(algorithm)
    if stemmer is None:
        stemmer = stemmers[algorithm] = snowballstemmer.stemmer(algorithm)
    return stemmer


def stems(language: str) -> bool:
    """Whether words of LANGUAGE get a stem."""
    return language.split("-")[0].lower() in ALGORITHMS


@lru_cache(maxsize=200_000)
def stem(word: str, language: str) -> str:
    """WORD (a folded index term: lower case, accents stripped, as both documents and questions
    are) reduced to its stem by LANGUAGE's rules; WORD itself
    for a language without a stemmer, a word with digits, or one of up to three letters."""
    algorithm = ALGORITHMS.get(language.split("-")[0].lower())
    if algorithm is None or len(word) <= 3 or any(ch.isdigit() for ch in word):
        return word
    return str(_stemmer(algorithm).stemWord(word))

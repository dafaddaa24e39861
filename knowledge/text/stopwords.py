"""Function words dropped from queries (not from the index): they match every article."""

from __future__ import annotations

_WORDS = {
    "en": "a an and are as at be by can do does for from how i if in is it my me of on or so "
    "that the this to was what when where which who why will with you your",
    "es": "a al como con cual cuando de del el en es esta la las lo los me mi mis para por "
    "puedo que se su sus un una y yo",
    "de": "am an auf das dem den der die ein eine einen er es für ich im in ist kann mein "
    "meine mit sie und von was wie wo zu",
    "fr": "au aux avec ce comment de des du en est et je la le les ma mes mon ou par pour "
    "que qui sur un une",
    "pt-br": "a ao as com como da das de do dos e em eu meu minha na no o os para por que se "
    "um uma",
    "ru": "в во и как как-то к мне мой моя на не по с что это я",
}
STOPWORDS: dict[str, frozenset[str]] = {
    language: frozenset(words.split()) for language, words in _WORDS.items()
}


def without_stopwords(terms: list[str], *, language: str) -> list[str]:
    """TERMS less LANGUAGE's function words; all of them when nothing else would remain."""
    stop = STOPWORDS.get(language, frozenset()) | STOPWORDS["en"]
    kept = [term for term in terms if term not in stop]
    return kept or terms

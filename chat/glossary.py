"""The company's glossary: terms replies must keep as written or translate one agreed way."""

from __future__ import annotations

from django.db.models import Q

from autoglm_site.languages import language_supported
from autoglm_site.memo import admin_tables_memo
from chat.models import GlossaryTerm


def glossary_for(*, language: str) -> list[GlossaryTerm]:
    """The terms that apply to replies in LANGUAGE, sorted by term.

    A term kept for one language overrides the same term kept for every language.
    """
    code = language_supported(language) or language
    chosen: dict[str, GlossaryTerm] = {}
    # Every-language entries ("") sort first, so a language's own entry replaces them.
    for term in GlossaryTerm.objects.filter(Q(language="") | Q(language=code)).order_by(
        "language", "term", "pk"
    ):
        chosen[term.term.strip().casefold()] = term
    return sorted(chosen.values(), key=lambda term: (term.term.casefold(), term.term, term.pk))


def _quoted(text: str) -> str:
    # One line per term, whatever an admin typed: newlines would let a term reshape the prompt.
    return '"' + " ".join(text.split()).replace('"', "'") + '"'


@admin_tables_memo(GlossaryTerm)
def glossary_prompt(*, language: str) -> str:
    """The glossary for LANGUAGE as instructions for the model; "" when it has no terms.

    Model instructions are English like the rest of the prompt; the output is byte-stable for
    an unchanged glossary (sorted, no dates), so it can sit in the cached system prompt.
    """
    lines = []
    for term in glossary_for(language=language):
        if term.do_not_translate:
            lines.append(f"- {_quoted(term.term)}: keep exactly as written, never translate it.")
        else:
            lines.append(f"- {_quoted(term.term)}: write it as {_quoted(term.translation)}.")
    if not lines:
        return ""
    header = "Company glossary: in your reply, use these terms exactly as given."
    return "\n".join([header, *lines])


@admin_tables_memo(GlossaryTerm)
def declared_names() -> tuple[tuple[str, ...], ...]:
    """The glossary's "do not translate" terms (product and brand names, in any language) as
    search terms: each term's words, tokenised as the knowledge base tokenises Latin text.

    Search keeps a declared name out of a question's meaning and keyword side when the
    question holds all of its words (KNOWLEDGE_DECLARED_NAMES points here): a name says which
    product the visitor means, not which of its articles answers.
    """
    from knowledge.text import tokenize

    names = set()
    for term in GlossaryTerm.objects.filter(do_not_translate=True).values_list("term", flat=True):
        words = tuple(dict.fromkeys(tokenize(term, language="en", stemmed=False)))
        if words:
            names.add(words)
    return tuple(sorted(names))

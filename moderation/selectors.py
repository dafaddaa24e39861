"""Reads for moderation: the active rules of a language, compiled, kept a few seconds."""

from __future__ import annotations

import logging

import regex
from django.db.models import Q

from autoglm_site.memo import admin_tables_memo
from moderation.matching import Rule, regex_compile, words_pattern
from moderation.models import ModerationHit, ModerationRule

logger = logging.getLogger(__name__)


def rules_for(*, language: str, direction: str) -> tuple[Rule, ...]:
    """The active rules for LANGUAGE (and for every language) on DIRECTION ("input" or
    "output"), compiled; read from the database at most every few seconds per process, and
    at once after a rule is saved here (autoglm_site.memo)."""
    return tuple(rule for rule in _rules(language=language) if direction in rule.directions)


@admin_tables_memo(ModerationRule)
def _rules(*, language: str) -> tuple[Rule, ...]:
    rows = ModerationRule.objects.filter(Q(language=language) | Q(language=""), active=True)
    compiled = (rule_compile(row) for row in rows.order_by("id"))
    return tuple(rule for rule in compiled if rule is not None)


def rule_compile(row: ModerationRule) -> Rule | None:
    """ROW as the matcher runs it; None for an empty list or a pattern that does not compile
    (the admin form refuses those; a row written another way is skipped, and logged)."""
    directions = (
        ("input", "output") if row.applies_to == row.AppliesTo.BOTH else (str(row.applies_to),)
    )
    if row.kind == row.Kind.WORDS:
        built = words_pattern(row.words())
        if built is None:
            return None
        pattern, longest = built
    else:
        try:
            pattern = regex_compile(row.pattern)
        except regex.error:
            logger.warning("moderation rule %s: its pattern does not compile; skipped", row.pk)
            return None
        longest = None
    return Rule(
        rule_id=row.pk,
        action=str(row.action),
        pattern=pattern,
        longest=longest,
        directions=directions,
    )


def message_blocked(*, message_id: int) -> bool:
    """Whether a visitor's message was blocked by moderation (it gets no reply)."""
    return ModerationHit.objects.filter(
        message_id=message_id, direction="input", action="block"
    ).exists()

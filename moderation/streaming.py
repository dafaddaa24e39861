"""Moderation of a reply while it streams: a banned word split across pieces is still caught.

Fed the reply's pieces in order, ReplyModerator returns what may be shown of each and holds
back a short tail, long enough for the longest listed word (a few dozen characters when a
regular expression applies), so a match is decided before any of it is shown. A match of a
masking rule is shown as ***; a match of a blocking rule, or the model's own refusal, blocks
the reply: nothing more of it is shown, and the reply runner replaces it with a safe message.
With no rules for the language, pieces pass through untouched.
"""

from __future__ import annotations

import dataclasses

from chat.llm.base import ChatTurn, CompletionRequest
from moderation import matching
from moderation.models import Action, Direction, ModerationHit
from moderation.selectors import rules_for
from moderation.services import HitNote, input_masked, notes_for

# Held back when a regular expression applies (its matches' length is unknown).
REGEX_HOLD = 64
_BEFORE = 16  # characters of shown text kept to decide a word boundary
_MAX_NOTES = 5


class ReplyModerator:
    def __init__(self, rules: tuple[matching.Rule, ...]) -> None:
        self.rules = rules
        lengths = [rule.longest for rule in rules]
        if any(length is None for length in lengths):
            self.hold = REGEX_HOLD
        else:
            # Normalised text can be shorter than the original (marks dropped): room for it.
            self.hold = 2 * max((length or 0 for length in lengths), default=0) + 2
        self.blocked = False
        self.notes: list[HitNote] = []
        self._held = ""
        self._before = ""
        self._shown = ""  # for the excerpt of a blocked reply

    @classmethod
    def for_language(cls, *, language: str) -> ReplyModerator:
        """The moderator of a reply in LANGUAGE (reads the rules: call it from a thread)."""
        return cls(rules_for(language=language, direction=Direction.OUTPUT))

    def feed(self, text: str) -> str:
        if self.blocked:
            return ""
        if not self.rules:
            return text
        self._held += text
        return self._release(final=False)

    def flush(self) -> str:
        if self.blocked or not self.rules:
            return ""
        return self._release(final=True)

    def refuse(self, excerpt: str = "") -> None:
        """The model refused (its content filter): block the reply."""
        if self.blocked:
            return
        self.blocked = True
        seen = excerpt or (self._shown + self._held)
        self.notes.append(
            HitNote(
                rule_id=None,
                action=Action.BLOCK,
                excerpt=seen[-200:],
                source=ModerationHit.Source.MODEL,
            )
        )
        self._held = ""

    def _note(self, notes: list[HitNote]) -> None:
        self.notes.extend(notes[: max(0, _MAX_NOTES - len(self.notes))])

    def _release(self, *, final: bool) -> str:
        held = self._held
        matches = matching.find(self.rules, held, before=self._before)
        # A match at the very end may still grow or stop being a whole word ("ass" → "assert").
        settled = [m for m in matches if final or m.end < len(held)]
        for match in settled:
            if match.rule.action == Action.BLOCK:
                self.blocked = True
                self._note(notes_for(self._shown + held, [_shifted(match, self._shown)]))
                self._held = ""
                return ""
        cut = len(held) if final else max(0, len(held) - self.hold)
        for match in matches:
            if match not in settled:
                cut = min(cut, match.start)
        for match in settled:
            if match.start < cut < match.end:
                cut = match.end
        shown = [m for m in settled if m.end <= cut]
        if shown:
            self._note(notes_for(self._shown + held, [_shifted(m, self._shown) for m in shown]))
        released, self._held = held[:cut], held[cut:]
        self._before = (self._before + released)[-_BEFORE:]
        out = matching.masked(released, shown) if shown else released
        self._shown += out
        return out


def _shifted(match: matching.Match, before: str) -> matching.Match:
    return matching.Match(
        rule=match.rule, start=match.start + len(before), end=match.end + len(before)
    )


def reply_moderation(request: CompletionRequest) -> tuple[CompletionRequest, ReplyModerator]:
    """For a reply about to be generated (call from a thread): REQUEST with the visitor's
    words masked by the input rules of its language (the stored messages keep them), and the
    moderator of the reply, with the output rules of the reply's language."""
    moderator = ReplyModerator.for_language(language=request.reply_language or request.language)
    if not rules_for(language=request.language, direction=Direction.INPUT):
        return request, moderator
    turns = [
        ChatTurn(role=turn.role, content=input_masked(text=turn.content, language=request.language))
        if turn.role == "user"
        else turn
        for turn in request.messages
    ]
    query = input_masked(text=request.query, language=request.language)
    return dataclasses.replace(request, messages=turns, query=query), moderator

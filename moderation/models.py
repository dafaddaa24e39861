"""Moderation rules admins write per language, and the log of every time one (or the model's
own content filter) acted on a visitor's message or a reply."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Direction(models.TextChoices):
    INPUT = "input", _("Visitor's message")
    OUTPUT = "output", _("Assistant's reply")


class Action(models.TextChoices):
    # Input: the message is stored but gets no reply; output: the reply is replaced.
    BLOCK = "block", _("Block")
    MASK = "mask", _("Mask the matched text")


class ModerationRule(models.Model):
    class Kind(models.TextChoices):
        WORDS = "words", _("Word list")
        REGEX = "regex", _("Regular expression")

    class AppliesTo(models.TextChoices):
        INPUT = "input", _("Visitors' messages")
        OUTPUT = "output", _("Assistant's replies")
        BOTH = "both", _("Both")

    language = models.CharField(
        _("language"),
        max_length=16,
        blank=True,
        choices=settings.LANGUAGES,
        db_index=True,
        help_text=_("Leave empty to apply the rule in every language."),
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.WORDS)
    applies_to = models.CharField(
        _("applies to"), max_length=8, choices=AppliesTo.choices, default=AppliesTo.BOTH
    )
    action = models.CharField(_("action"), max_length=8, choices=Action.choices)
    pattern = models.TextField(
        _("words or pattern"),
        help_text=_(
            "A word list: one word or phrase per line, matched as whole words ignoring case "
            "(as text anywhere in Chinese, Japanese, Korean and Thai). A regular expression: "
            "at most 500 characters, matched ignoring case."
        ),
    )
    active = models.BooleanField(_("active"), default=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("moderation rule")
        verbose_name_plural = _("moderation rules")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.note or f"{self.get_kind_display()} #{self.pk}"

    def words(self) -> list[str]:
        """The word list's entries (one a line; blank lines ignored)."""
        return [line.strip() for line in self.pattern.splitlines() if line.strip()]

    def applies(self, direction: str) -> bool:
        return self.applies_to in (self.AppliesTo.BOTH, direction)


class ModerationHit(models.Model):
    class Source(models.TextChoices):
        RULE = "rule", _("A moderation rule")
        MODEL = "model", _("The model's own content filter")

    rule = models.ForeignKey(
        ModerationRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="hits",
        verbose_name=_("rule"),
    )
    source = models.CharField(
        _("source"), max_length=8, choices=Source.choices, default=Source.RULE
    )
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices)
    conversation = models.ForeignKey(
        "chat.Conversation",
        on_delete=models.CASCADE,
        related_name="moderation_hits",
        verbose_name=_("conversation"),
    )
    message = models.ForeignKey(
        "chat.Message",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="moderation_hits",
        verbose_name=_("message"),
    )
    language = models.CharField(_("language"), max_length=16, blank=True)
    # The matched text with a little context; for a blocked reply, the only copy of what the
    # model wrote.
    excerpt = models.CharField(_("excerpt"), max_length=200, blank=True)
    action = models.CharField(_("action taken"), max_length=8, choices=Action.choices)
    reviewed = models.BooleanField(_("reviewed"), default=False, db_index=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("moderation hit")
        verbose_name_plural = _("moderation hits")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_direction_display()}: {self.excerpt[:40]}"

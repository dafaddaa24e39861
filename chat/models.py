"""Visitors, their conversations with the assistant, the messages and feedback on replies."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Visitor(models.Model):
    """An anonymous person in the widget; identified by a signed token kept in the browser."""

    uuid = models.UUIDField(_("anonymous id"), default=uuid.uuid4, unique=True, editable=False)
    external_id = models.CharField(_("external id"), max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("last seen"), auto_now=True)

    class Meta:
        verbose_name = _("visitor")
        verbose_name_plural = _("visitors")

    def __str__(self) -> str:
        return self.external_id or str(self.uuid)


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Resolved")

    class Mode(models.TextChoices):
        """Who answers the visitor now."""

        BOT = "bot", _("Assistant")
        WAITING = "waiting", _("Waiting for a person")
        AGENT = "agent", _("With a person")

    class HandoffReason(models.TextChoices):
        NONE = "", _("None")
        VISITOR_REQUEST = "visitor_request", _("The visitor asked for a person")
        NO_KNOWLEDGE = "no_knowledge", _("No relevant knowledge")
        THUMBS_DOWN = "thumbs_down", _("Not helpful, then another message")
        RULE = "rule", _("An admin rule")
        AGENT = "agent", _("An agent took it over")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visitor = models.ForeignKey(
        Visitor, on_delete=models.CASCADE, related_name="conversations", verbose_name=_("visitor")
    )
    language = models.CharField(_("language"), max_length=16, db_index=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    # The client id of the message that opened it: a retried first message finds this conversation.
    opening_client_id = models.CharField(max_length=64, editable=False)
    mode = models.CharField(
        _("answered by"), max_length=16, choices=Mode.choices, default=Mode.BOT, db_index=True
    )
    handoff_reason = models.CharField(
        _("handoff reason"), max_length=32, choices=HandoffReason.choices, blank=True
    )
    # What triggered it, for people: the rule's keyword, the visitor's words...
    handoff_detail = models.CharField(_("handoff detail"), max_length=200, blank=True)
    handoff_at = models.DateTimeField(_("handed off"), null=True, blank=True, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        verbose_name=_("agent"),
    )
    assigned_at = models.DateTimeField(_("assigned"), null=True, blank=True)
    team = models.ForeignKey(
        "inbox.Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=_("team"),
    )
    # Agents who read the visitor's language switch this off.
    translation_enabled = models.BooleanField(_("translate"), default=True)
    # Left by the visitor when nobody could join: the conversation is then a ticket.
    visitor_email = models.EmailField(_("visitor's email"), blank=True)
    is_ticket = models.BooleanField(_("ticket"), default=False)
    csat_requested = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    reopened_at = models.DateTimeField(_("reopened"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["visitor", "opening_client_id"], name="conversation_unique_opening"
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.language})"

    @property
    def group_name(self) -> str:
        return f"conversation_{self.id.hex}"

    @property
    def bot_answers(self) -> bool:
        return self.mode == self.Mode.BOT


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("Visitor")
        ASSISTANT = "assistant", _("Assistant")
        AGENT = "agent", _("Agent")
        # A private note between agents: never sent to the visitor.
        NOTE = "note", _("Private note")
        # What happened (a person joined, resolved...), written in the conversation's language.
        SYSTEM = "system", _("Event")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        STREAMING = "streaming", _("Streaming")
        COMPLETE = "complete", _("Complete")
        INTERRUPTED = "interrupted", _("Interrupted")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("conversation"),
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    text = models.TextField(_("text"), blank=True)
    # The language TEXT is written in, where known (agents' messages, translated messages).
    language = models.CharField(_("language"), max_length=16, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chat_messages",
        verbose_name=_("author"),
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, db_index=True)
    # NULL for replies: the unique constraint below applies to visitor messages only.
    client_id = models.CharField(  # noqa: DJ001
        _("client message id"), max_length=64, null=True, blank=True
    )
    reply_to = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="replies",
        verbose_name=_("reply to"),
    )
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    cached_prompt_tokens = models.PositiveIntegerField(
        _("cached prompt tokens"), null=True, blank=True
    )
    ttft_ms = models.FloatField(_("time to first token (ms)"), null=True, blank=True)
    backend_ttft_ms = models.FloatField(
        _("engine's time to first token (ms)"), null=True, blank=True
    )
    duration_ms = models.FloatField(_("duration (ms)"), null=True, blank=True)
    backend = models.CharField(_("backend"), max_length=200, blank=True)
    # The endpoint that answered (a vLLM replica's name, "local", "knowledge_fallback"...).
    replica = models.CharField(_("replica"), max_length=200, blank=True)
    # Why the reply ended: stop, length (max_tokens), fallback, cancelled, failed, interrupted.
    finish_reason = models.CharField(_("finish reason"), max_length=16, blank=True)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Refreshed while a reply streams; a streaming reply with an old heartbeat lost its process.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    # Set by chat.services.reply_claim: whether more replies of the conversation were pending.
    more_pending: bool = False

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_unique_client_id",
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "status"], name="message_conv_status"),
            # The analytics refresh reads what changed since its watermark (analytics.services).
            models.Index(fields=["updated_at"], name="message_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"


class MessageTranslation(models.Model):
    """A message in another language, stored beside its original (which it never replaces)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Translating")
        DONE = "done", _("Translated")
        FAILED = "failed", _("Not translated")

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="translations", verbose_name=_("message")
    )
    language = models.CharField(_("language"), max_length=16)
    text = models.TextField(_("text"), blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    error = models.CharField(_("error"), max_length=200, blank=True)
    backend = models.CharField(_("backend"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message translation")
        verbose_name_plural = _("message translations")
        constraints = [
            models.UniqueConstraint(
                fields=["message", "language"], name="message_translation_unique"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.message_id} in {self.language}"


class Feedback(models.Model):
    class Rating(models.TextChoices):
        UP = "up", _("Helpful")
        DOWN = "down", _("Not helpful")

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="feedback", verbose_name=_("message")
    )
    rating = models.CharField(_("rating"), max_length=8, choices=Rating.choices)
    comment = models.TextField(_("comment"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("feedback")
        verbose_name_plural = _("feedback")

    def __str__(self) -> str:
        return f"{self.rating} on #{self.message_id}"


class DecodingPreset(models.Model):
    """Sampling for one kind of reply, editable in the admin within sane bounds."""

    class Task(models.TextChoices):
        SUPPORT_ANSWER = "support_answer", _("Factual support answer")
        SMALL_TALK = "small_talk", _("Small talk")
        SUMMARY = "summary", _("Summarisation")

    assistant = models.CharField(
        _("assistant"),
        max_length=100,
        blank=True,
        help_text=_("The assistant's name; empty applies to every assistant."),
    )
    task = models.CharField(_("task"), max_length=32, choices=Task.choices)
    temperature = models.FloatField(
        _("temperature"), default=0.3, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    top_p = models.FloatField(
        _("top p"), default=0.9, validators=[MinValueValidator(0.05), MaxValueValidator(1.0)]
    )
    max_tokens = models.PositiveIntegerField(
        _("max tokens"), default=512, validators=[MinValueValidator(16), MaxValueValidator(4096)]
    )
    presence_penalty = models.FloatField(
        _("presence penalty"),
        default=0.0,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
    )
    frequency_penalty = models.FloatField(
        _("frequency penalty"),
        default=0.0,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
    )
    stop = models.TextField(
        _("stop sequences"), blank=True, help_text=_("One per line; at most four.")
    )
    seed = models.PositiveIntegerField(_("seed"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("decoding preset")
        verbose_name_plural = _("decoding presets")
        ordering = ["assistant", "task"]
        constraints = [
            models.UniqueConstraint(fields=["assistant", "task"], name="decoding_preset_unique"),
            models.CheckConstraint(
                condition=Q(temperature__gte=0.0, temperature__lte=2.0),
                name="decoding_preset_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(top_p__gt=0.0, top_p__lte=1.0), name="decoding_preset_top_p_range"
            ),
            models.CheckConstraint(
                condition=Q(max_tokens__gte=16, max_tokens__lte=4096),
                name="decoding_preset_max_tokens_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.assistant or '*'} / {self.get_task_display()}"

    def stop_sequences(self) -> tuple[str, ...]:
        return tuple(line for line in self.stop.splitlines() if line.strip())

    def clean(self) -> None:
        if len(self.stop_sequences()) > 4:
            raise ValidationError({"stop": _("At most four stop sequences.")})


class TurnKnowledge(models.Model):
    """The knowledge a visitor's message was given in the prompt, stored so that the message
    is rendered identically (with it) in every later prompt: the prefix cache stays valid."""

    message = models.OneToOneField(
        Message,
        on_delete=models.CASCADE,
        related_name="prompt_knowledge",
        verbose_name=_("message"),
    )
    snippets = models.JSONField(_("snippets"), default=list)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("knowledge given with a message")
        verbose_name_plural = _("knowledge given with messages")

    def __str__(self) -> str:
        return f"knowledge for #{self.message_id}"


class GlossaryTerm(models.Model):
    """A company term and how replies must write it in one language (or in every language)."""

    language = models.CharField(
        _("language"),
        max_length=16,
        blank=True,
        db_index=True,
        choices=settings.LANGUAGES,
        help_text=_("Leave empty for a term that applies to replies in every language."),
    )
    term = models.CharField(
        _("term"), max_length=200, help_text=_("The term as the company writes it.")
    )
    translation = models.CharField(
        _("preferred translation"),
        max_length=200,
        blank=True,
        help_text=_("How replies in this language must write the term."),
    )
    do_not_translate = models.BooleanField(
        _("do not translate"),
        default=False,
        help_text=_("Replies keep the term exactly as written (product and brand names)."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("glossary term")
        verbose_name_plural = _("glossary")
        ordering = ["language", "term"]
        constraints = [
            models.UniqueConstraint(
                fields=["language", "term"], name="glossary_term_unique_per_language"
            ),
            models.CheckConstraint(
                condition=Q(do_not_translate=True, translation="")
                | (Q(do_not_translate=False) & ~Q(translation="")),
                name="glossary_term_one_rule",
                violation_error_message=_(
                    "Either give a preferred translation or mark the term as not to be "
                    "translated, not both."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.term} ({self.language or '*'})"

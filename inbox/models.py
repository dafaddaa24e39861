"""Agents, their teams and hours, canned replies, handoff rules and satisfaction ratings."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

AGENTS_GROUP = "Agents"


def _hours_validate(value: object) -> None:
    """{"0": [["09:00", "17:00"]], ...}: weekday (Monday 0) to opening intervals."""
    if not isinstance(value, dict):
        raise ValidationError(_("Opening hours must map weekdays (0 to 6) to intervals."))
    for day, intervals in value.items():
        if str(day) not in {str(n) for n in range(7)} or not isinstance(intervals, list):
            raise ValidationError(_("Opening hours must map weekdays (0 to 6) to intervals."))
        for interval in intervals:
            if (
                not isinstance(interval, list | tuple)
                or len(interval) != 2
                or not all(_is_clock(part) for part in interval)
                or interval[0] >= interval[1]
            ):
                raise ValidationError(
                    _('Each interval is ["HH:MM", "HH:MM"], its start before its end.')
                )


def _is_clock(text: object) -> bool:
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        return False
    hours, minutes = text[:2], text[3:]
    return (
        hours.isdigit() and minutes.isdigit() and int(hours) <= 24 and int(minutes) < 60
    ) and not (int(hours) == 24 and int(minutes) > 0)


def _holidays_validate(value: object) -> None:
    import datetime

    if not isinstance(value, list):
        raise ValidationError(_("Holidays are a list of dates (YYYY-MM-DD)."))
    for item in value:
        try:
            datetime.date.fromisoformat(str(item))
        except ValueError as exc:
            raise ValidationError(_("Holidays are a list of dates (YYYY-MM-DD).")) from exc


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    languages = models.JSONField(
        _("languages"),
        default=list,
        blank=True,
        help_text=_("Conversations in these languages go to this team; empty: any language."),
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    opening_hours = models.JSONField(
        _("opening hours"),
        default=dict,
        blank=True,
        validators=[_hours_validate],
        help_text=_(
            'Weekday (0 is Monday) to intervals in local time, e.g. {"0": [["09:00", "17:00"]]}.'
            " Empty: always open."
        ),
    )
    holidays = models.JSONField(
        _("holidays"),
        default=list,
        blank=True,
        validators=[_holidays_validate],
        help_text=_("Dates (YYYY-MM-DD) the team is closed all day."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from zoneinfo import available_timezones

        if self.time_zone not in available_timezones():
            raise ValidationError({"time_zone": _("Unknown time zone.")})
        codes = {code for code, _name in settings.LANGUAGES}
        if not isinstance(self.languages, list) or any(
            code not in codes for code in self.languages
        ):
            raise ValidationError({"languages": _("Use the interface's language codes.")})


class AgentProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="agent_profile",
        verbose_name=_("user"),
    )
    display_name = models.CharField(_("name shown to visitors"), max_length=100, blank=True)
    languages = models.JSONField(
        _("languages spoken"),
        default=list,
        blank=True,
        help_text=_("Messages in these languages are shown untranslated."),
    )
    preferred_language = models.CharField(
        _("preferred language"), max_length=16, choices=settings.LANGUAGES, default="en"
    )
    teams = models.ManyToManyField(Team, blank=True, related_name="agents", verbose_name=_("teams"))
    # Refreshed by the inbox socket: an agent seen in the last minute is online.
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True, db_index=True)
    sound_enabled = models.BooleanField(_("sound for new conversations"), default=True)

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        user = self.user
        return self.display_name or user.get_full_name() or user.get_username()

    def reads(self, language: str) -> bool:
        """Whether the agent reads LANGUAGE (its base code: zh-hans reads zh-hant too)."""
        base = language.split("-")[0]
        spoken = {*self.languages, self.preferred_language}
        return any(code.split("-")[0] == base for code in spoken)


class CannedReply(models.Model):
    language = models.CharField(
        _("language"),
        max_length=16,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Empty: offered in every language."),
    )
    shortcut = models.SlugField(_("shortcut"), max_length=50)
    title = models.CharField(_("title"), max_length=200)
    text = models.TextField(_("text"))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["shortcut", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["shortcut", "language"], name="canned_reply_unique_shortcut"
            )
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut} ({self.language or '*'})"


class HandoffRule(models.Model):
    """Hand a conversation to a person when a visitor's message says one of the keywords, or
    when its answer drew on a knowledge category (billing disputes, legal...)."""

    language = models.CharField(
        _("language"),
        max_length=16,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Empty: every language."),
    )
    keywords = models.TextField(
        _("keywords"), blank=True, help_text=_("One per line; matched ignoring case.")
    )
    category = models.ForeignKey(
        "knowledge.Category",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="handoff_rules",
        verbose_name=_("knowledge category"),
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="handoff_rules",
        verbose_name=_("team"),
        help_text=_("The team that takes these conversations; empty: by language."),
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("handoff rule")
        verbose_name_plural = _("handoff rules")
        constraints = [
            models.CheckConstraint(
                condition=~Q(keywords="") | Q(category__isnull=False),
                name="handoff_rule_has_trigger",
                violation_error_message=_("Give keywords, a knowledge category, or both."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.language or '*'}: {self.keyword_list()[:3]} {self.category or ''}".strip()

    def keyword_list(self) -> list[str]:
        return [line.strip() for line in self.keywords.splitlines() if line.strip()]


class Csat(models.Model):
    """A visitor's satisfaction rating of a conversation (1 to 5) and the agent it rates."""

    conversation = models.OneToOneField(
        "chat.Conversation",
        on_delete=models.CASCADE,
        related_name="csat",
        verbose_name=_("conversation"),
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="csat_ratings",
        verbose_name=_("agent"),
    )
    rating = models.PositiveSmallIntegerField(
        _("rating"), validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(_("comment"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("satisfaction rating")
        verbose_name_plural = _("satisfaction ratings")
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__gte=1, rating__lte=5), name="csat_rating_range"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rating}/5 for {self.conversation_id}"

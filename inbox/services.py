"""Writes of the human side: handoff, claim, assign, transfer, resolve, reopen, hand back,
agents' messages and notes, translations, CSAT, tickets by e-mail.

Each returns what happened (a Change: the messages it stored and whether the conversation's
state changed); inbox.live broadcasts it to the sockets after the transaction committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils import translation as django_translation
from django.utils.translation import gettext as _

from autoglm_site.background import enqueue
from chat import errors
from chat.language import reply_language
from chat.models import Conversation, Message, MessageTranslation
from chat.services import message_text_clean
from inbox import handoff
from inbox.models import AGENTS_GROUP, AgentProfile, Csat, Team
from webhooks import events as webhook_events

User = AbstractBaseUser | AnonymousUser


@dataclass
class Change:
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)  # stored, to broadcast
    translations: list[MessageTranslation] = field(default_factory=list)  # to run
    stopping_replies: list[int] = field(default_factory=list)  # streaming: stop them
    cancelled_replies: list[int] = field(default_factory=list)  # had not started
    state_changed: bool = False
    message: Message | None = None  # the agent's own message, for the ack
    created: bool = True


# --- Agents ---------------------------------------------------------------------------------
def agent_profile(*, user: User) -> AgentProfile:
    """The agent profile of USER, created on first use; only agents and staff have one."""
    if not user.is_authenticated or not user.is_active:
        raise errors.AgentRequired()
    if not (
        getattr(user, "is_staff", False) or user.groups.filter(name=AGENTS_GROUP).exists()  # type: ignore[attr-defined]
    ):
        raise errors.AgentRequired()
    profile, _created = AgentProfile.objects.select_related("user").get_or_create(user=user)
    return profile


def agent_seen(*, profile: AgentProfile) -> None:
    AgentProfile.objects.filter(pk=profile.pk).update(last_seen_at=timezone.now())


def _locked(conversation_id: uuid.UUID) -> Conversation:
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("assignee", "team")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise errors.ConversationNotFound()
    return conversation


def _system(conversation: Conversation, text: str) -> Message:
    """An event line for the visitor, written in the conversation's language (TEXT is the
    already translated string)."""
    return Message.objects.create(
        conversation=conversation,
        role=Message.Role.SYSTEM,
        text=text,
        language=conversation.language,
        status=Message.Status.COMPLETE,
    )


def _in_language(conversation: Conversation):  # type: ignore[no-untyped-def]
    return django_translation.override(conversation.language)


# --- Handoff --------------------------------------------------------------------------------
def handoff_start(
    *, conversation: Conversation, reason: str, detail: str = "", team: Team | None = None
) -> Change:
    """Hand the conversation to a person: the bot stops answering (its active replies are
    cancelled) and the visitor is told when someone will join, or, when nobody can (outside
    the team's hours, nobody online), that they may leave an e-mail address. Call inside the
    caller's transaction or alone; a conversation already with people is left as it is."""
    from chat.services import reply_cancel

    with transaction.atomic():
        locked = _locked(conversation.pk)
        change = Change(conversation=locked)
        if locked.mode != Conversation.Mode.BOT:
            return change
        team = team or locked.team or handoff.team_for(language=locked.language)
        available = handoff.availability(team=team)  # before this one joins the queue
        now = timezone.now()
        locked.mode = Conversation.Mode.WAITING
        locked.handoff_reason = reason
        locked.handoff_detail = detail[:200]
        locked.handoff_at = now
        locked.team = team
        locked.status = Conversation.Status.OPEN
        locked.save(
            update_fields=[
                "mode",
                "handoff_reason",
                "handoff_detail",
                "handoff_at",
                "team",
                "status",
                "updated_at",
            ]
        )
        cancelled = reply_cancel(conversation=locked)
        change.stopping_replies = cancelled.stopping
        change.cancelled_replies = cancelled.cancelled
        with _in_language(locked):
            if available.open:
                text = _(
                    "A person from our team will join this conversation. Expected wait: "
                    "about %(minutes)s min."
                ) % {"minutes": available.wait_minutes}
            else:
                text = _(
                    "Nobody from our team is available right now. Leave your e-mail address "
                    "and we will answer you by e-mail."
                )
        change.messages.append(_system(locked, text))
        change.state_changed = True
        webhook_events.handoff_requested(conversation=locked)
        return change


def handoff_for_message(*, conversation: Conversation, message: Message) -> tuple[str, str] | None:
    """(reason, detail) when a visitor's new MESSAGE hands the conversation off: it asks for
    a person, says an admin rule's keyword, or follows a thumbs-down on the last reply."""
    if not handoff.handoff_enabled():
        return None
    language = conversation.language
    if handoff.asks_for_person(text=message.text, language=language):
        return Conversation.HandoffReason.VISITOR_REQUEST, message.text[:200]
    matched = handoff.rule_for_text(text=message.text, language=language)
    if matched is not None:
        return Conversation.HandoffReason.RULE, matched[1]
    last_reply = (
        Message.objects.filter(
            conversation=conversation, role=Message.Role.ASSISTANT, pk__lt=message.pk
        )
        .select_related("feedback")
        .order_by("-id")
        .first()
    )
    rating = getattr(getattr(last_reply, "feedback", None), "rating", None)
    if rating == "down":
        return Conversation.HandoffReason.THUMBS_DOWN, ""
    return None


# --- Agents' actions ------------------------------------------------------------------------
def conversation_claim(*, conversation_id: uuid.UUID, agent: AgentProfile) -> Change:
    """AGENT takes the conversation: the bot stops, the visitor is told who joined."""
    return conversation_assign(conversation_id=conversation_id, agent=agent, by=agent)


def conversation_assign(
    *, conversation_id: uuid.UUID, agent: AgentProfile, by: AgentProfile
) -> Change:
    from chat.services import reply_cancel

    with transaction.atomic():
        locked = _locked(conversation_id)
        change = Change(conversation=locked)
        if locked.assignee_id == agent.user_id and locked.mode == Conversation.Mode.AGENT:
            return change
        now = timezone.now()
        if locked.handoff_at is None:  # an agent took over a bot conversation
            locked.handoff_at = now
            locked.handoff_reason = Conversation.HandoffReason.AGENT
        cancelled = reply_cancel(conversation=locked)
        change.stopping_replies = cancelled.stopping
        change.cancelled_replies = cancelled.cancelled
        locked.mode = Conversation.Mode.AGENT
        locked.assignee = agent.user
        locked.assigned_at = now
        locked.status = Conversation.Status.OPEN
        locked.save(
            update_fields=[
                "mode",
                "assignee",
                "assigned_at",
                "handoff_at",
                "handoff_reason",
                "status",
                "updated_at",
            ]
        )
        with _in_language(locked):
            text = _("%(name)s joined the conversation.") % {"name": agent.name}
        change.messages.append(_system(locked, text))
        change.state_changed = True
        webhook_events.conversation_assigned(conversation=locked, agent=agent, by=by)
        return change


def conversation_transfer(
    *, conversation_id: uuid.UUID, team: Team | None, agent: AgentProfile | None, by: AgentProfile
) -> Change:
    """To another agent (assigned to them at once) or to a team's waiting queue."""
    if agent is not None:
        return conversation_assign(conversation_id=conversation_id, agent=agent, by=by)
    if team is None:
        raise errors.InvalidFrame()
    with transaction.atomic():
        locked = _locked(conversation_id)
        locked.team = team
        locked.assignee = None
        locked.mode = Conversation.Mode.WAITING
        locked.save(update_fields=["team", "assignee", "mode", "updated_at"])
        webhook_events.conversation_assigned(conversation=locked, agent=None, by=by)
        return Change(conversation=locked, state_changed=True)


def conversation_resolve(*, conversation_id: uuid.UUID, by: AgentProfile | None = None) -> Change:
    """Resolved: the visitor is asked to rate the conversation."""
    with transaction.atomic():
        locked = _locked(conversation_id)
        change = Change(conversation=locked)
        if locked.status == Conversation.Status.CLOSED:
            return change
        locked.status = Conversation.Status.CLOSED
        locked.resolved_at = timezone.now()
        locked.csat_requested = True
        locked.save(update_fields=["status", "resolved_at", "csat_requested", "updated_at"])
        with _in_language(locked):
            text = _("This conversation was marked as resolved. How did we do?")
        change.messages.append(_system(locked, text))
        change.state_changed = True
        webhook_events.conversation_resolved(conversation=locked, by=by)
        return change


def conversation_reopen(*, conversation_id: uuid.UUID, by: AgentProfile | None = None) -> Change:
    with transaction.atomic():
        locked = _locked(conversation_id)
        change = Change(conversation=locked)
        if locked.status == Conversation.Status.OPEN:
            return change
        locked.status = Conversation.Status.OPEN
        locked.reopened_at = timezone.now()
        # Not rated before it reopened: ask again when it is resolved again.
        locked.csat_requested = Csat.objects.filter(conversation=locked).exists()
        if by is not None:
            locked.mode = Conversation.Mode.AGENT
            locked.assignee = by.user
        locked.save(
            update_fields=[
                "status",
                "reopened_at",
                "csat_requested",
                "mode",
                "assignee",
                "updated_at",
            ]
        )
        change.state_changed = True
        return change


def conversation_hand_back(*, conversation_id: uuid.UUID, by: AgentProfile) -> Change:
    """The assistant answers again."""
    with transaction.atomic():
        locked = _locked(conversation_id)
        change = Change(conversation=locked)
        if locked.mode == Conversation.Mode.BOT:
            return change
        locked.mode = Conversation.Mode.BOT
        locked.assignee = None
        locked.save(update_fields=["mode", "assignee", "updated_at"])
        with _in_language(locked):
            text = _("The assistant is back. Ask it anything, or ask for a person again.")
        change.messages.append(_system(locked, text))
        change.state_changed = True
        return change


def conversation_translation_set(*, conversation_id: uuid.UUID, enabled: bool) -> Change:
    with transaction.atomic():
        locked = _locked(conversation_id)
        locked.translation_enabled = enabled
        locked.save(update_fields=["translation_enabled", "updated_at"])
        return Change(conversation=locked, state_changed=True)


def agent_message_send(
    *,
    conversation_id: uuid.UUID,
    agent: AgentProfile,
    client_id: str,
    text: str,
    note: bool = False,
) -> Change:
    """Store an agent's message (or private note), idempotent on CLIENT_ID; the visitor's
    translation of it is queued (pending) in the same transaction. A message to a
    conversation nobody owns claims it for the agent."""
    clean = message_text_clean(text=text)
    role = Message.Role.NOTE if note else Message.Role.AGENT
    try:
        with transaction.atomic():
            locked = _locked(conversation_id)
            existing = Message.objects.filter(
                conversation=locked, client_id=client_id, author=agent.user
            ).first()
            if existing is not None:
                return Change(conversation=locked, message=existing, created=False)
            change = Change(conversation=locked)
            if not note and (locked.mode != Conversation.Mode.AGENT or locked.assignee_id is None):
                change = conversation_assign(conversation_id=locked.pk, agent=agent, by=agent)
                locked = change.conversation
            if not note and locked.status == Conversation.Status.CLOSED:
                reopened = conversation_reopen(conversation_id=locked.pk, by=agent)
                locked = reopened.conversation
                change.state_changed = True
            message = Message.objects.create(
                conversation=locked,
                role=role,
                text=clean,
                language=agent.preferred_language,
                author=agent.user,
                status=Message.Status.COMPLETE,
                client_id=client_id,
            )
            change.message = message
            change.messages.append(message)
            webhook_events.message_created(message=message)
            if not note and _needs_translation(
                conversation=locked, source=agent.preferred_language, target=locked.language
            ):
                change.translations.append(
                    MessageTranslation.objects.create(
                        message=message,
                        language=locked.language,
                        status=MessageTranslation.Status.PENDING,
                    )
                )
            Conversation.objects.filter(pk=locked.pk).update(updated_at=timezone.now())
            if not note and locked.is_ticket and locked.visitor_email:
                from inbox.tasks import ticket_reply_email

                enqueue(ticket_reply_email, message_id=message.pk)
            return change
    except IntegrityError as exc:
        # The same client id raced in from another socket of this agent: that one won.
        existing = Message.objects.filter(
            conversation_id=conversation_id, client_id=client_id, author=agent.user
        ).first()
        if existing is None:
            raise errors.ChatError() from exc
        return Change(conversation=existing.conversation, message=existing, created=False)


_OPERATOR_ROLES = {
    "agent": Message.Role.AGENT,
    "note": Message.Role.NOTE,
    "system": Message.Role.SYSTEM,
}


def operator_message_send(
    *,
    conversation_id: uuid.UUID,
    client_id: str,
    text: str,
    kind: str = "agent",
    agent: AgentProfile | None = None,
) -> Change:
    """A message posted from outside the inbox (the HTTP API): an agent's message or private
    note, through agent_message_send (the same claim, translation and store-before-ack), or
    an event line the visitor sees (KIND "system", no author, in the conversation's language).
    Idempotent on CLIENT_ID like the sockets; a CLIENT_ID that names a message of another
    kind or author is refused (ClientIdInUse), never stored twice."""
    role = _OPERATOR_ROLES.get(kind)
    if role is None:
        raise errors.InvalidFrame()
    if role != Message.Role.SYSTEM and agent is None:
        raise errors.AgentRequired()
    author_id = agent.user_id if agent is not None and role != Message.Role.SYSTEM else None

    def replayed(existing: Message) -> Change:
        if existing.role != role or existing.author_id != author_id:
            raise errors.ClientIdInUse()
        return Change(conversation=existing.conversation, message=existing, created=False)

    existing = Message.objects.filter(conversation_id=conversation_id, client_id=client_id).first()
    if existing is not None:
        return replayed(existing)
    if role != Message.Role.SYSTEM:
        assert agent is not None
        return agent_message_send(
            conversation_id=conversation_id,
            agent=agent,
            client_id=client_id,
            text=text,
            note=role == Message.Role.NOTE,
        )
    clean = message_text_clean(text=text)
    try:
        with transaction.atomic():
            locked = _locked(conversation_id)
            message = Message.objects.create(
                conversation=locked,
                role=Message.Role.SYSTEM,
                text=clean,
                language=locked.language,
                status=Message.Status.COMPLETE,
                client_id=client_id,
            )
            Conversation.objects.filter(pk=locked.pk).update(updated_at=timezone.now())
            return Change(conversation=locked, messages=[message], message=message)
    except IntegrityError as exc:  # the same client id raced in: that one won
        existing = Message.objects.filter(
            conversation_id=conversation_id, client_id=client_id
        ).first()
        if existing is None:
            raise errors.ChatError() from exc
        return replayed(existing)


def _needs_translation(*, conversation: Conversation, source: str, target: str) -> bool:
    return conversation.translation_enabled and source.split("-")[0] != target.split("-")[0]


def translations_for_agent(
    *, conversation: Conversation, agent: AgentProfile, messages: list[Message]
) -> list[MessageTranslation]:
    """Pending translations into the agent's language of the visitor's MESSAGES the agent does
    not read (created here when missing; existing ones are left as they are)."""
    target = agent.preferred_language
    if not conversation.translation_enabled or agent.reads(conversation.language):
        return []
    wanted = [
        m
        for m in messages
        if m.role == Message.Role.USER
        and not agent.reads(
            m.language or reply_language(text=m.text, conversation_language=conversation.language)
        )
    ]
    have = set(
        MessageTranslation.objects.filter(message__in=wanted, language=target).values_list(
            "message_id", flat=True
        )
    )
    created = []
    for message in wanted:
        if message.pk in have:
            continue
        row, made = MessageTranslation.objects.get_or_create(
            message=message, language=target, defaults={"status": MessageTranslation.Status.PENDING}
        )
        if made:
            created.append(row)
    return created


def translation_retry(*, translation_id: int) -> MessageTranslation | None:
    """A failed translation, pending again (the agent asked to try again)."""
    updated = MessageTranslation.objects.filter(
        pk=translation_id, status=MessageTranslation.Status.FAILED
    ).update(status=MessageTranslation.Status.PENDING, error="", updated_at=timezone.now())
    if not updated:
        return None
    return MessageTranslation.objects.select_related("message__conversation").get(pk=translation_id)


def translation_store(
    *, translation_id: int, text: str, failed: bool, error: str = "", backend: str = ""
) -> MessageTranslation | None:
    """Record a translation's outcome; None when it was no longer pending."""
    status = MessageTranslation.Status.FAILED if failed else MessageTranslation.Status.DONE
    updated = MessageTranslation.objects.filter(
        pk=translation_id, status=MessageTranslation.Status.PENDING
    ).update(
        text="" if failed else text,
        status=status,
        error=error[:200],
        backend=backend[:200],
        updated_at=timezone.now(),
    )
    if not updated:
        return None
    return MessageTranslation.objects.select_related("message__conversation").get(pk=translation_id)


# --- The visitor's side of the human part --------------------------------------------------
def visitor_handoff_request(*, conversation: Conversation) -> Change:
    """The widget's "talk to a person" control."""
    if not handoff.handoff_enabled():
        raise errors.HandoffUnavailable()
    return handoff_start(
        conversation=conversation, reason=Conversation.HandoffReason.VISITOR_REQUEST
    )


def visitor_email_leave(*, conversation: Conversation, email: str) -> Change:
    """The visitor's address for an answer by e-mail: the conversation becomes a ticket."""
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise errors.InvalidEmail() from exc
    with transaction.atomic():
        locked = _locked(conversation.pk)
        locked.visitor_email = email
        locked.is_ticket = True
        locked.save(update_fields=["visitor_email", "is_ticket", "updated_at"])
        with _in_language(locked):
            text = _("Thank you. We will answer you at %(email)s.") % {"email": email}
        return Change(conversation=locked, messages=[_system(locked, text)], state_changed=True)


def csat_offer_after_helpful(*, conversation: Conversation) -> Change | None:
    """A bot conversation that ends well (the visitor marked a reply helpful) is rated too:
    asked once per conversation; None when it was asked already or a person has it."""
    updated = Conversation.objects.filter(
        pk=conversation.pk, mode=Conversation.Mode.BOT, csat_requested=False
    ).update(csat_requested=True, updated_at=timezone.now())
    if not updated:
        return None
    fresh = Conversation.objects.get(pk=conversation.pk)
    return Change(conversation=fresh, state_changed=True)


def csat_save(*, conversation: Conversation, rating: int, comment: str = "") -> Csat:
    if not 1 <= rating <= 5:
        raise errors.InvalidFrame()
    comment = comment.strip()
    if comment:
        comment = message_text_clean(text=comment)
    fresh = Conversation.objects.filter(pk=conversation.pk).only("assignee_id").first()
    if fresh is None:
        raise errors.ConversationNotFound()
    csat, _created = Csat.objects.update_or_create(
        conversation_id=conversation.pk,
        defaults={"rating": rating, "comment": comment, "agent_id": fresh.assignee_id},
    )
    webhook_events.csat_created(csat=csat)
    return csat


TRANSCRIPT_EVERY_SECONDS = 300


def transcript_request(*, conversation: Conversation, email: str = "") -> str:
    """E-mail the transcript to EMAIL (or the address the visitor left); once per 5 minutes
    per conversation (the address is the visitor's word: no mail bomb through us)."""
    from django.core.cache import cache

    from inbox.tasks import transcript_email

    address = (email or conversation.visitor_email or "").strip()
    try:
        validate_email(address)
    except ValidationError as exc:
        raise errors.InvalidEmail() from exc
    if not cache.add(f"inbox:transcript:{conversation.pk}", 1, timeout=TRANSCRIPT_EVERY_SECONDS):
        raise errors.TranscriptLimited()
    with transaction.atomic():
        enqueue(transcript_email, conversation_id=str(conversation.pk), address=address)
    return address

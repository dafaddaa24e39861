"""Writes for the chat: visitors, conversations, messages, reply life-cycle and feedback."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from autoglm_site.windows import window_hit
from chat import errors, selectors
from chat.llm.base import Usage
from chat.models import Conversation, Feedback, Message, TurnKnowledge, Visitor
from chat.prompts import KnowledgeSnippet
from webhooks import events as webhook_events

logger = logging.getLogger(__name__)

_TOKEN_SALT = "autoglm.visitor"  # noqa: S105 - a signing salt, not a secret
_ACTIVE = (Message.Status.PENDING, Message.Status.STREAMING)


# --- Visitors -------------------------------------------------------------------------------
def visitor_token(*, visitor: Visitor) -> str:
    """A signed token naming VISITOR; it carries its time of issue (see visitor_from_token)."""
    return signing.dumps(str(visitor.uuid), salt=_TOKEN_SALT, compress=False)


def visitor_from_token(*, token: str | None) -> Visitor:
    """The visitor a token names, or a new visitor when there is no token. Bad token: error.

    A token is good for CHAT_VISITOR_TOKEN_MAX_AGE_DAYS after it was issued; every welcome
    brings a fresh one, so a visitor who comes back within that time never notices.
    """
    if not token:
        return Visitor.objects.create()
    max_age = timedelta(days=settings.CHAT_VISITOR_TOKEN_MAX_AGE_DAYS)
    try:
        visitor_uuid = uuid.UUID(signing.loads(token, salt=_TOKEN_SALT, max_age=max_age))
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise errors.InvalidToken() from exc
    visitor, _created = Visitor.objects.get_or_create(uuid=visitor_uuid)
    return visitor


@dataclass(frozen=True)
class VerifiedIdentity:
    external_id: str
    name: str = ""
    email: str = ""


_IDENTITY_MAX_CHARS = 4096
_EXTERNAL_ID_MAX_CHARS = 255


def _external_id_valid(external_id: object) -> bool:
    if not isinstance(external_id, str) or not 0 < len(external_id) <= _EXTERNAL_ID_MAX_CHARS:
        return False
    return all(_code_point_allowed(char) and char not in "\n\t" for char in external_id)


def _identity_from_jwt(token: str) -> VerifiedIdentity:
    secret: str = settings.CHAT_IDENTITY_SECRET
    if not secret or len(token) > _IDENTITY_MAX_CHARS or not token.isascii():
        raise errors.InvalidIdentity()
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=settings.CHAT_IDENTITY_AUDIENCE,
            leeway=settings.CHAT_IDENTITY_LEEWAY_SECONDS,
            options={"require": ["sub", "exp", "iat", "aud"]},
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise errors.InvalidIdentity() from exc
    issued, expires = claims["iat"], claims["exp"]
    if not all(isinstance(value, int | float) for value in (issued, expires)):
        raise errors.InvalidIdentity()
    if expires - issued > settings.CHAT_IDENTITY_MAX_LIFETIME_SECONDS:
        raise errors.InvalidIdentity()  # not short-lived: a leaked one would be good for long
    if not _external_id_valid(claims["sub"]):
        raise errors.InvalidIdentity()
    name, email = claims.get("name", ""), claims.get("email", "")
    return VerifiedIdentity(
        external_id=claims["sub"],
        name=name[:200] if isinstance(name, str) else "",
        email=email[:254] if isinstance(email, str) else "",
    )


def _identity_from_hmac(external_id: str, signature: str) -> VerifiedIdentity:
    secret: str = settings.CHAT_IDENTITY_SECRET
    if not (secret and settings.CHAT_IDENTITY_LEGACY_HMAC and _external_id_valid(external_id)):
        raise errors.InvalidIdentity()
    presented = signature.strip().lower()
    if not presented.isascii() or len(presented) != 64:
        raise errors.InvalidIdentity()
    expected = hmac.new(secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise errors.InvalidIdentity()
    return VerifiedIdentity(external_id=external_id)


def identity_verify(
    *, token: str = "", external_id: str = "", signature: str = ""
) -> VerifiedIdentity:
    """The identity the host site vouches for: a JWT TOKEN (HS256 with CHAT_IDENTITY_SECRET,
    audience CHAT_IDENTITY_AUDIENCE, unexpired), or, only with CHAT_IDENTITY_LEGACY_HMAC, the
    old EXTERNAL_ID + hex HMAC SIGNATURE. Anything else raises InvalidIdentity, never more."""
    if token:
        return _identity_from_jwt(token)
    return _identity_from_hmac(external_id, signature)


def visitor_identify(
    *, visitor: Visitor, token: str = "", external_id: str = "", signature: str = ""
) -> Visitor:
    """The visitor for an identity signed by the host site (identity_verify).

    A signed-in user keeps one visitor (and so their conversations) across devices; an
    anonymous visitor who signs in becomes that user. Without CHAT_IDENTITY_SECRET, or with a
    bad, expired or foreign identity, it is refused and the visitor stays as they were.
    """
    identity = identity_verify(token=token, external_id=external_id, signature=signature)
    external_id = identity.external_id
    if visitor.external_id == external_id:
        return visitor
    owner = Visitor.objects.filter(external_id=external_id).order_by("id").first()
    if owner is not None:
        return owner
    if visitor.external_id:  # someone else signed in on this browser
        return Visitor.objects.create(external_id=external_id)
    visitor.external_id = external_id
    visitor.save(update_fields=["external_id", "last_seen_at"])
    return visitor


# --- Text validation ------------------------------------------------------------------------
def _code_point_allowed(char: str) -> bool:
    point = ord(char)
    if char in "\n\t":
        return True
    if 0xD800 <= point <= 0xDFFF:  # lone surrogates (JSON "\ud800")
        return False
    if 0xFDD0 <= point <= 0xFDEF or (point & 0xFFFE) == 0xFFFE:  # noncharacters
        return False
    category = unicodedata.category(char)
    return category not in {"Cc", "Cs", "Co", "Cn"}


def message_text_clean(*, text: str) -> str:
    """The text as stored: line endings normalised, ends trimmed; invalid text raises."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise errors.MessageEmpty()
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise errors.MessageTooLong(limit=limit)
    if not all(_code_point_allowed(char) for char in text):
        raise errors.InvalidText()
    return text


# --- Sending --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendResult:
    conversation: Conversation
    message: Message
    reply: Message | None
    created: bool
    # Set when the message changed who answers (a handoff, a reopened conversation): what
    # inbox.live broadcasts (inbox.services.Change).
    change: Any = None
    # Moderation blocked the message (moderation.services.input_moderate): stored, no reply.
    blocked: bool = False


def _rate_limit_hit(*, visitor: Visitor) -> None:
    window = settings.CHAT_RATE_LIMIT_WINDOW_SECONDS
    if window_hit(f"chat:rate:{visitor.pk}", window=window) > settings.CHAT_RATE_LIMIT_MESSAGES:
        raise errors.RateLimited()


def message_send(
    *,
    visitor: Visitor,
    conversation: Conversation | None,
    language: str,
    client_id: str,
    text: str,
) -> SendResult:
    """Store a visitor's message and the pending reply to it, in one transaction.

    Idempotent on client_id: a retry returns the stored message and stores nothing.
    Without a conversation, the first message opens one (a retry finds the same one).
    """
    clean = message_text_clean(text=text)
    try:
        with transaction.atomic():
            if conversation is None:
                conversation, opened = Conversation.objects.get_or_create(
                    visitor=visitor, opening_client_id=client_id, defaults={"language": language}
                )
                if opened:
                    webhook_events.conversation_created(conversation=conversation)
            existing = _message_by_client_id(conversation=conversation, client_id=client_id)
            if existing is not None:
                return existing
            _rate_limit_hit(visitor=visitor)
            # Who answers now (an agent may have taken the conversation since this socket
            # read it): read under the lock that handoff and claim take, which the update
            # takes (and the update returns the row as the lock's previous holder left it).
            with connection.cursor() as cursor:
                cursor.execute(_CONVERSATION_TOUCH_SQL, [timezone.now(), conversation.pk])
                state = cursor.fetchone()
            assert state is not None
            conversation.mode, conversation.status = state
            message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.USER,
                text=clean,
                status=Message.Status.COMPLETE,
                client_id=client_id,
            )
            blocked = _moderation_blocks(conversation=conversation, message=message)
            webhook_events.message_created(message=message)
            change = None
            if not blocked:
                change = _human_side_after(conversation=conversation, message=message)
            reply = None
            if conversation.mode == Conversation.Mode.BOT and not blocked:  # else a person answers
                reply = Message.objects.create(
                    conversation=conversation,
                    role=Message.Role.ASSISTANT,
                    status=Message.Status.PENDING,
                    reply_to=message,
                    heartbeat_at=timezone.now(),
                )
    except IntegrityError:
        # The same client_id (or opening message) raced in from another socket: that one won.
        if conversation is None:
            conversation = Conversation.objects.get(visitor=visitor, opening_client_id=client_id)
        existing = _message_by_client_id(conversation=conversation, client_id=client_id)
        if existing is None:
            raise
        return existing
    return SendResult(
        conversation=conversation,
        message=message,
        reply=reply,
        created=True,
        change=change,
        blocked=blocked,
    )


_CONVERSATION_TOUCH_SQL = (
    f"UPDATE {Conversation._meta.db_table} SET updated_at = %s"  # noqa: S608
    " WHERE id = %s RETURNING mode, status"
)


def _moderation_blocks(*, conversation: Conversation, message: Message) -> bool:
    """Whether moderation blocks a visitor's message to the assistant (the hit is logged); a
    message to a person is theirs to read whole."""
    if conversation.mode != Conversation.Mode.BOT:
        return False
    from moderation.services import input_moderate

    return input_moderate(conversation=conversation, message=message)


def _human_side_after(*, conversation: Conversation, message: Message) -> Any:
    """What a visitor's new message does to the human side (inbox.services.Change or None):
    a message to a resolved conversation reopens it (the assistant answers again unless an
    agent still owns it); a message that asks for a person, says a rule's keyword or follows
    a thumbs-down hands the conversation off (the message itself then gets no bot reply)."""
    from inbox import services as inbox_services

    change = None
    if conversation.status == Conversation.Status.CLOSED:
        change = inbox_services.conversation_reopen(conversation_id=conversation.pk)
        conversation.status = Conversation.Status.OPEN
    if conversation.mode != Conversation.Mode.BOT:
        return change
    trigger = inbox_services.handoff_for_message(conversation=conversation, message=message)
    if trigger is None:
        return change
    reason, detail = trigger
    handed = inbox_services.handoff_start(conversation=conversation, reason=reason, detail=detail)
    conversation.mode = handed.conversation.mode
    return handed


def _message_by_client_id(*, conversation: Conversation, client_id: str) -> SendResult | None:
    message = Message.objects.filter(
        conversation=conversation, client_id=client_id, role=Message.Role.USER
    ).first()
    if message is None:
        return None
    reply = message.replies.order_by("-id").first()
    blocked = False
    if reply is None:  # a retry of a blocked message is told so again
        from moderation.selectors import message_blocked

        blocked = message_blocked(message_id=message.pk)
    return SendResult(
        conversation=conversation, message=message, reply=reply, created=False, blocked=blocked
    )


# --- Reply life-cycle -----------------------------------------------------------------------
def _lease_cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=settings.CHAT_REPLY_LEASE_SECONDS)


def reply_claim(*, conversation_id: uuid.UUID) -> Message | None:
    """Take the oldest pending reply of a conversation for generation in this process.

    None when nothing is pending, or another process is streaming a reply there right now.
    The conversation row is locked first, so two processes never both start a reply there;
    the rest is one statement (it sees what the lock's previous holder committed).
    """
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            return None
        now, key = timezone.now(), str(conversation_id)
        # The claimed row comes back whole from the update (no query more to read it).
        claimed = list(
            Message.objects.raw(_CLAIM_SQL, [now, key, now, now, key, key, _lease_cutoff(), key])
        )
        if not claimed:
            return None
        reply = claimed[0]
        reply.more_pending = bool(reply.more_pending)
        reply.conversation = conversation  # read under the lock, as the reply's prompt wants it
        return reply


_T = Message._meta.db_table
_PENDING, _STREAMING = Message.Status.PENDING.value, Message.Status.STREAMING.value
_CANCELLED, _ASSISTANT = Message.Status.CANCELLED.value, Message.Role.ASSISTANT.value

# Cancel the pending replies whose cancel came before they started, then, unless a reply of
# the conversation is streaming with a live heartbeat, mark the oldest pending one streaming;
# return it whole and whether more replies are pending after it. (Only constants are formatted in.)
_CLAIM_SQL = f"""
WITH cancelled AS (
    UPDATE {_T} SET status = '{_CANCELLED}', updated_at = %s
    WHERE conversation_id = %s AND status = '{_PENDING}' AND cancel_requested
    RETURNING id
)
UPDATE {_T} SET status = '{_STREAMING}', heartbeat_at = %s, updated_at = %s
WHERE id = (
    SELECT id FROM {_T}
    WHERE conversation_id = %s AND role = '{_ASSISTANT}' AND status = '{_PENDING}'
      AND NOT cancel_requested
    ORDER BY id LIMIT 1
)
AND NOT EXISTS (
    SELECT 1 FROM {_T}
    WHERE conversation_id = %s AND status = '{_STREAMING}' AND heartbeat_at >= %s
)
RETURNING {_T}.*, EXISTS (
    SELECT 1 FROM {_T} AS later
    WHERE later.conversation_id = %s AND later.status = '{_PENDING}' AND later.id > {_T}.id
) AS more_pending
"""  # noqa: S608

_CHECKPOINT_SQL = (
    f"UPDATE {_T} SET text = %s, heartbeat_at = %s, updated_at = %s "  # noqa: S608
    f"WHERE id = %s AND status = '{_STREAMING}' RETURNING cancel_requested"
)


def reply_checkpoint(*, reply_id: int, text: str) -> bool:
    """Save the partial text and refresh the lease; True when the reply should stop (a cancel
    was requested, or it is no longer this generator's: cancelled or recovered elsewhere)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _CHECKPOINT_SQL,
            [text, now, now, reply_id],
        )
        row = cursor.fetchone()
    return row is None or bool(row[0])


def reply_finish(
    *,
    reply_id: int,
    text: str,
    status: Message.Status,
    usage: Usage | None = None,
    ttft_ms: float | None = None,
    backend_ttft_ms: float | None = None,
    duration_ms: float | None = None,
    backend: str = "",
    replica: str = "",
    finish_reason: str = "",
    error_code: str = "",
) -> Message | None:
    """Finalise a streaming reply; None when it is no longer this generator's to finish

    (recovery marked it interrupted after its heartbeat went stale, and queued another).
    """
    usage = usage or Usage()
    updated = Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(
        text=text,
        status=status,
        prompt_tokens=usage.prompt_tokens or None,
        completion_tokens=usage.completion_tokens or None,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        ttft_ms=ttft_ms,
        backend_ttft_ms=backend_ttft_ms,
        duration_ms=duration_ms,
        backend=backend[:200],
        replica=replica[:200],
        finish_reason=finish_reason[:16],
        error_code=error_code[:64],
        heartbeat_at=None,
        updated_at=timezone.now(),
    )
    if not updated:
        return None
    reply = Message.objects.select_related("reply_to__prompt_knowledge").get(pk=reply_id)
    if status == Message.Status.COMPLETE:
        webhook_events.message_created(message=reply)  # the assistant's reply, once whole
    return reply


@dataclass(frozen=True)
class CancelResult:
    stopping: list[int]  # streaming now: their generator stops and reports them done
    cancelled: list[int]  # had not started: cancelled here, nobody else will report them


def reply_cancel(*, conversation: Conversation, message_id: int | None = None) -> CancelResult:
    """Ask the active replies of a conversation (or just one) to stop."""
    active = Message.objects.filter(
        conversation=conversation, role=Message.Role.ASSISTANT, status__in=_ACTIVE
    )
    if message_id is not None:
        named = Message.objects.filter(conversation=conversation, pk=message_id).first()
        if named is None:
            raise errors.MessageNotFound()
        # A reply regenerated after an interruption answers the same question: stop it too.
        same_question = Q(reply_to_id=named.reply_to_id) if named.reply_to_id else Q(pk=named.pk)
        active = active.filter(Q(pk=message_id) | same_question)
    with transaction.atomic():
        rows = list(active.select_for_update().values_list("pk", "status"))
        ids = [pk for pk, _status in rows]
        Message.objects.filter(pk__in=ids).update(cancel_requested=True)
        cancelled = [pk for pk, status in rows if status == Message.Status.PENDING]
        Message.objects.filter(pk__in=cancelled).update(
            status=Message.Status.CANCELLED, heartbeat_at=None, updated_at=timezone.now()
        )
    stopping = [pk for pk, status in rows if status == Message.Status.STREAMING]
    return CancelResult(stopping=stopping, cancelled=cancelled)


@dataclass(frozen=True)
class RecoverResult:
    interrupted: list[int]
    queued: list[Message]


def conversation_recover(*, conversation: Conversation) -> RecoverResult:
    """Mark replies whose process died as interrupted and queue a fresh reply for each.

    A streaming reply with a fresh heartbeat is left alone.
    """
    cutoff = _lease_cutoff()
    interrupted: list[int] = []
    queued: list[Message] = []
    with transaction.atomic():
        Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
        stale = list(
            conversation.messages.filter(
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                heartbeat_at__lt=cutoff,
            ).select_related("reply_to")
        )
        now = timezone.now()
        for reply in stale:
            Message.objects.filter(pk=reply.pk).update(
                status=Message.Status.INTERRUPTED, heartbeat_at=None, updated_at=now
            )
            interrupted.append(reply.pk)
            if reply.cancel_requested:
                continue
            queued.append(
                Message.objects.create(
                    conversation=conversation,
                    role=Message.Role.ASSISTANT,
                    status=Message.Status.PENDING,
                    reply_to=reply.reply_to,
                    heartbeat_at=now,
                )
            )
    return RecoverResult(interrupted=interrupted, queued=queued)


# --- Feedback -------------------------------------------------------------------------------
def feedback_save(
    *, conversation: Conversation, message_id: int, rating: str, comment: str = ""
) -> Feedback:
    message = Message.objects.filter(
        conversation=conversation, pk=message_id, role=Message.Role.ASSISTANT
    ).first()
    if message is None:
        raise errors.MessageNotFound()
    comment = comment.strip()
    if comment:
        comment = message_text_clean(text=comment)
    feedback, _created = Feedback.objects.update_or_create(
        message=message, defaults={"rating": rating, "comment": comment}
    )
    webhook_events.feedback_created(feedback=feedback)
    return feedback


def turn_knowledge(*, question: Message | None, language: str) -> list[KnowledgeSnippet]:
    """The knowledge for a visitor's message, searched in LANGUAGE (the reply's): retrieved
    once, then stored with the message, so a regenerated reply and every later prompt see
    exactly the same text."""
    if question is None:
        return []
    stored = selectors.stored_knowledge(question)
    if stored is not None:
        return [KnowledgeSnippet.from_dict(item) for item in stored.snippets]
    snippets = _knowledge_search(query=question.text, language=language)
    # A regenerated reply racing this one may have stored it first: theirs stays, and the
    # next prompt reads whichever is stored (both came from the same search). One statement
    # (the bulk insert's transaction cost two round trips more on every reply).
    with connection.cursor() as cursor:
        cursor.execute(
            _TURN_KNOWLEDGE_SQL, [question.pk, json.dumps([s.as_dict() for s in snippets])]
        )
    return snippets


_TURN_KNOWLEDGE_SQL = (
    f"INSERT INTO {TurnKnowledge._meta.db_table} (message_id, snippets, created_at)"  # noqa: S608
    " VALUES (%s, %s::jsonb, now()) ON CONFLICT (message_id) DO NOTHING"
)


def query_knowledge(*, query: str, language: str) -> list[KnowledgeSnippet]:
    """The relevant knowledge for QUERY in LANGUAGE, searched now and stored nowhere: for a
    question that is not a stored message (the OpenAI-compatible API's stateless mode)."""
    return _knowledge_search(query=query, language=language)


def _knowledge_search(*, query: str, language: str) -> list[KnowledgeSnippet]:
    limit = int(settings.LLM_PROMPT_KNOWLEDGE_LIMIT)
    if limit < 1 or not query.strip():
        return []
    try:
        from knowledge.search import chunk_search  # built in parallel; optional
    except ImportError:
        return []
    try:
        hits = chunk_search(query=query, language=language, limit=limit)
    except Exception:  # a reply without knowledge beats no reply
        logger.exception("knowledge search failed; answering without knowledge")
        return []
    # Search always ranks something first; only the hits it measured as relevant reach the
    # model and the citations (knowledge.search.SearchHit.relevant).
    relevant = [hit for hit in hits[:limit] if getattr(hit, "relevant", True)]
    categories = _categories_for_rules(
        ids=[str(getattr(hit, "article_id", "")) for hit in relevant]
    )
    return [
        KnowledgeSnippet(
            title=str(hit.title),
            url=str(hit.url),
            text=str(hit.snippet),
            language=str(getattr(hit, "language", "")),
            category=categories.get(str(getattr(hit, "article_id", "")), ""),
        )
        for hit in relevant
    ]


def _categories_for_rules(*, ids: list[str]) -> dict[str, str]:
    """Article id (as search reports it) -> category slug, only while some handoff rule names
    a category (no query otherwise)."""
    from inbox.handoff import category_rules_exist

    if not ids or not category_rules_exist():
        return {}
    from knowledge.models import Article

    numeric = [int(i) for i in ids if i.isdigit()]
    rows = Article.objects.filter(Q(external_id__in=ids) | Q(pk__in=numeric)).exclude(category=None)
    found: dict[str, str] = {}
    for pk, external_id, slug in rows.values_list("pk", "external_id", "category__slug"):
        found[external_id or str(pk)] = slug
        found.setdefault(str(pk), slug)
    return found

"""/api/v1/conversations and /api/v1/visitors: read conversations and their messages, post
as an agent (live to the visitor, like the inbox), close and reopen, feedback and CSAT, and a
visitor's GDPR export and erasure. Edges only: parse, check the scope, call, answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status
from pydantic import AfterValidator, field_validator

from api import errors
from api.auth import Access
from api.conditional import conditional_json
from api.models import ApiKey
from api.pagination import paginate
from chat import api_selectors
from chat import errors as chat_errors
from chat import services as chat_services
from chat.asyncdb import in_thread
from inbox import live
from inbox import services as inbox_services
from inbox.models import AgentProfile
from privacy import services as privacy_services

router = Router(tags=["conversations"])

READ = Access("conversations:read")
WRITE = Access("conversations:write")
IDEMPOTENCY_KEY_MAX = 60  # stored as "api:<key>" in the 64 characters of a client id
BIGINT_MAX = 2**63 - 1


# --- Schemas --------------------------------------------------------------------------------
def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold it: refused here, not a 500 there
        raise ValueError("NUL character")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class Person(Schema):
    id: int
    username: str
    name: str


class TeamRef(Schema):
    id: int
    name: str


class VisitorRef(Schema):
    uuid: uuid.UUID
    external_id: str


class ConversationOut(Schema):
    id: uuid.UUID
    visitor: VisitorRef
    language: str
    status: str
    mode: str
    handoff_reason: str
    handoff_detail: str
    handoff_at: datetime | None
    assignee: Person | None
    team: TeamRef | None
    is_ticket: bool
    visitor_email: str
    translation_enabled: bool
    csat_requested: bool
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    reopened_at: datetime | None


class Citation(Schema):
    title: str
    url: str


class TranslationOut(Schema):
    language: str
    status: str
    text: str


class FeedbackOut(Schema):
    rating: str
    comment: str


class MessageOut(Schema):
    id: int
    conversation_id: uuid.UUID
    role: str
    text: str
    language: str
    status: str
    author: Person | None
    client_id: str | None
    reply_to: int | None
    created_at: datetime
    citations: list[Citation]
    translations: list[TranslationOut]
    feedback: FeedbackOut | None


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]
    messages_complete: bool = Field(
        description="False when the conversation has more messages than shown: see /messages."
    )


class ExportMessage(MessageOut):
    knowledge: list[dict[str, Any]] | None = Field(
        None, description="The knowledge snippets a visitor's message was answered with."
    )


class CsatExport(Schema):
    rating: int
    comment: str
    agent: Person | None
    created_at: datetime


class ConversationExport(Schema):
    conversation: ConversationOut
    messages: list[ExportMessage]
    csat: CsatExport | None


class ConversationPage(Schema):
    items: list[ConversationOut]
    next_cursor: str | None


class MessagePage(Schema):
    items: list[MessageOut]
    next_cursor: str | None


HandoffReason = Literal["visitor_request", "no_knowledge", "thumbs_down", "rule", "agent"]


class ConversationQuery(Schema):
    status: Literal["open", "closed"] | None = None
    mode: Literal["bot", "waiting", "agent"] | None = None
    language: Text | None = Field(None, max_length=16)
    created_after: datetime | None = Field(None, description="Created at or after (ISO 8601).")
    created_before: datetime | None = Field(None, description="Created before (ISO 8601).")
    visitor: Text | None = Field(
        None, max_length=255, description="The visitor's anonymous id (uuid) or external id."
    )
    assignee: Text | None = Field(
        None, max_length=150, description='The agent\'s user id or username; "none": unassigned.'
    )
    team: int | None = Field(None, ge=1, le=2**31 - 1, description="The team's id.")
    handoff_reason: HandoffReason | None = None
    q: Text | None = Field(None, max_length=200, description="Words in a message's text.")
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=200)

    @field_validator("created_after", "created_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A time without an offset is UTC; any other offset is turned into UTC (PostgreSQL
        # refuses offsets beyond 16 hours, which ISO 8601 allows).
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("out of range") from exc


class PageQuery(Schema):
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=200)


class MessageIn(Schema):
    text: str = Field(max_length=100_000)
    kind: Literal["agent", "note", "system"] = Field(
        "agent",
        description="agent: to the visitor; note: private, agents only; system: an event line "
        "the visitor sees, without an author.",
    )
    author: int | Text | None = Field(
        None,
        description="The agent: a staff or agent user's id or username; default: the API key's "
        "creator (or the signed-in user).",
    )
    client_id: Text | None = Field(
        None,
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Idempotency key, if not sent as the Idempotency-Key header.",
    )


class FeedbackIn(Schema):
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=4000)


class FeedbackSaved(Schema):
    message_id: int
    rating: str
    comment: str


class CsatIn(Schema):
    rating: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=4000)


class CsatSaved(Schema):
    conversation_id: uuid.UUID
    rating: int
    comment: str


class VisitorOut(Schema):
    uuid: uuid.UUID
    external_id: str
    created_at: datetime
    last_seen_at: datetime
    conversations: int


class VisitorPage(Schema):
    items: list[VisitorOut]
    next_cursor: str | None = None


class VisitorQuery(Schema):
    external_id: Text | None = Field(None, min_length=1, max_length=255)
    uuid: str | None = Field(None, max_length=64, description="The anonymous id.")


class Erased(Schema):
    erased: dict[str, int]


READ_ERRORS: dict[int, Any] = {401: errors.ErrorBody, 403: errors.ErrorBody}
NOT_FOUND = {404: errors.ErrorBody, 422: errors.ErrorBody}


# --- Helpers (parsing and error mapping only) -------------------------------------------------
_FIELD_OF_CHAT_ERROR = {
    "message_empty": "text",
    "message_too_long": "text",
    "invalid_text": "text",
    "invalid_frame": "body",
    "agent_required": "author",
}


@contextmanager
def _chat_errors() -> Iterator[None]:
    """The chat's known errors as API errors, their messages in the caller's language."""
    try:
        yield
    except (chat_errors.ConversationNotFound, chat_errors.MessageNotFound) as exc:
        raise errors.NotFound() from exc
    except chat_errors.ClientIdInUse as exc:
        detail = {"field": "Idempotency-Key", "problem": exc.render(), "code": exc.code}
        raise errors.Conflict([detail]) from exc
    except chat_errors.ChatError as exc:
        field = _FIELD_OF_CHAT_ERROR.get(exc.code)
        if field is None:
            raise
        detail = {"field": field, "problem": exc.render(), "code": exc.code}
        raise errors.InvalidRequest([detail]) from exc


def _client_id(request: HttpRequest, body: MessageIn) -> str:
    header = request.headers.get("Idempotency-Key", "").strip()
    if len(header) > IDEMPOTENCY_KEY_MAX or (header and not header.isprintable()):
        raise errors.InvalidRequest(
            [{"field": "Idempotency-Key", "problem": _("At most 60 printable characters.")}]
        )
    if header and body.client_id and header != body.client_id:
        raise errors.InvalidRequest(
            [{"field": "client_id", "problem": _("It differs from the Idempotency-Key header.")}]
        )
    key = header or body.client_id or uuid.uuid4().hex  # without a key: not idempotent
    return f"api:{key}"


def _author_reference(request: HttpRequest, body: MessageIn) -> tuple[int | None, str]:
    """(user id, username) of the agent who posts: the body's author, else the key's creator,
    else the signed-in user."""
    if isinstance(body.author, int):
        return body.author, ""
    if isinstance(body.author, str):
        return None, body.author[:150]
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        if auth.created_by_id is None:
            raise errors.InvalidRequest(
                [{"field": "author", "problem": _("This API key has no creator: give an author.")}]
            )
        return auth.created_by_id, ""
    return getattr(auth, "pk", None), ""


def _actor(request: HttpRequest) -> tuple[Any, str]:
    """Who reads or deletes personal data, for the privacy audit trail."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return auth.created_by, f"API key {auth.name} ({auth.prefix})"[:150]
    return auth, "api"


def _checked_id(value: int) -> int:
    if not 0 < value <= BIGINT_MAX:
        raise errors.NotFound()
    return value


def _visitor_or_404(visitor_uuid: uuid.UUID) -> Any:
    visitor = api_selectors.visitor_by_uuid(visitor_uuid=visitor_uuid)
    if visitor is None:
        raise errors.NotFound()
    return visitor


# --- Conversations: reads -------------------------------------------------------------------
@router.get(
    "/conversations",
    response={200: ConversationPage, **READ_ERRORS, 422: errors.ErrorBody},
    auth=READ,
    summary="List conversations",
)
def conversations_list(request: HttpRequest, filters: Query[ConversationQuery]) -> Any:
    """Newest first, filtered; `next_cursor` gives the next page (null on the last)."""
    rows, next_cursor = paginate(
        api_selectors.conversations_filtered(
            filters=api_selectors.ConversationFilter(
                status=filters.status or "",
                mode=filters.mode or "",
                language=filters.language or "",
                created_after=filters.created_after,
                created_before=filters.created_before,
                visitor=filters.visitor or "",
                assignee=filters.assignee or "",
                team_id=filters.team,
                handoff_reason=filters.handoff_reason or "",
                query=filters.q or "",
            )
        ),
        cursor=filters.cursor,
        limit=filters.limit,
        field="created_at",
    )
    return {
        "items": [api_selectors.conversation_payload(c) for c in rows],
        "next_cursor": next_cursor,
    }


@router.get(
    "/conversations/{uuid:conversation_id}",
    response={200: ConversationDetail, 304: None, **READ_ERRORS, **NOT_FOUND},
    auth=READ,
    summary="A conversation with its messages",
)
def conversation_detail(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """With its newest 500 messages and their citations; an ETag (send If-None-Match: 304)."""
    with _chat_errors():
        payload = api_selectors.conversation_detail(conversation_id=conversation_id)
    body = ConversationDetail.model_validate(payload).model_dump(mode="json")
    return conditional_json(request, body)


@router.get(
    "/conversations/{uuid:conversation_id}/export",
    response={200: ConversationExport, **READ_ERRORS, **NOT_FOUND},
    auth=READ,
    summary="Export a conversation (JSON)",
)
def conversation_export(request: HttpRequest, conversation_id: uuid.UUID) -> Any:
    """Everything stored: messages (notes and events too) with translations, feedback,
    citations and the knowledge used, and the CSAT rating. Recorded in the audit trail."""
    with _chat_errors():
        conversation = api_selectors.conversation_by_id(conversation_id=conversation_id)
    actor, label = _actor(request)
    privacy_services.conversation_view_record(
        conversation=conversation, actor=actor, via="api", actor_label=label
    )
    return api_selectors.conversation_export(conversation=conversation)


@router.get(
    "/conversations/{uuid:conversation_id}/messages",
    response={200: MessagePage, **READ_ERRORS, **NOT_FOUND},
    auth=READ,
    summary="A conversation's messages",
)
def messages_list(request: HttpRequest, conversation_id: uuid.UUID, page: Query[PageQuery]) -> Any:
    """Oldest first; private notes and event lines included (see `role`)."""
    with _chat_errors():
        rows = api_selectors.messages_of(conversation_id=conversation_id)
    messages, next_cursor = paginate(
        rows, cursor=page.cursor, limit=page.limit, field="id", descending=False
    )
    return {
        "items": [api_selectors.message_payload(m) for m in messages],
        "next_cursor": next_cursor,
    }


# --- Conversations: writes (async, like the inbox socket: the visitor sees them live) ---------
# 400: a body that is not JSON at all; 422: JSON that is not a valid body.
WRITE_ERRORS: dict[int, Any] = {**READ_ERRORS, **NOT_FOUND, 400: errors.ErrorBody}


@router.post(
    "/conversations/{uuid:conversation_id}/messages",
    response={200: MessageOut, 201: MessageOut, 409: errors.ErrorBody, **WRITE_ERRORS},
    auth=WRITE,
    summary="Post a message as an agent, a private note or an event line",
)
async def message_post(request: HttpRequest, conversation_id: uuid.UUID, body: MessageIn) -> Any:
    """Stored before the answer, and sent to the visitor live like an agent's reply in the
    inbox (translated into the conversation's language). Send an `Idempotency-Key` header (or
    `client_id`): a retry answers 200 with the same message, never a second one."""
    client_id = _client_id(request, body)
    agent: AgentProfile | None = None
    with _chat_errors():
        if body.kind == "system":
            if body.author is not None:
                raise errors.InvalidRequest(
                    [{"field": "author", "problem": _("An event line has no author.")}]
                )
        else:
            user_id, username = _author_reference(request, body)
            agent = await in_thread(api_selectors.acting_agent)(user_id=user_id, username=username)
        change = await in_thread(inbox_services.operator_message_send)(
            conversation_id=conversation_id,
            client_id=client_id,
            text=body.text,
            kind=body.kind,
            agent=agent,
        )
        if change.created:
            await live.change_broadcast(change)
        assert change.message is not None
        payload = await in_thread(api_selectors.message_payload_by_id)(message_id=change.message.pk)
    return Status(201 if change.created else 200, payload)


@router.post(
    "/conversations/{uuid:conversation_id}/close",
    response={200: ConversationOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Resolve a conversation",
)
async def conversation_close(request: HttpRequest, conversation_id: uuid.UUID) -> Any:
    """Resolved, as in the inbox: the visitor is asked to rate it. Closing again changes
    nothing."""
    with _chat_errors():
        change = await in_thread(inbox_services.conversation_resolve)(
            conversation_id=conversation_id
        )
        await live.change_broadcast(change)
        return await in_thread(api_selectors.conversation_payload_by_id)(
            conversation_id=conversation_id
        )


@router.post(
    "/conversations/{uuid:conversation_id}/reopen",
    response={200: ConversationOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Reopen a resolved conversation",
)
async def conversation_reopen(request: HttpRequest, conversation_id: uuid.UUID) -> Any:
    with _chat_errors():
        change = await in_thread(inbox_services.conversation_reopen)(
            conversation_id=conversation_id
        )
        await live.change_broadcast(change)
        return await in_thread(api_selectors.conversation_payload_by_id)(
            conversation_id=conversation_id
        )


@router.post(
    "/conversations/{uuid:conversation_id}/messages/{int:message_id}/feedback",
    response={200: FeedbackSaved, **WRITE_ERRORS},
    auth=WRITE,
    summary="The visitor's feedback on an assistant's reply",
)
async def feedback_post(
    request: HttpRequest, conversation_id: uuid.UUID, message_id: int, body: FeedbackIn
) -> Any:
    """As the widget's thumbs: "up" on a bot conversation asks the visitor for a rating."""
    message_id = _checked_id(message_id)
    with _chat_errors():
        conversation = await in_thread(api_selectors.conversation_by_id)(
            conversation_id=conversation_id
        )
        feedback = await in_thread(chat_services.feedback_save)(
            conversation=conversation,
            message_id=message_id,
            rating=body.rating,
            comment=body.comment,
        )
        if body.rating == "up":
            change = await in_thread(inbox_services.csat_offer_after_helpful)(
                conversation=conversation
            )
            if change is not None:
                await live.state_broadcast(change.conversation, queue_event="")
    return {"message_id": message_id, "rating": feedback.rating, "comment": feedback.comment}


@router.post(
    "/conversations/{uuid:conversation_id}/csat",
    response={200: CsatSaved, **WRITE_ERRORS},
    auth=WRITE,
    summary="The visitor's satisfaction rating (1 to 5)",
)
async def csat_post(request: HttpRequest, conversation_id: uuid.UUID, body: CsatIn) -> Any:
    """Rates the conversation and its agent; rating again replaces the rating."""
    with _chat_errors():
        conversation = await in_thread(api_selectors.conversation_by_id)(
            conversation_id=conversation_id
        )
        csat = await in_thread(inbox_services.csat_save)(
            conversation=conversation, rating=body.rating, comment=body.comment
        )
        await live.state_broadcast(conversation)
    return {"conversation_id": conversation_id, "rating": csat.rating, "comment": csat.comment}


# --- Visitors -------------------------------------------------------------------------------
@router.get(
    "/visitors",
    response={200: VisitorPage, **READ_ERRORS, 422: errors.ErrorBody},
    auth=Access("visitors:read"),
    tags=["visitors"],
    summary="Look visitors up by external id (or anonymous id)",
)
def visitors_list(request: HttpRequest, lookup: Query[VisitorQuery]) -> Any:
    """Every visitor an identified user signed in as (one per browser or device)."""
    visitor_uuid = None
    if lookup.uuid:
        try:
            visitor_uuid = uuid.UUID(lookup.uuid)
        except ValueError as exc:
            raise errors.InvalidRequest(
                [{"field": "uuid", "problem": _("This is not a valid id.")}]
            ) from exc
    elif not lookup.external_id:
        raise errors.InvalidRequest(
            [{"field": "external_id", "problem": _("Give external_id or uuid.")}]
        )
    items = api_selectors.visitors_lookup(
        external_id=lookup.external_id or "", visitor_uuid=visitor_uuid
    )
    return {"items": items, "next_cursor": None}


@router.get(
    "/visitors/{uuid:visitor_uuid}/export",
    response={200: dict[str, Any], **READ_ERRORS, **NOT_FOUND},
    auth=Access("visitors:read"),
    tags=["visitors"],
    summary="Everything stored about a visitor (GDPR Art. 15)",
)
def visitor_export(request: HttpRequest, visitor_uuid: uuid.UUID) -> Any:
    """The same export as the admin's, recorded in the privacy audit trail (via "api")."""
    visitor = _visitor_or_404(visitor_uuid)
    actor, label = _actor(request)
    return privacy_services.visitor_export(
        visitor=visitor, actor=actor, via="api", actor_label=label
    )


@router.delete(
    "/visitors/{uuid:visitor_uuid}",
    response={200: Erased, **READ_ERRORS, **NOT_FOUND},
    auth=Access("visitors:write"),
    tags=["visitors"],
    summary="Erase a visitor and everything stored about them (GDPR Art. 17)",
)
def visitor_erase(request: HttpRequest, visitor_uuid: uuid.UUID) -> Any:
    """Conversations, messages, translations, feedback and ratings; audited (via "api").
    Erasing an erased visitor answers 404."""
    visitor = _visitor_or_404(visitor_uuid)
    actor, label = _actor(request)
    counts = privacy_services.visitor_erase(
        visitor=visitor, actor=actor, via="api", actor_label=label
    )
    return {"erased": counts}

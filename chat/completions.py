"""The grounded assistant for one HTTP call (the OpenAI-compatible API): a reply to a history the
client sends (stored nowhere), or to a message stored in a conversation, streamed as text.

Both use the chat's own prompt (chat.replies.prompt_request: knowledge, glossary, reply
language, the no-knowledge note, personal data masked), the same backend choice and the same
reply filters as the widget's replies. A stored conversation is prompted from its stored turns,
so its prompt keeps the stable prefix the engine's cache reuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chat import errors, replies, selectors, services
from chat.asyncdb import in_reply_thread
from chat.language import language_supported, reply_language
from chat.llm.base import CompletionRequest, LLMError, Sampling, Usage
from chat.models import Conversation, DecodingPreset, Message, Visitor
from chat.reply_text import ReplyFilter
from moderation import matching
from moderation.models import Action, Direction
from moderation.selectors import rules_for
from moderation.services import hits_record, safe_reply
from moderation.streaming import reply_moderation
from privacy.masking import PlaceholderRestorer

logger = logging.getLogger(__name__)

# The visitors of API conversations: a visitor id derived from (caller, conversation) proves
# which caller opened a conversation; nobody can choose a visitor's id from outside.
_API_VISITORS = uuid.UUID("6f1d0a52-2c1e-4d8e-9a57-0e6c1f0a9b31")
# An assistant turn of a history sent by a client may be longer than a visitor's message.
ASSISTANT_TURN_FACTOR = 4


class PersonAnswers(errors.ChatError):
    code = "conversation_with_agent"
    message = _("A person answers this conversation now, not the assistant.")


class ConversationBusy(errors.ChatError):
    code = "conversation_busy"
    message = _("The assistant is still answering in this conversation. Try again in a moment.")


@dataclass(frozen=True)
class Turn:
    """A turn of the history a client sends: "user" or "assistant", and its text."""

    role: str
    text: str


@dataclass(frozen=True)
class Caller:
    """Who asks: NAME is stable per API key (or staff user); ANY_CONVERSATION lets them
    continue conversations they did not open (the widget's, for example)."""

    name: str
    any_conversation: bool = False


@dataclass(frozen=True)
class Completion:
    """A reply ready to stream: the request for the backend and, in a stored conversation,
    the reply row it fills (claimed: streaming)."""

    request: CompletionRequest
    citations: list[dict[str, str]]
    conversation_id: uuid.UUID | None = None
    reply_id: int | None = None


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    """The end of a reply. FINISH_REASON is OpenAI's word: "stop" or "length"; ERROR_CODE is
    set when the backend failed (the reply then ends where it got to)."""

    text: str
    finish_reason: str
    usage: Usage | None
    citations: list[dict[str, str]] = field(default_factory=list)
    error_code: str = ""


def citations_of(knowledge: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """{title, url} of each article the reply was given, once each, in rank order (the same as
    chat.selectors.reply_citations gives for a stored reply)."""
    seen: set[tuple[str, str]] = set()
    citations: list[dict[str, str]] = []
    for snippet in knowledge:
        key = (str(snippet.get("title", "")), str(snippet.get("url", "")))
        if key[0] and key not in seen:
            seen.add(key)
            citations.append({"title": key[0], "url": key[1]})
    return citations


def _sampling(overrides: Mapping[str, Any]) -> Sampling:
    preset = selectors.preset_sampling(task=DecodingPreset.Task.SUPPORT_ANSWER)
    return dataclasses.replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def _clean_turns(turns: Sequence[Turn]) -> list[Turn]:
    limit = settings.CHAT_MAX_MESSAGE_CHARS * ASSISTANT_TURN_FACTOR
    cleaned = []
    for turn in turns:
        if turn.role == Message.Role.USER:
            cleaned.append(Turn(role=turn.role, text=services.message_text_clean(text=turn.text)))
            continue
        text = turn.text.strip()
        if len(text) > limit:
            raise errors.MessageTooLong(limit=limit)
        if text:
            cleaned.append(Turn(role=turn.role, text=text))
    return cleaned


def _conversation_language(*, requested: str, question: str) -> str:
    """The language asked for (Accept-Language, when sent), else the question's own."""
    return language_supported(requested) or reply_language(
        text=question, conversation_language=str(settings.LANGUAGE_CODE)
    )


def _api_visitor_uuid(*, caller: Caller, conversation_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_API_VISITORS, f"{caller.name}:{conversation_id}")


def completion_prepare(
    *,
    turns: Sequence[Turn],
    caller: Caller,
    conversation_ref: str | None = None,
    language: str = "",
    sampling: Mapping[str, Any] | None = None,
) -> tuple[Completion, bool]:
    """A reply to TURNS (the last one the user's), ready to stream, and whether a conversation
    was opened for it.

    Without CONVERSATION_REF nothing is stored: the reply answers the history as sent. With
    "new", a conversation is opened; with a conversation's id, that conversation (one CALLER
    opened, or any with CALLER.any_conversation) is continued. Then the last turn is stored as
    the visitor's message before anything is generated, the earlier turns are not used (the
    stored history is), and the reply row is claimed for this call.
    """
    overrides = dict(sampling or {})
    if not turns or turns[-1].role != Message.Role.USER:
        raise errors.InvalidFrame()
    if conversation_ref is None:
        return _stateless(turns=_clean_turns(turns), caller=caller, language=language, **overrides)
    question = services.message_text_clean(text=turns[-1].text)
    created = conversation_ref == "new"
    if created:
        conversation = _conversation_open(caller=caller, language=language, question=question)
    else:
        conversation = _conversation_for(caller=caller, conversation_ref=conversation_ref)
    sent = services.message_send(
        visitor=conversation.visitor,
        conversation=conversation,
        language=conversation.language,
        client_id=f"api-{uuid.uuid4().hex}",
        text=question,
    )
    if sent.change is not None:
        _broadcast_change(sent.change)
    if sent.blocked:
        raise errors.MessageBlocked()  # stored (nothing said is lost), not answered
    if sent.reply is None:
        raise PersonAnswers()
    reply = services.reply_claim(conversation_id=conversation.pk)
    if reply is None or reply.pk != sent.reply.pk:
        # Another reply of this conversation is streaming (or was pending first): ours would
        # wait for it, and this call cannot wait. The pending reply goes.
        services.reply_cancel(conversation=conversation, message_id=sent.reply.pk)
        raise ConversationBusy()
    request = replies.reply_prompt(reply, sampling=_sampling(overrides))
    completion = Completion(
        request=request,
        citations=citations_of(request.knowledge),
        conversation_id=conversation.pk,
        reply_id=reply.pk,
    )
    return completion, created


def _broadcast_change(change: Any) -> None:
    from asgiref.sync import async_to_sync

    from inbox import live as inbox_live

    try:
        async_to_sync(inbox_live.change_broadcast)(change)
    except Exception:  # the inbox learns of it on its next read
        logger.exception("could not tell the inbox about a conversation's change")


def _stateless(
    *, turns: list[Turn], caller: Caller, language: str, **overrides: Any
) -> tuple[Completion, bool]:
    question = turns[-1]
    conversation_language = _conversation_language(
        requested=language, question=next(t.text for t in turns if t.role == Message.Role.USER)
    )
    if _input_blocked(text=question.text, language=conversation_language):
        raise errors.MessageBlocked()  # as a stored message would be (nothing to log it with)
    answer_language = reply_language(
        text=question.text, conversation_language=conversation_language
    )
    # Unsaved rows numbered in order: prompt_build renders them like stored turns.
    history = [
        Message(pk=number, role=turn.role, text=turn.text, status=Message.Status.COMPLETE)
        for number, turn in enumerate(turns, start=1)
    ]
    knowledge = services.query_knowledge(query=question.text, language=answer_language)
    # The same history sticks to the same engine replica, where its prefix is cached.
    affinity = hashlib.sha256(f"{caller.name}\n{turns[0].text}".encode()).hexdigest()[:32]
    request = replies.prompt_request(
        language=conversation_language,
        history=history,
        knowledge=knowledge,
        past_knowledge=None,
        reply_language=answer_language,
        affinity_key=f"api:{affinity}",
        sampling=_sampling(overrides),
    )
    return Completion(request=request, citations=citations_of(request.knowledge)), False


def _input_blocked(*, text: str, language: str) -> bool:
    """Whether a blocking input rule of LANGUAGE matches TEXT, as moderation.services
    .input_moderate decides for a stored message."""
    rules = rules_for(language=language, direction=Direction.INPUT)
    return bool(rules) and any(m.rule.action == Action.BLOCK for m in matching.find(rules, text))


def _conversation_open(*, caller: Caller, language: str, question: str) -> Conversation:
    conversation_id = uuid.uuid4()
    with transaction.atomic():
        visitor = Visitor.objects.create(
            uuid=_api_visitor_uuid(caller=caller, conversation_id=conversation_id)
        )
        return Conversation.objects.create(
            id=conversation_id,
            visitor=visitor,
            language=_conversation_language(requested=language, question=question),
            opening_client_id=f"api-{conversation_id.hex}",
        )


def _conversation_for(*, caller: Caller, conversation_ref: str) -> Conversation:
    try:
        key = uuid.UUID(conversation_ref)
    except ValueError as exc:
        raise errors.ConversationNotFound() from exc
    conversation = Conversation.objects.select_related("visitor").filter(pk=key).first()
    if conversation is None:
        raise errors.ConversationNotFound()
    owned = conversation.visitor.uuid == _api_visitor_uuid(caller=caller, conversation_id=key)
    if not (owned or caller.any_conversation):
        raise errors.ConversationNotFound()
    return conversation


def _openai_finish_reason(reported: str | None) -> str:
    return reported if reported in ("length", "content_filter") else "stop"


async def completion_stream(completion: Completion) -> AsyncGenerator[Delta | Finished, None]:
    """The reply as it is generated: Delta pieces (shown text: reply filters applied, personal
    data restored), then one Finished. In a stored conversation the partial reply is saved
    every CHAT_CHECKPOINT_MS (which keeps its lease) and the reply is stored at the end; a
    client that goes away leaves it cancelled with what it got."""
    request = completion.request
    stored = completion.reply_id is not None
    # The visitor's words masked by the input rules; the reply moderated as it streams.
    request, moderated = await in_reply_thread(reply_moderation)(request)
    shown = ReplyFilter(request.reply_language or request.language)
    restored = PlaceholderRestorer(dict(request.pii_originals))
    backend = replies.reply_backend(request)
    replica = str(getattr(backend, "name", "") or type(backend).__name__)
    started = time.monotonic()
    checkpoint_every = settings.CHAT_CHECKPOINT_MS / 1000
    next_checkpoint = started + checkpoint_every
    text = ""
    usage: Usage | None = None
    reported: str | None = None
    backend_ttft_ms: float | None = None
    ttft_ms: float | None = None
    status = Message.Status.COMPLETE
    error_code = ""

    async def store() -> None:
        if not stored:
            return
        assert completion.reply_id is not None
        await in_reply_thread(services.reply_finish)(
            reply_id=completion.reply_id,
            text=text,
            status=status,
            usage=usage,
            ttft_ms=_round(ttft_ms),
            backend_ttft_ms=_round(backend_ttft_ms),
            duration_ms=_round((time.monotonic() - started) * 1000),
            backend=settings.LLM_BACKEND,
            replica=replica,
            finish_reason=(reported or "stop") if status == Message.Status.COMPLETE else status,
            error_code=error_code,
        )

    try:
        try:
            async with contextlib.aclosing(backend.stream(request)) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    piece = shown.feed(chunk.text, verbatim=chunk.verbatim) if chunk.text else ""
                    piece = restored.feed(piece) if piece else ""
                    piece = moderated.feed(piece) if piece else ""
                    if piece:
                        if ttft_ms is None:
                            ttft_ms = (time.monotonic() - started) * 1000
                        text += piece
                        yield Delta(text=piece)
                    if chunk.usage is not None:
                        usage, reported = chunk.usage, chunk.finish_reason
                        backend_ttft_ms = chunk.backend_ttft_ms
                        replica = chunk.replica or replica
                    if chunk.finish_reason == "content_filter":  # the model's own refusal
                        moderated.refuse()
                    if moderated.blocked:
                        break
                    if stored and time.monotonic() >= next_checkpoint:
                        assert completion.reply_id is not None
                        stop = await in_reply_thread(services.reply_checkpoint)(
                            reply_id=completion.reply_id, text=text
                        )
                        next_checkpoint = time.monotonic() + checkpoint_every
                        if stop:
                            status = Message.Status.CANCELLED
                            break
        except LLMError as exc:
            status, error_code = Message.Status.FAILED, exc.code
            logger.warning("API reply failed: %s: %s", exc.code, exc)
        except Exception:
            status, error_code = Message.Status.FAILED, "llm_error"
            logger.exception("API reply failed")
        tail = restored.feed(shown.flush()) + restored.flush()
        tail = moderated.feed(tail) + moderated.flush()
        if moderated.blocked:
            # Stored as the safe message; a stream cannot take back what it sent (nothing
            # moderation caught was sent), so the safe message follows it.
            replacement = safe_reply(language=request.reply_language or request.language)
            yield Delta(text=("\n\n" if text else "") + replacement)
            text, tail, reported = replacement, "", "content_filter"
        if tail:
            text += tail
            yield Delta(text=tail)
    except (GeneratorExit, asyncio.CancelledError):
        status = Message.Status.CANCELLED  # the client went away
        await store()
        raise
    await store()
    if completion.conversation_id is not None and moderated.notes:
        await in_reply_thread(hits_record)(
            conversation_id=completion.conversation_id,
            message_id=completion.reply_id,
            direction="output",
            language=request.reply_language or request.language,
            notes=moderated.notes,
        )
    yield Finished(
        text=text,
        finish_reason=_openai_finish_reason(reported),
        usage=usage,
        citations=completion.citations,
        error_code=error_code,
    )


def completion_events(completion: Completion) -> Iterator[Delta | Finished]:
    """completion_stream for synchronous code (a WSGI server, a non-streaming call): it runs
    on an event loop of its own in this thread; closing the iterator closes the stream."""
    loop = asyncio.new_event_loop()
    stream = completion_stream(completion)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(stream))
            except StopAsyncIteration:
                return
    finally:
        try:
            loop.run_until_complete(stream.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

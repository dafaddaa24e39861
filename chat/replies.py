"""Reply generation: a task owned by the server process (not by any socket) streams each reply.

It claims the conversation's pending reply, builds the prompt from the stored conversation,
streams from the LLM backend, and broadcasts coalesced deltas to the group
`conversation_<id>`, so any socket joined there (on any process, over the Redis channel
layer) receives them. Partial text is checkpointed while it streams; a heartbeat tells other
processes that the reply is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
import weakref
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone, translation

from autoglm_site import metrics
from autoglm_site.languages import letter_count
from chat import events, prompt_process, selectors, services
from chat.asyncdb import in_reply_thread, in_thread
from chat.glossary import glossary_prompt
from chat.language import message_is_short, reply_language
from chat.leases import get_keeper
from chat.live import get_live_text
from chat.llm import get_backend
from chat.llm.base import (
    ChatTurn,
    Chunk,
    CompletionRequest,
    LLMBackend,
    LLMError,
    Sampling,
    Usage,
)
from chat.llm.extractive import ExtractiveBackend, request_answer
from chat.models import Conversation, DecodingPreset, Message
from chat.prompts import MAX_STOPS, PROMPT_MARKERS, KnowledgeSnippet, prompt_build, turn_note
from chat.reply_text import NoteFilter, ReplyFilter, echoes_question, loop_cut, written_in
from moderation.matching import Rule
from moderation.services import reply_hits_record, safe_reply
from moderation.streaming import ReplyModerator, reply_moderation
from privacy.masking import PiiMasker, PlaceholderRestorer

logger = logging.getLogger(__name__)

_END = object()
_CANCEL = object()


def group_name(conversation_id: uuid.UUID) -> str:
    return f"conversation_{conversation_id.hex}"


async def conversation_broadcast(*, conversation_id: uuid.UUID, messages: list[Message]) -> None:
    """Tell every socket of a conversation about newly stored messages (other tabs)."""
    layer = get_channel_layer()
    assert layer is not None
    for message in messages:
        await layer.group_send(
            group_name(conversation_id), events.message_event(selectors.message_payload(message))
        )


async def conversation_resume(*, conversation: Conversation) -> None:
    """Recover replies whose process died, tell the conversation's sockets, and generate.

    Safe to call from any process at any time: live replies are left alone.
    """
    result = await in_thread(services.conversation_recover)(conversation=conversation)
    layer = get_channel_layer()
    assert layer is not None
    for reply_id in result.interrupted:
        await layer.group_send(
            group_name(conversation.pk),
            events.ended_event(reply_id=reply_id, status=Message.Status.INTERRUPTED),
        )
    await conversation_broadcast(conversation_id=conversation.pk, messages=result.queued)
    get_runner().kick(conversation.pk)


async def conversation_cancel(*, conversation: Conversation, message_id: int | None) -> None:
    """Stop the conversation's active replies (or one): those streaming in this process at
    once, others at their next checkpoint; replies that had not started end here."""
    result = await in_thread(services.reply_cancel)(
        conversation=conversation, message_id=message_id
    )
    get_runner().cancel(result.stopping)
    layer = get_channel_layer()
    assert layer is not None
    for reply_id in result.cancelled:
        await layer.group_send(
            group_name(conversation.pk),
            events.ended_event(reply_id=reply_id, status=Message.Status.CANCELLED),
        )


def reply_prompt(reply: Message, *, sampling: Sampling | None = None) -> CompletionRequest:
    """The request for a claimed reply, built from its stored conversation (SAMPLING: the
    support-answer preset when not given)."""
    conversation = reply.conversation  # reply_claim read it with the reply
    history = selectors.prompt_history(reply=reply)
    question = history[-1] if history and history[-1].role == Message.Role.USER else None
    answer_language = (
        reply_language(text=question.text, conversation_language=conversation.language)
        if question is not None
        else conversation.language
    )
    knowledge = services.turn_knowledge(question=question, language=answer_language)
    past = selectors.knowledge_given(
        messages=[m for m in history[:-1] if m.role == Message.Role.USER]
    )
    return prompt_request(
        language=conversation.language,
        history=history,
        knowledge=knowledge,
        past_knowledge=past,
        reply_language=answer_language,
        affinity_key=str(conversation.pk),
        sampling=sampling,
    )


def _prepared(reply: Message) -> tuple[CompletionRequest, ReplyModerator]:
    """A claimed reply's request, moderated, and its moderator: one trip to a reply thread."""
    return reply_moderation(reply_prompt(reply))


async def _prepare(reply: Message) -> tuple[CompletionRequest, ReplyModerator]:
    """_prepared, in a prompt process when there are some (chat.prompt_process), else (or
    when that process died meanwhile) on a reply thread."""
    if prompt_process.enabled():
        done = await prompt_process.prepared_in_process(reply)
        if done is not None:
            return done
    return await in_reply_thread(_prepared)(reply)


def prompt_request(
    *,
    language: str,
    history: list[Message],
    knowledge: list[KnowledgeSnippet],
    past_knowledge: dict[int, list[KnowledgeSnippet]] | None,
    reply_language: str,
    affinity_key: str,
    sampling: Sampling | None = None,
) -> CompletionRequest:
    """The request for a reply to HISTORY (its last turn the question, when it is the user's):
    the grounded prompt (knowledge, notes, glossary), personal data masked, the marker stops.

    PAST_KNOWLEDGE maps earlier user turns' ids to what they were given; None when that is not
    known (a history sent by an API client): those turns then carry no note. SAMPLING is the
    support-answer preset when not given.
    """
    question = history[-1] if history and history[-1].role == Message.Role.USER else None
    past = past_knowledge or {}
    notes = {
        m.pk: turn_note(
            text=m.text,
            conversation_language=language,
            knowledge_found=bool(knowledge if m is question else past.get(m.pk)),
        )
        for m in history
        if m.role == Message.Role.USER and (past_knowledge is not None or m is question)
    }
    messages = prompt_build(
        language=language,
        history=history,
        knowledge=knowledge,
        past_knowledge=past,
        count_tokens=get_backend().token_counter(),
        turn_notes=notes,
        glossary=glossary_prompt(language=language),
    )
    query = question.text if question is not None else ""
    originals: dict[str, str] = {}
    if settings.PRIVACY_MASK_PII:
        messages, query, originals = _pii_masked(messages, query)
    if sampling is None:
        sampling = selectors.preset_sampling(task=DecodingPreset.Task.SUPPORT_ANSWER)
    return CompletionRequest(
        messages=messages,
        sampling=_with_marker_stops(sampling),
        affinity_key=affinity_key,
        language=language,
        query=query,
        reply_language=reply_language,
        knowledge=[snippet.as_dict() for snippet in knowledge],
        pii_originals=originals,
    )


def _pii_masked(messages: list[ChatTurn], query: str) -> tuple[list[ChatTurn], str, dict[str, str]]:
    """The turns and the question with personal data as placeholders (privacy.masking),
    numbered in the order values first appear in the turns: each turn masks the same in every
    later prompt, so the prefix cache still covers the history. Replies are masked too: the
    stored ones hold the restored originals."""
    masker = PiiMasker()
    masked = [
        turn
        if turn.role == "system"
        else ChatTurn(role=turn.role, content=masker.mask(turn.content))
        for turn in messages
    ]
    return masked, masker.mask(query), masker.originals


def _with_marker_stops(sampling: Sampling) -> Sampling:
    """SAMPLING that also stops where a small model starts echoing the prompt's own markers
    (seen with the packaged 1.5B model on one-line questions)."""
    stops = tuple(dict.fromkeys((*sampling.stop, *PROMPT_MARKERS)))
    return dataclasses.replace(sampling, stop=stops[:MAX_STOPS])


def reply_backend(request: CompletionRequest) -> LLMBackend:
    """The configured backend, except where the reply is built from the knowledge alone: for a
    reply language the engine cannot write well (CHAT_EXTRACTIVE_LANGUAGES), and, with
    CHAT_NO_KNOWLEDGE_REPLY=template, for a question nothing relevant was found for (a small
    model asked to say it does not know still states facts; a greeting or a short follow-up
    like "thanks" still goes to the model)."""
    if request.reply_language in settings.CHAT_EXTRACTIVE_LANGUAGES:
        return ExtractiveBackend()
    if (
        settings.CHAT_NO_KNOWLEDGE_REPLY == "template"
        and not request.knowledge
        and not message_is_short(request.query)
    ):
        return ExtractiveBackend()
    return get_backend()


class ShownText:
    """What the visitor is shown of a reply to REQUEST that streams in pieces: feed it each
    piece in order, then flush() for the rest. Each piece loses the lines that echo the
    prompt's bracketed notes, then passes the script filter (and
    Traditional characters), then has its PII placeholders restored, then MODERATED (which
    says whether the reply is blocked and what it noted)."""

    def __init__(self, request: CompletionRequest, moderated: ReplyModerator) -> None:
        self.moderated = moderated
        self._notes = NoteFilter()
        self._filtered = ReplyFilter(request.reply_language or request.language)
        self._restored = PlaceholderRestorer(dict(request.pii_originals))

    def feed(self, text: str, *, verbatim: bool = False) -> str:
        if verbatim:  # quoted as it is, after what was held of the model's own text
            return self._shown(self._notes.flush()) + self._shown(text, verbatim=True)
        return self._shown(self._notes.feed(text)) if text else ""

    def _shown(self, text: str, *, verbatim: bool = False) -> str:
        piece = self._filtered.feed(text, verbatim=verbatim) if text else ""
        piece = self._restored.feed(piece) if piece else ""
        return self.moderated.feed(piece) if piece else ""

    def flush(self) -> str:
        tail = self._filtered.feed(self._notes.flush()) + self._filtered.flush()
        tail = self._restored.feed(tail) + self._restored.flush()
        return self.moderated.feed(tail) + self.moderated.flush()


class ReplyRunner:
    """Per event loop: one generation task per conversation, replies taken in order."""

    def __init__(self) -> None:
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()
        self._queues: dict[int, asyncio.Queue[Any]] = {}

    def kick(self, conversation_id: uuid.UUID) -> None:
        """Make sure this process generates the conversation's pending replies."""
        task = self._tasks.get(conversation_id)
        if task is not None and not task.done():
            self._again.add(conversation_id)
            return
        self._tasks[conversation_id] = asyncio.create_task(
            self._run(conversation_id), name=f"reply:{conversation_id}"
        )

    def cancel(self, reply_ids: list[int]) -> None:
        """Stop replies streaming in this process now (others see the flag at a checkpoint)."""
        for reply_id in reply_ids:
            queue = self._queues.get(reply_id)
            if queue is not None:
                queue.put_nowait(_CANCEL)

    def active(self) -> int:
        return sum(1 for task in self._tasks.values() if not task.done())

    def running(self, conversation_id: uuid.UUID) -> bool:
        """Whether this process is generating (or about to claim) the conversation's replies."""
        task = self._tasks.get(conversation_id)
        return task is not None and not task.done()

    async def _run(self, conversation_id: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(conversation_id)
                while True:
                    reply = await in_reply_thread(services.reply_claim)(
                        conversation_id=conversation_id
                    )
                    if reply is None:
                        break
                    await self._generate(reply)
                    if not reply.more_pending:
                        break  # a message stored meanwhile kicked us: see _again below
                if conversation_id not in self._again:
                    break
        except Exception:
            logger.exception("reply generation for conversation %s failed", conversation_id)
        finally:
            if self._tasks.get(conversation_id) is asyncio.current_task():
                del self._tasks[conversation_id]

    async def _generate(self, reply: Message) -> None:
        # The lease stays fresh from the claim until the end is stored (chat.leases).
        with get_keeper().held(reply.pk):
            await self._generate_held(reply)

    async def _generate_held(self, reply: Message) -> None:
        layer = get_channel_layer()
        assert layer is not None
        live = get_live_text()
        group = group_name(reply.conversation_id)
        # A missed delta is recovered by its receivers (chat.delivery): the layer may send it
        # to the group's members as it last knew them (autoglm_site.channel_layer).
        send_recoverable = getattr(layer, "group_send_recoverable", layer.group_send)
        # Deltas go out at most every CHAT_COALESCE_MS, and less often when this process
        # streams many replies at once, so that its total stays near CHAT_MAX_FRAMES_PER_SECOND
        # (each frame costs a channel-layer send). The first delta always goes out at once.
        coalesce = max(
            settings.CHAT_COALESCE_MS / 1000, self.active() / settings.CHAT_MAX_FRAMES_PER_SECOND
        )
        checkpoint_every = settings.CHAT_CHECKPOINT_MS / 1000

        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues[reply.pk] = queue
        started = time.monotonic()
        text = ""
        pending = ""
        last_flush = float("-inf")
        next_checkpoint = started + checkpoint_every
        ttft_ms: float | None = None
        backend_ttft_ms: float | None = None
        usage: Usage | None = None
        finish_reason: str | None = None
        replica = ""
        status = Message.Status.COMPLETE
        error_code = ""

        async def pump(request: CompletionRequest, backend: LLMBackend) -> None:
            try:
                async for chunk in backend.stream(request):
                    await queue.put(chunk)
                await queue.put(_END)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # handed to the generator loop, which records it
                await queue.put(exc)

        async def flush() -> None:
            nonlocal text, pending, last_flush
            offset = len(text)
            text += pending
            await live.append(reply.pk, pending)
            delta = events.delta_event(message_id=reply.pk, offset=offset, text=pending)
            with metrics.timed(metrics.CHANNEL_LAYER_SEND_SECONDS):
                await send_recoverable(group, delta)
            if not offset:
                metrics.REPLY_FIRST_DELTA_SECONDS.observe(
                    max(0.0, (timezone.now() - reply.created_at).total_seconds())
                )
            pending = ""
            last_flush = time.monotonic()

        pump_task: asyncio.Task[None] | None = None
        moderated: ReplyModerator | None = None
        asked_at: float | None = None
        unchecked = 0  # characters added since the last look for a loop
        looped: int | None = None  # where text + pending is cut when the model loops
        metrics.REPLIES_STREAMING.inc()
        try:
            request, moderated = await _prepare(reply)
            shown = ShownText(request, moderated)
            backend = reply_backend(request)
            replica = str(getattr(backend, "name", "") or type(backend).__name__)
            asked_at = time.monotonic()
            pump_task = asyncio.create_task(pump(request, backend))
            while True:
                now = time.monotonic()
                wait = next_checkpoint - now
                if pending:
                    wait = min(wait, last_flush + coalesce - now)
                try:
                    item = queue.get_nowait()  # under load chunks queue up: no wait at all
                except asyncio.QueueEmpty:
                    item = None
                    if wait > 0:
                        try:
                            async with asyncio.timeout(wait):  # no task per wait, unlike wait_for
                                item = await queue.get()
                        except TimeoutError:
                            item = None
                if item is _END:
                    break
                if item is _CANCEL:
                    status = Message.Status.CANCELLED
                    break
                if isinstance(item, BaseException):
                    status = Message.Status.FAILED
                    error_code = item.code if isinstance(item, LLMError) else "llm_error"
                    logger.warning("reply %s failed: %s: %s", reply.pk, error_code, item)
                    break
                if isinstance(item, Chunk):
                    piece = shown.feed(item.text, verbatim=item.verbatim)
                    if piece:
                        if ttft_ms is None:
                            ttft_ms = (time.monotonic() - started) * 1000
                        pending += piece
                        unchecked += len(piece)
                        if unchecked >= _LOOP_CHECK_CHARS:
                            unchecked = 0
                            looped = loop_cut(text + pending)
                            if looped is not None:
                                finish_reason = "loop"
                                break  # the engine is stopped below (the pump is cancelled)
                    if item.usage is not None:
                        usage = item.usage
                        backend_ttft_ms = item.backend_ttft_ms
                        finish_reason = item.finish_reason
                        replica = item.replica or replica
                    if item.finish_reason == "content_filter":  # the model's own refusal
                        moderated.refuse()
                    if moderated.blocked:
                        break  # nothing more of it is shown: it is replaced below
                now = time.monotonic()
                if pending and now - last_flush >= coalesce:
                    await flush()
                if now >= next_checkpoint:
                    stop = await _checkpoint(reply.pk, text)
                    # Counted from the end of the save: a slow database must not make every
                    # loop a checkpoint (that starved the token queue).
                    next_checkpoint = time.monotonic() + checkpoint_every
                    if stop:
                        status = Message.Status.CANCELLED
                        break
            pending += shown.flush()
            replacement = ""
            if looped is not None:  # said once; what was shown of the loop is taken back
                kept = (text + pending)[:looped]
                if request.knowledge and letter_count(kept) < _LOOP_LEAVES_LETTERS:
                    replacement = request_answer(request)  # next to nothing was said
                elif looped >= len(text):
                    pending = kept[len(text) :]
                else:
                    replacement = kept
            if moderated.blocked:
                replacement = safe_reply(language=request.reply_language or request.language)
                finish_reason = "content_filter"
            elif status == Message.Status.COMPLETE and (
                # (a loop's replacement is not judged on its language: it may be the answer
                # from the excerpts, whose English titles would read as English)
                wrong := _unusable(
                    replacement or text + pending, request, backend, language=not replacement
                )
            ):
                # A small model sometimes only repeats a one-line question, or copies an
                # English excerpt whole for a visitor who wrote in another language: it is
                # asked once more, told so; what is still unusable is answered from the
                # excerpts instead (or honestly, that there are none).
                try:
                    replacement = await _answer_again(
                        request, backend, text + pending, moderated.rules, queue, wrong=wrong
                    ) or request_answer(request)
                    finish_reason = wrong
                except _Cancelled:  # stopped while it answered again: the first answer stays
                    status = Message.Status.CANCELLED
            if replacement:
                # The reply is replaced, what was shown of it too: stored and sent whole.
                pending, text = "", replacement
                await live.clear(reply.pk)
                await live.append(reply.pk, text)
                await layer.group_send(group, events.rewrite_event(message_id=reply.pk, text=text))
            if pending:
                await flush()
        finally:
            if pump_task is not None:
                pump_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump_task
            self._queues.pop(reply.pk, None)
            metrics.REPLIES_STREAMING.dec()

        duration_ms = (time.monotonic() - started) * 1000
        event = await _stored_end(
            reply_id=reply.pk,
            text=text,
            status=status,
            usage=usage,
            ttft_ms=_round(ttft_ms),
            backend_ttft_ms=_round(backend_ttft_ms),
            duration_ms=_round(duration_ms),
            backend=settings.LLM_BACKEND,
            replica=replica,
            finish_reason=_finish_reason(status, finish_reason),
            error_code=error_code,
        )
        if moderated is not None and moderated.notes:
            await in_reply_thread(reply_hits_record)(
                reply=reply,
                language=request.reply_language or request.language,
                notes=moderated.notes,
            )
        if event is None:  # recovered elsewhere as interrupted: that reply is not ours now
            logger.warning("reply %s was taken over after its heartbeat went stale", reply.pk)
            await live.clear(reply.pk)
            return
        with metrics.timed(metrics.CHANNEL_LAYER_SEND_SECONDS):
            await layer.group_send(group, event)
        await live.clear(reply.pk)
        _record(event, replica=replica, asked_at=asked_at, ttft_ms=ttft_ms, usage=usage)
        if status == Message.Status.COMPLETE:
            await _handoff_after_reply(reply, request)


# Said to the model after a reply that only repeated the question (bench/answers.py: one reply
# in seven of the packaged model's, on short questions), or that is not in the visitor's
# language (an English excerpt copied whole for a Japanese question); not stored, not shown.
_ANSWER_AGAIN = {
    "echo": (
        "[That only repeats my question. Answer it now from the excerpts I gave: the steps or "
        "facts they state, in {language}, in your own words.]"
    ),
    "language": (
        "[That is not in {language}. Answer my question again from the excerpts I gave: the "
        "steps or facts they state, written in {language}, in your own words.]"
    ),
}


def _unusable(
    text: str, request: CompletionRequest, backend: LLMBackend, *, language: bool = True
) -> str | None:
    """Why the model's whole reply TEXT cannot stand: "echo" (it only repeats the question),
    "language" (with LANGUAGE and excerpts to answer from, it is not in the reply language:
    code, links and texts too short to tell aside), or None."""
    if echoes_question(text, request.query):
        return "echo"
    reply_language = request.reply_language or request.language
    if (
        language
        and request.knowledge
        and settings.CHAT_REPLY_LANGUAGE_CHECK
        and not isinstance(backend, ExtractiveBackend)
        and not written_in(text, reply_language)
    ):
        return "language"
    return None


# How often a streaming reply is looked at for a loop (chat.reply_text.loop_cut: its shortest
# loop is 32 characters).
_LOOP_CHECK_CHARS = 16
# A loop that leaves fewer letters than this before it (one sentence) is replaced by the
# answer from the excerpts, when there are any.
_LOOP_LEAVES_LETTERS = 40


class _Cancelled(Exception):
    """The reply was cancelled (its queue got _CANCEL) while it was answered again."""


async def _answer_again(
    request: CompletionRequest,
    backend: LLMBackend,
    echoed: str,
    rules: tuple[Rule, ...],
    queue: asyncio.Queue[Any],
    *,
    wrong: str = "echo",
) -> str:
    """The model's second answer to REQUEST after ECHOED (its first, unusable because WRONG:
    see _unusable), filtered as the first was (notes, scripts, PII placeholders, moderation);
    "" when there are no excerpts to answer from, when the backend writes no text of its
    own, or when the second answer fails, is blocked, repeats the question too or is not in
    the visitor's language. Raises _Cancelled as soon as the reply's QUEUE says it was
    cancelled (its first stream has ended: nothing else is put there)."""
    if not request.knowledge or isinstance(backend, ExtractiveBackend):
        return ""
    language = request.reply_language or request.language
    name = translation.get_language_info(language)["name"]
    turns = [
        *request.messages,
        ChatTurn(role="assistant", content=echoed),
        ChatTurn(role="user", content=_ANSWER_AGAIN[wrong].format(language=name)),
    ]
    again = dataclasses.replace(request, messages=turns)
    checked = ReplyModerator(rules)
    shown = ShownText(request, checked)
    text = ""
    try:
        async for chunk in backend.stream(again):
            if any(queue.get_nowait() is _CANCEL for _item in range(queue.qsize())):
                raise _Cancelled
            if chunk.finish_reason == "content_filter":
                return ""
            text += shown.feed(chunk.text, verbatim=chunk.verbatim)
    except _Cancelled:
        raise
    except Exception as exc:  # the answer from the excerpts follows: nothing is lost
        logger.info("second answer after an echo failed: %s", exc)
        return ""
    text += shown.flush()
    looped = loop_cut(text)
    text = text[:looped] if looped is not None else text
    # Not the visitor's language (an English excerpt copied): the answer from the excerpts,
    # in their language, follows instead.
    if checked.blocked or echoes_question(text, request.query) or not written_in(text, language):
        return ""
    # Not yet shown, so a first line that only restates the question again can go.
    first, _newline, rest = text.strip().partition("\n")
    if rest.strip() and echoes_question(first, request.query):
        text = rest
    return text.strip()


def backend_kind(replica: str) -> str:
    """The metrics' backend label for the endpoint that answered (a fixed, short set)."""
    if replica.startswith("local"):
        return "local"
    if replica in {"knowledge_fallback", "extractive"}:
        return "fallback" if replica == "knowledge_fallback" else "extractive"
    if replica in {"fake", "FakeBackend"}:
        return "fake"
    return "openai"


def _record(
    event: events.DoneEvent,
    *,
    replica: str,
    asked_at: float | None,
    ttft_ms: float | None,
    usage: Usage | None,
) -> None:
    backend = backend_kind(replica)
    first_ms = event["timings"]["backend_ttft_ms"] or ttft_ms
    if first_ms is not None:
        metrics.REPLY_FIRST_TOKEN_SECONDS.labels(backend=backend, replica=replica).observe(
            first_ms / 1000
        )
    if event["error_code"]:
        metrics.ERRORS.labels(code=event["error_code"]).inc()
    metrics.reply_record(
        backend=backend,
        replica=replica or "-",
        finish_reason=event["finish_reason"],
        prompt_tokens=usage.prompt_tokens if usage else None,
        cached_prompt_tokens=usage.cached_prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        duration_seconds=None if asked_at is None else time.monotonic() - asked_at,
    )


def _finish_reason(status: str, reported: str | None) -> str:
    """Why a reply ended: the backend's word for a complete one ("stop", "length" for a
    max_tokens cut, "fallback" for the router's apology), else the status."""
    if status == Message.Status.COMPLETE:
        return reported or "stop"
    return status


def _had_no_knowledge(request: CompletionRequest) -> bool:
    """A real question (not a greeting or "thanks") that found nothing relevant."""
    return (
        request.task == "answer" and not request.knowledge and not message_is_short(request.query)
    )


async def _handoff_after_reply(reply: Message, request: CompletionRequest) -> None:
    """Hand the conversation to a person (when the human side is on) after a reply that had
    nothing to answer with, or that drew on a knowledge category an admin's rule sends to
    people: the visitor has had the assistant's reply; now a person joins."""
    from inbox import handoff
    from inbox import live as inbox_live
    from inbox import services as inbox_services

    categories = {str(item.get("category", "")) for item in request.knowledge} - {""}
    no_knowledge = _had_no_knowledge(request)
    if not no_knowledge and not categories:
        return
    try:
        if not await in_reply_thread(handoff.handoff_enabled)():
            return
        if no_knowledge:
            reason, detail, team = Conversation.HandoffReason.NO_KNOWLEDGE, "", None
        else:
            rule = await in_reply_thread(handoff.rule_for_categories)(
                categories=categories, language=reply.conversation.language
            )
            if rule is None:
                return
            reason, detail, team = Conversation.HandoffReason.RULE, str(rule.category), rule.team
        change = await in_reply_thread(inbox_services.handoff_start)(
            conversation=reply.conversation, reason=reason, detail=detail, team=team
        )
        await inbox_live.change_broadcast(change)
    except Exception:
        logger.exception("handing conversation %s off failed", reply.conversation_id)


async def _checkpoint(reply_id: int, text: str) -> bool:
    """Save the partial text (services.reply_checkpoint). While the database is unreachable
    the reply goes on streaming: the text is saved at a later checkpoint or at its end."""
    try:
        return await in_reply_thread(services.reply_checkpoint)(reply_id=reply_id, text=text)
    except DatabaseError as exc:
        logger.warning("checkpoint of reply %s failed (it goes on streaming): %s", reply_id, exc)
        return False


async def _stored_end(**fields: Any) -> events.DoneEvent | None:
    """Store the finished reply (_finish), retried while the database is unreachable for up
    to twice the lease (a PostgreSQL restart): a reply the visitor has read whole is not
    thrown away for a few seconds' outage. Past that the error goes up, the lease runs out
    and the reply is generated again."""
    deadline = time.monotonic() + 2 * settings.CHAT_REPLY_LEASE_SECONDS
    while True:
        try:
            return await in_reply_thread(_finish)(**fields)
        except DatabaseError as exc:
            if time.monotonic() >= deadline:
                raise
            logger.warning("storing reply %s failed, retrying: %s", fields["reply_id"], exc)
            await asyncio.sleep(0.5)


def _finish(**fields: Any) -> events.DoneEvent | None:
    """Store the finished reply; its `chat.done` event (None when it is no longer ours)."""
    final = services.reply_finish(**fields)
    if final is None:
        return None
    return events.done_event(final, citations=selectors.reply_citations(reply=final))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


_runners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReplyRunner] = (
    weakref.WeakKeyDictionary()
)


def get_runner() -> ReplyRunner:
    """The runner of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    runner = _runners.get(loop)
    if runner is None:
        runner = _runners[loop] = ReplyRunner()
    return runner

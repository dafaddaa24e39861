"""/api/v1/openai/: the grounded assistant behind OpenAI's chat-completions API, for OpenAI's
clients (see docs/api.md): knowledge retrieval, glossary, reply language, the honest
no-knowledge reply and personal-data masking all apply; citations come in an extra field."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Literal

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext
from ninja import Field, Router, Schema
from pydantic import field_validator, model_validator

from api import errors
from api.auth import Access
from api.models import ApiKey
from chat import completions
from chat import errors as chat_errors
from chat.language import language_negotiate
from chat.selectors import HISTORY_LIMIT

router = Router(tags=["openai"])

MODEL_ID = "autoglm-assistant"
# The request header that names a stored conversation ("new" opens one); the response repeats
# it with the conversation's id.
CONVERSATION_HEADER = "X-AutoGLM-Conversation"
MAX_TOKENS = 4096


# --- Input ------------------------------------------------------------------------------------
class ChatContentPart(Schema):
    type: Literal["text"]
    text: str


class ChatMessageIn(Schema):
    # "system" and "developer" messages are accepted and not used: the assistant's own system
    # prompt (grounding, glossary, language rules) is the one that applies.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ChatContentPart] | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _has_text(self) -> ChatMessageIn:
        if self.content is None:
            raise ValueError(gettext("Each message needs its text in “content”."))
        return self

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatStreamOptions(Schema):
    include_usage: bool = False


class ChatResponseFormat(Schema):
    type: Literal["text"]


class ChatCompletionIn(Schema):
    model: str = Field(max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=HISTORY_LIMIT)
    stream: bool | None = False
    stream_options: ChatStreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=1, description="Only one choice is generated.")
    tools: list[dict[str, Any]] | None = None
    functions: list[dict[str, Any]] | None = None
    response_format: ChatResponseFormat | None = None
    logprobs: bool | None = None
    user: str | None = Field(None, max_length=200)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not stop or len(stop) > 100 for stop in stops):
            raise ValueError(gettext("At most four stop sequences of 1 to 100 characters."))
        return value

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError(gettext("Tools and function calling are not supported here."))
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError(gettext("Log probabilities are not supported here."))
        return value

    @model_validator(mode="after")
    def _ends_with_user(self) -> ChatCompletionIn:
        spoken = [m for m in self.messages if m.role in ("user", "assistant")]
        if not spoken or spoken[-1].role != "user":
            raise ValueError(gettext("The last message (besides system ones) must be the user's."))
        return self

    def turns(self) -> list[completions.Turn]:
        return [
            completions.Turn(role=m.role, text=m.text())
            for m in self.messages
            if m.role in ("user", "assistant")
        ]

    def sampling(self) -> dict[str, Any]:
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "stop": tuple(stops) if stops else None,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "seed": self.seed,
        }


# --- Output -----------------------------------------------------------------------------------
class CompletionCitation(Schema):
    title: str
    url: str


class ChatMessageOut(Schema):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None
    citations: list[CompletionCitation] = Field(
        default_factory=list, description="The knowledge-base articles the reply was given."
    )


class CompletionChoice(Schema):
    index: int = 0
    message: ChatMessageOut
    finish_reason: Literal["stop", "length", "content_filter"]
    logprobs: None = None


class CompletionUsage(Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionOut(Schema):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage
    citations: list[CompletionCitation] = Field(
        default_factory=list, description="The same as choices[0].message.citations."
    )
    conversation_id: str | None = Field(
        None, description=f"The stored conversation (with the {CONVERSATION_HEADER} header)."
    )


class AssistantModel(Schema):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class AssistantModelList(Schema):
    object: Literal["list"] = "list"
    data: list[AssistantModel]


def _usage(usage: Any) -> dict[str, int]:
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _json(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


class _ChunkWriter:
    """OpenAI's chat.completion.chunk events: the role first, content deltas, the finish
    (with our citations), the usage when asked for, then [DONE]."""

    def __init__(self, *, include_usage: bool, conversation_id: str | None) -> None:
        self.base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": MODEL_ID,
        }
        self.include_usage = include_usage
        self.conversation_id = conversation_id

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _json({**self.base, "choices": [choice], **extra})

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def frames(self, event: completions.Delta | completions.Finished) -> list[bytes]:
        if isinstance(event, completions.Delta):
            return [self._chunk({"content": event.text})]
        if event.error_code:
            failure = errors.ReplyFailed()
            body = failure.body()
            body["error"]["type"] = "server_error"
            return [_json(body)]  # OpenAI's clients raise APIError on it
        frames = [
            self._chunk(
                {},
                event.finish_reason,
                citations=event.citations,
                conversation_id=self.conversation_id,
            )
        ]
        if self.include_usage:
            frames.append(_json({**self.base, "choices": [], "usage": _usage(event.usage)}))
        return [*frames, b"data: [DONE]\n\n"]


def _sse(writer: _ChunkWriter, events: Iterable[Any]) -> Iterator[bytes]:
    yield writer.start()
    for event in events:
        yield from writer.frames(event)


async def _asse(writer: _ChunkWriter, events: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    yield writer.start()
    async for event in events:
        for frame in writer.frames(event):
            yield frame


# --- Operations -------------------------------------------------------------------------------
def _caller(request: HttpRequest) -> completions.Caller:
    key = getattr(request, "api_key", None)
    if isinstance(key, ApiKey):
        return completions.Caller(
            name=f"key:{key.pk}", any_conversation=key.has_scope("conversations:write")
        )
    user = request.user
    return completions.Caller(name=f"user:{user.pk}", any_conversation=user.is_superuser)


def _api_error(exc: chat_errors.ChatError) -> errors.ApiError:
    if isinstance(exc, chat_errors.ConversationNotFound):
        return errors.NotFound([{"field": CONVERSATION_HEADER, "problem": exc.render()}])
    if isinstance(exc, chat_errors.RateLimited):
        seconds = int(settings.CHAT_RATE_LIMIT_WINDOW_SECONDS)
        error: errors.ApiError = errors.RateLimited(seconds=seconds)
        error.headers["Retry-After"] = str(seconds)
        return error
    if isinstance(exc, completions.PersonAnswers | completions.ConversationBusy):
        return errors.Conflict([{"field": CONVERSATION_HEADER, "problem": exc.render()}])
    return errors.InvalidRequest([{"field": "messages", "problem": exc.render()}])


@router.post(
    "/chat/completions",
    response={
        200: ChatCompletionOut,
        400: errors.ErrorBody,
        401: errors.ErrorBody,
        403: errors.ErrorBody,
        404: errors.ErrorBody,
        409: errors.ErrorBody,
        422: errors.ErrorBody,
        429: errors.ErrorBody,
        503: errors.ErrorBody,
    },
    auth=Access("assistant"),
    summary="Ask the grounded assistant (OpenAI chat completions)",
)
def chat_completions(request: HttpRequest, payload: ChatCompletionIn) -> Any:
    """OpenAI's chat-completions call, answered by the grounded assistant (not a raw model):
    with `"stream": true`, server-sent events of `chat.completion.chunk` ending in `[DONE]`.
    The final chunk (and a non-streamed completion) carries `citations`: the knowledge-base
    articles the reply was given.

    Stateless unless the `X-AutoGLM-Conversation` header is sent: `new` opens a stored
    conversation, an id continues one; the response's `X-AutoGLM-Conversation` header names it.
    In a stored conversation only the last message is new (it is stored before the reply
    starts, the reply when it ends); the earlier turns come from the stored conversation.
    """
    if payload.model != MODEL_ID:
        raise errors.ModelNotFound(model=payload.model, available=MODEL_ID)
    conversation_ref = request.headers.get(CONVERSATION_HEADER, "").strip() or None
    accept_language = request.headers.get("Accept-Language", "")
    try:
        completion, _opened = completions.completion_prepare(
            turns=payload.turns(),
            caller=_caller(request),
            conversation_ref=conversation_ref,
            language=language_negotiate(accept_language=accept_language) if accept_language else "",
            sampling=payload.sampling(),
        )
    except chat_errors.ChatError as exc:
        raise _api_error(exc) from exc
    conversation_id = str(completion.conversation_id) if completion.conversation_id else None
    if payload.stream:
        include_usage = bool(payload.stream_options and payload.stream_options.include_usage)
        writer = _ChunkWriter(include_usage=include_usage, conversation_id=conversation_id)
        # Under ASGI (Daphne) the reply streams on the server's event loop; under WSGI on a
        # loop of this thread's own.
        content: Any = (
            _asse(writer, completions.completion_stream(completion))
            if isinstance(request, ASGIRequest)
            else _sse(writer, completions.completion_events(completion))
        )
        response: HttpResponseBase = StreamingHttpResponse(
            content, content_type="text/event-stream; charset=utf-8"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # no proxy buffering of the events
    else:
        finished = None
        for event in completions.completion_events(completion):
            if isinstance(event, completions.Finished):
                finished = event
        if finished is None or finished.error_code:
            raise errors.ReplyFailed()
        body: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": MODEL_ID,
            "choices": [
                {
                    "message": {"content": finished.text, "citations": finished.citations},
                    "finish_reason": finished.finish_reason,
                }
            ],
            "usage": _usage(finished.usage),
            "citations": finished.citations,
            "conversation_id": conversation_id,
        }

        response = JsonResponse(ChatCompletionOut(**body).model_dump(mode="json"))
    if conversation_id:
        response[CONVERSATION_HEADER] = conversation_id
    return response


@router.get(
    "/models",
    response={200: AssistantModelList, 401: errors.ErrorBody, 403: errors.ErrorBody},
    auth=Access("assistant"),
    summary="The assistant, as OpenAI's model list",
)
def models(request: HttpRequest) -> Any:
    """One model: `autoglm-assistant`, the grounded assistant."""
    return {"data": [{"id": MODEL_ID, "created": 0, "owned_by": "autoglm"}]}

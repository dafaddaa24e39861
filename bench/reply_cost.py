"""The CPU one reply's service calls cost, in one thread with nothing else running: store the
visitor's message, claim the reply, build its prompt (history, knowledge search with the query
embedding, notes), moderation, a checkpoint and the finish. Prints CPU ms per reply, the
queries one reply makes, and the CPU of each part (knowledge search parts included).

Runs against the bench database that bench/serve_bench.sh prepares (the demo knowledge base,
the packaged PostgreSQL in .data/pg), with the same settings; one BLAS thread, as the server:

    bench/serve_bench.sh --with true   # once: creates and migrates autoglm_bench, imports the KB
    .venv/bin/python bench/reply_cost.py 600
"""

from __future__ import annotations

import collections
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for key, value in {
    "DJANGO_SETTINGS_MODULE": "autoglm_site.settings",
    "DATABASE_URL": f"postgresql://postgres@/autoglm_bench?host={ROOT / '.data' / 'pg'}",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
    "ALLOWED_HOSTS": "127.0.0.1",
    "DEBUG": "false",
    "LLM_BACKEND": "chat.llm.fake.FakeBackend",
    "CHAT_NO_KNOWLEDGE_REPLY": "model",
    "CHAT_REPLY_LANGUAGE_CHECK": "false",  # the fake answers every language in English
    "DATABASE_CONN_MAX_AGE": "60",
    "OPENBLAS_NUM_THREADS": "1",
    # bench/limits.py's: one address, many visitors
    "CHAT_RATE_LIMIT_MESSAGES": "1000000",
}.items():
    os.environ.setdefault(key, value)

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

import chat.replies as replies  # noqa: E402
import knowledge.search as search  # noqa: E402
from bench.ws_chat import question  # noqa: E402
from chat import selectors, services  # noqa: E402
from chat.models import Conversation, Message, Visitor  # noqa: E402
from moderation.streaming import reply_moderation  # noqa: E402

SPENT: collections.defaultdict[str, float] = collections.defaultdict(float)


def timed(module: Any, name: str, label: str) -> None:
    func = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            SPENT[label] += time.process_time() - started

    setattr(module, name, wrapper)


for module, name, label in (
    (search, "chunk_search", "search (all)"),
    (search, "_query_vector", "search: query embedding"),
    (search, "_vector_rankings", "search: vector SQL"),
    (search, "_keyword_ranking", "search: keyword SQL"),
    (search, "_chunks_fetched", "search: chunk fetch"),
    (search, "_term_statistics", "search: term statistics"),
    (search, "tokenize", "search: tokenize"),
    (selectors, "prompt_history", "prompt history"),
):
    timed(module, name, label)


def one_reply(visitor: Visitor, conversation: Conversation | None, text: str) -> Conversation:
    def part(label: str, func: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        result = func(**kwargs)
        SPENT[label] += time.process_time() - started
        return result

    sent = part(
        "message_send (the ack)",
        services.message_send,
        visitor=visitor,
        conversation=conversation,
        language="en",
        client_id=uuid.uuid4().hex[:16],
        text=text,
    )
    reply = part("reply_claim", services.reply_claim, conversation_id=sent.conversation.pk)
    request = part("reply_prompt", replies.reply_prompt, reply=reply)
    part("moderation", lambda: reply_moderation(request))
    part("checkpoint", services.reply_checkpoint, reply_id=reply.pk, text="You asked")
    part(
        "finish",
        replies._finish,
        reply_id=reply.pk,
        text="You asked. This is the answer.",
        status=Message.Status.COMPLETE,
        backend="fake",
        replica="fake",
        finish_reason="stop",
    )
    return sent.conversation


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    conversations: dict[int, Conversation] = {}
    visitors: dict[int, Visitor] = {}

    def turn(i: int) -> None:  # three turns per conversation, as bench/ws_chat.py --messages 3
        index = i // 3
        visitor = visitors.setdefault(index, Visitor.objects.create())
        conversations[index] = one_reply(visitor, conversations.get(index), question(index, i % 3))

    for i in range(19):  # warm: every language's tokenizer and the models loaded, memos filled
        turn(i)
    with CaptureQueriesContext(connection) as queries:
        turn(19)  # a second turn
    SPENT.clear()
    started = time.process_time()
    for i in range(21, 21 + count):
        turn(i)
    total = time.process_time() - started
    print(f"replies                 {count} (3 turns per conversation)")
    print(f"CPU per reply           {1000 * total / count:.2f} ms")
    print(f"queries per reply       {len(queries.captured_queries)} (a second turn)")
    for label, seconds in sorted(SPENT.items(), key=lambda item: -item[1]):
        print(f"  {label:<26} {1000 * seconds / count:6.2f} ms")


if __name__ == "__main__":
    main()

"""WebSocket chat benchmark: N concurrent multi-turn conversations against a running server.

Each conversation says hello, then sends --messages messages one after the other, waiting for
each reply's `done`. Every reply is checked against the fake backend's deterministic text
(chat.llm.fake.reply_for on the same history), and optionally against the text stored in
the database. Prints throughput, time to first delta against the backend's own first-token
time, and lost messages; exits 1 when a message was lost.

    bench/serve_bench.sh &      # PostgreSQL + Redis + fake backend on 127.0.0.1:8765
    .venv/bin/python bench/ws_chat.py --url ws://127.0.0.1:8765/ws/chat/ -n 100 --messages 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.typing import Origin  # noqa: E402

from chat.llm.base import ChatTurn, CompletionRequest  # noqa: E402
from chat.llm.fake import reply_for  # noqa: E402

# Questions in several scripts, so the multilingual text path is exercised end to end.
QUESTIONS = (
    "What are your opening hours on {day}?",
    "¿Puedo cambiar la dirección de envío del pedido {n}?",
    "注文 {n} の配送状況を教えてください。",
    "هل يمكنني إرجاع الطلب رقم {n}؟",
    "Wie lange dauert die Lieferung nach {day}?",
    "我的订单 {n} 什么时候发货？",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass
class Turn:
    """One visitor message and what came back for it."""

    client_id: str
    text: str
    sent_at: float = 0.0
    ack_at: float | None = None
    message_id: int | None = None
    reply_id: int | None = None
    first_delta_at: float | None = None
    done_at: float | None = None
    reply_text: str = ""
    expected: str = ""
    status: str = ""
    timings: dict[str, Any] = field(default_factory=dict)
    # Replies marked interrupted (their heartbeat went stale) and replaced by a regenerated one.
    interrupted: list[int] = field(default_factory=list)
    lost: str = ""  # why it counts as lost; empty when delivered intact


@dataclass
class ConversationRun:
    index: int
    connected: bool = False
    conversation_id: str | None = None
    turns: list[Turn] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    failure: str = ""


def question(conversation: int, turn: int) -> str:
    # A visitor keeps to one language: the reply-language filter (chat.reply_text) would
    # rightly drop an earlier Arabic question that the fake quotes inside a Chinese reply.
    template = QUESTIONS[conversation % len(QUESTIONS)]
    return template.format(day=DAYS[(conversation * 7 + turn) % 7], n=conversation * 100 + turn)


def expected_reply(history: list[tuple[str, str]]) -> str:
    """The fake backend's reply to HISTORY ((role, text) pairs, newest user turn last)."""
    turns = [
        ChatTurn(role="user" if role == "user" else "assistant", content=text)
        for role, text in history
    ]
    return reply_for(CompletionRequest(messages=turns))


def origin_for(url: str) -> str:
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


class Lost(Exception):
    """A turn cannot complete (its reason is in the turn)."""


async def receive_frame(ws: ClientConnection, deadline: float) -> dict[str, Any]:
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise TimeoutError
    raw = await asyncio.wait_for(ws.recv(), timeout=remaining)
    frame: dict[str, Any] = json.loads(raw)
    return frame


async def run_turn(ws: ClientConnection, run: ConversationRun, turn: Turn, timeout: float) -> None:
    """Send one message and read frames until its reply is done (or the deadline passes)."""
    turn.sent_at = time.perf_counter()
    deadline = turn.sent_at + timeout
    await ws.send(
        json.dumps(
            {"type": "message", "client_id": turn.client_id, "text": turn.text},
            ensure_ascii=False,
        )
    )
    regenerated: dict[int, str] = {}  # new replies to this message: id -> text so far
    while True:
        try:
            frame = await receive_frame(ws, deadline)
        except TimeoutError:
            turn.lost = "timeout_no_ack" if turn.ack_at is None else "timeout_no_done"
            raise Lost from None
        kind = frame.get("type")
        now = time.perf_counter()
        if kind == "ack" and frame.get("client_id") == turn.client_id:
            turn.ack_at = now
            turn.message_id = frame["message_id"]
            turn.reply_id = frame["reply_id"]
            run.conversation_id = frame["conversation_id"]
            if frame.get("duplicate"):
                run.errors["duplicate_ack"] += 1
        elif kind == "delta" and turn.reply_id is not None and frame["message_id"] == turn.reply_id:
            if turn.first_delta_at is None:
                turn.first_delta_at = now
            offset, text = int(frame["offset"]), str(frame["text"])
            have = len(turn.reply_text)
            if offset > have:
                turn.lost = "gap_in_deltas"
                raise Lost
            if turn.reply_text[offset:] != text[: have - offset]:
                turn.lost = "overlap_mismatch"
                raise Lost
            turn.reply_text += text[have - offset :]
        elif kind == "done" and turn.reply_id is not None and frame["message_id"] == turn.reply_id:
            if frame.get("status") == "interrupted":
                # The server gave the reply up and queued a new one: follow it, as the widget does.
                turn.interrupted.append(turn.reply_id)
                turn.reply_id, turn.reply_text = None, ""
                if regenerated:
                    turn.reply_id, turn.reply_text = regenerated.popitem()
                continue
            turn.done_at = now
            turn.status = str(frame.get("status"))
            turn.timings = dict(frame.get("timings") or {})
            return
        elif kind == "message" and turn.message_id is not None:
            message = frame.get("message") or {}
            if (
                message.get("role") == "assistant"
                and message.get("reply_to") == turn.message_id
                and message.get("id") not in turn.interrupted
                and message.get("id") != turn.reply_id
            ):
                if turn.reply_id is None and turn.interrupted:
                    turn.reply_id, turn.reply_text = int(message["id"]), str(message["text"])
                else:
                    regenerated[int(message["id"])] = str(message["text"])
        elif kind == "error":
            code = str(frame.get("code"))
            run.errors[code] += 1
            if frame.get("client_id") == turn.client_id and turn.ack_at is None:
                turn.lost = f"error_{code}"
                raise Lost
            if turn.reply_id is not None and frame.get("message_id") == turn.reply_id:
                continue  # reply_failed follows its done frame; the done decides
        elif kind in {"delta", "done"} and frame.get("message_id") not in turn.interrupted:
            run.errors["frame_for_other_message"] += 1
        # Other "message" frames echo our own stored message to other tabs: nothing to check.


async def run_conversation(
    index: int, *, args: argparse.Namespace, start_at: float, tag: str
) -> ConversationRun:
    run = ConversationRun(index=index)
    run.turns = [
        Turn(client_id=f"{tag}-{index}-{number}", text=question(index, number))
        for number in range(args.messages)
    ]
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    history: list[tuple[str, str]] = []
    try:
        async with connect(
            args.url,
            origin=Origin(origin_for(args.url)),
            open_timeout=args.timeout,
            ping_interval=None,  # a slow server must not make the client close the socket
            close_timeout=2,
            compression=None,
            max_queue=None,
        ) as ws:
            await ws.send(json.dumps({"type": "hello", "locale": args.locale}))
            deadline = time.perf_counter() + args.timeout
            while (await receive_frame(ws, deadline)).get("type") != "welcome":
                pass
            run.connected = True
            for turn in run.turns:
                history.append(("user", turn.text))
                turn.expected = expected_reply(history)
                await run_turn(ws, run, turn, args.timeout)
                if turn.status != "complete":
                    turn.lost = f"status_{turn.status}"
                elif turn.reply_text != turn.expected:
                    turn.lost = "text_mismatch"
                history.append(("assistant", turn.reply_text))
                if args.think:
                    await asyncio.sleep(args.think)
    except Lost:
        run.failure = "lost"
    except (OSError, TimeoutError, ConnectionClosed) as exc:
        run.failure = type(exc).__name__
    except Exception as exc:  # any client-side surprise is reported, never hidden
        run.failure = f"{type(exc).__name__}: {exc}"
    for turn in run.turns:  # turns after a failure were never completed: they are lost
        if not turn.lost and turn.done_at is None:
            turn.lost = turn.lost or (
                "not_sent" if turn.sent_at == 0.0 else f"connection_{run.failure or 'closed'}"
            )
    return run


def percentile(values: list[float], p: float) -> float | None:
    """Linear-interpolated percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def check_database(runs: list[ConversationRun], database_url: str) -> tuple[Counter[str], int]:
    """Compare each reply with the text the server stored: (problem counts, replies checked)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-read-only-check-not-a-real-secret-0000")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
    import django

    django.setup()
    from chat.models import Message

    turns = {t.reply_id: t for run in runs for t in run.turns if t.reply_id is not None}
    stored: dict[int, tuple[str, str]] = {}
    ids = list(turns)
    for start in range(0, len(ids), 1000):
        rows = Message.objects.filter(pk__in=ids[start : start + 1000]).values_list(
            "pk", "text", "status"
        )
        stored.update({pk: (text, status) for pk, text, status in rows})
    problems: Counter[str] = Counter()
    for reply_id, turn in turns.items():
        text, status = stored.get(reply_id, ("", "missing"))
        if status != "complete":
            problems[f"stored_status_{status}"] += 1
        elif text != turn.expected:
            problems["stored_text_differs_from_expected"] += 1
        elif not turn.lost and text != turn.reply_text:
            problems["stored_text_differs_from_delivered"] += 1
        if not turn.lost and (status != "complete" or text != turn.expected):
            turn.lost = "stored_text_mismatch"
    return problems, len(turns)


def wait_ready(url: str, seconds: float) -> None:
    parts = urlsplit(url)
    health = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}/healthz"
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"server not ready at {health} after {seconds:.0f} s")
        time.sleep(0.5)


def report(runs: list[ConversationRun], *, args: argparse.Namespace, wall: float) -> int:
    turns = [turn for run in runs for turn in run.turns]
    sent = [t for t in turns if t.sent_at]
    delivered = [t for t in turns if not t.lost]
    lost = [t for t in turns if t.lost]
    ttfd = [(t.first_delta_at - t.sent_at) * 1000 for t in delivered if t.first_delta_at]
    ack = [(t.ack_at - t.sent_at) * 1000 for t in sent if t.ack_at]
    reply = [(t.done_at - t.sent_at) * 1000 for t in delivered if t.done_at]

    def timing(name: str) -> list[float]:
        return [float(t.timings[name]) for t in delivered if t.timings.get(name) is not None]

    backend_ttft, server_ttft = timing("backend_ttft_ms"), timing("ttft_ms")
    first_send = min((t.sent_at for t in sent), default=0.0)
    last_done = max((t.done_at for t in delivered if t.done_at), default=first_send)
    span = last_done - first_send
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run.errors)
    connected = sum(1 for run in runs if run.connected)

    def row(label: str, values: list[float]) -> str:
        return (
            f"  {label:<40} p50 {fmt(percentile(values, 50)):>8} ms   "
            f"p99 {fmt(percentile(values, 99)):>8} ms   max {fmt(max(values, default=None)):>8} ms"
        )

    print(f"url                     {args.url}")
    print(f"conversations           {len(runs)} ({connected} connected), ramp {args.ramp:g} s")
    print(f"messages sent           {len(sent)} of {len(turns)} ({args.messages} per conversation)")
    print(f"messages delivered      {len(delivered)} (reply complete and text verified)")
    print(
        f"messages/s              {len(delivered) / span if span > 0 else 0:.1f}"
        f"   (delivered / {span:.2f} s from first send to last done; run {wall:.2f} s)"
    )
    chars = sum(len(t.reply_text) for t in delivered)
    print(f"reply chars/s           {chars / span if span > 0 else 0:.0f}")
    print("latency (client-measured from sending the message)")
    print(row("ack", ack))
    # A conversation's first message comes while the others open (hellos, the ramp); the
    # later ones while replies stream: their acks wait on different things.
    for label, part in (
        ("ack, first messages", slice(0, 1)),
        ("ack, later messages", slice(1, None)),
    ):
        print(
            row(
                label,
                [
                    (t.ack_at - t.sent_at) * 1000
                    for run in runs
                    for t in run.turns[part]
                    if t.sent_at and t.ack_at
                ],
            )
        )
    print(row("first delta (client)", ttfd))
    print(row("backend first token (backend_ttft_ms)", backend_ttft))
    print(row("server first token (done ttft_ms)", server_ttft))
    print(row("whole reply (send -> done)", reply))
    regenerated = sum(1 for t in turns if t.interrupted)
    if regenerated:
        print(
            f"replies regenerated     {regenerated} (the server marked the first reply "
            "interrupted and streamed a new one; counted delivered when the new one was right)"
        )
    print(f"lost messages           {len(lost)}")
    for reason, count in Counter(t.lost for t in lost).most_common():
        print(f"  {reason:<40} {count}")
    if errors:
        print("error frames / oddities " + ", ".join(f"{k}={v}" for k, v in errors.most_common()))
    failures = Counter(run.failure for run in runs if run.failure and run.failure != "lost")
    if failures:
        print("conversation failures   " + ", ".join(f"{k}={v}" for k, v in failures.most_common()))
    return 1 if lost else 0


async def run_all(args: argparse.Namespace) -> tuple[list[ConversationRun], float]:
    tag = f"b{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    step = args.ramp / args.conversations if args.conversations > 1 else 0.0
    tasks = [
        asyncio.create_task(run_conversation(i, args=args, start_at=started + i * step, tag=tag))
        for i in range(args.conversations)
    ]
    # Every wait inside is bounded; this is the backstop that makes the run stop by itself.
    bound = args.ramp + args.messages * (args.timeout + args.think) + args.timeout + 30
    done, pending = await asyncio.wait(tasks, timeout=bound)
    for task in pending:
        task.cancel()
    runs: list[ConversationRun] = []
    for index, task in enumerate(tasks):
        if task in done and not task.cancelled() and task.exception() is None:
            runs.append(task.result())
        else:
            run = ConversationRun(index=index, failure="hung")
            run.turns = [Turn(client_id="", text="", lost="hung") for _ in range(args.messages)]
            runs.append(run)
    return runs, time.perf_counter() - started


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765/ws/chat/", help="chat WebSocket URL")
    parser.add_argument("-n", "--conversations", type=int, default=100)
    parser.add_argument("--messages", type=int, default=3, help="messages per conversation")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds to open all conversations")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a reply's done frame"
    )
    parser.add_argument(
        "--think", type=float, default=0.0, help="pause between a done and the next message"
    )
    parser.add_argument("--locale", default="en")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        metavar="N",
        help="first run N conversations of 2 messages, not counted (loads models, fills pools)",
    )
    parser.add_argument(
        "--check-db",
        metavar="DATABASE_URL",
        help="also compare every reply with the text stored in this database",
    )
    parser.add_argument(
        "--wait-ready",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for the server's /healthz",
    )
    args = parser.parse_args(argv)
    host = urlsplit(args.url).hostname or ""
    if host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("loopback only: --url must point at 127.0.0.1, localhost or ::1")
    if args.conversations < 1 or args.messages < 1:
        parser.error("--conversations and --messages must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wait_ready:
        wait_ready(args.url, args.wait_ready)
    if args.warmup:
        warm = argparse.Namespace(**{**vars(args), "conversations": args.warmup, "messages": 2})
        warm.ramp, warm.think = 0.0, 0.0
        asyncio.run(run_all(warm))
    runs, wall = asyncio.run(run_all(args))
    if args.check_db:
        problems, checked = check_database(runs, args.check_db)
        found = ", ".join(f"{k}={v}" for k, v in problems.items()) or "all complete, as expected"
        print(f"database check          {checked} replies read after the run: {found}")
    return report(runs, args=args, wall=wall)


if __name__ == "__main__":
    raise SystemExit(main())

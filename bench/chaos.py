"""Chaos run: widget-like conversations against 2 Daphne processes while faults are injected.

It starts its own stack and stops it at the end (also on Ctrl-C): a PostgreSQL of its own (the
packaged server, in --data-dir, default .data/chaos), a redis-server of its own on a free port
(never the shared one on 6379), and `scripts/serve.py --processes 2` (SO_REUSEPORT) with the
fake backend and a 5 s reply lease. N conversations talk to it, each a client that behaves like
chat/static/chat/widget.js: reconnect with exponential backoff and jitter, `hello` with its
token, conversation id and last seen message id, resend unacknowledged messages with the same
client_id, follow a reply marked `interrupted` to the regenerated one, re-`hello` when a reply
stalls, ping; a message the server refuses with an error frame (the widget shows "Not sent."
and a Retry button) is sent again by the visitor 3 s later. Meanwhile, each at a set time:
`kill -9` one Daphne process (the supervisor starts it again), restart Redis (it keeps
nothing: channel layer and live texts are lost), stop PostgreSQL for a few seconds.

Every reply is checked against the fake backend's deterministic text and, at the end, against
the database. Prints messages sent, replies delivered, lost (must be 0), duplicated text (must
be 0), replies regenerated, reconnects and each fault's heal time (defined in HEAL_DEFINITION,
printed with it); exits 1 on any loss or duplicate, or when a fault could not be injected.
`--explain` prints what the slowest client of each fault and the lost ones saw.

    .venv/bin/python bench/chaos.py             # 500 conversations, about 2 minutes of traffic
    .venv/bin/python bench/chaos.py --short     # 60 conversations, faults compressed (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.typing import Origin  # noqa: E402
from ws_chat import (  # noqa: E402
    ConversationRun,
    Turn,
    check_database,
    expected_reply,
    fmt,
    percentile,
    question,
)

from bench.limits import LIFTED  # noqa: E402

PY = sys.executable
DB_NAME = "autoglm_chaos"

# The widget's timings (chat/static/chat/widget.js): reconnect backoff, heartbeat, stall.
BACKOFF_BASE, BACKOFF_MAX = 0.5, 15.0
PING_EVERY, PONG_WAIT = 25.0, 10.0
STALL_HELLO = 20.0
# A visitor whose message the widget shows "Not sent." presses Retry after a moment.
VISITOR_RETRY = 3.0

HEAL_DEFINITION = (
    "heal time: the clients affected by a fault are those with a message in flight at the "
    "fault (sent, its reply not yet complete) and those whose socket closed within 5 s after "
    "it. A client has healed once every message it had in flight has its complete reply and "
    "it holds a welcomed socket again. Heal = from the fault (kill, Redis stop, PostgreSQL "
    "stop) to the last affected client healed (p50 over the affected clients in brackets); "
    "'first reply' = the first complete reply delivered to anyone after the fault."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the stack: PostgreSQL, Redis, Daphne processes ----------------------------------------
class Stack:
    """The chaos run's own servers; stop() ends every process it started."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data = Path(args.data_dir).resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = args.port or free_port()
        self.redis_port = args.redis_port or free_port()
        self.pid_file = self.data / "serve.json"
        self.server_log = self.data / "server.log"
        self.redis_log = self.data / "redis.log"
        self.redis: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.pg_started = False
        self.database_url = f"postgresql://postgres@/{DB_NAME}?host={self.data / 'pg'}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    def _pg_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env.pop("DATABASE_URL_FILE", None)
        env.update(AUTOGLM_DATA_DIR=str(self.data), AUTOGLM_EMBEDDED_DB_NAME=DB_NAME)
        return env

    def pg_start(self) -> None:
        code = (
            "from autoglm_site.embedded import ensure_database; "
            f"ensure_database(database={DB_NAME!r})"
        )
        subprocess.run([PY, "-c", code], cwd=ROOT, env=self._pg_env(), check=True, timeout=60)
        self.pg_started = True

    def pg_stop(self) -> None:
        # pg_ctl stop -m fast (autoglm_site.embedded.stop_database), on this run's data folder.
        code = "from autoglm_site.embedded import stop_database; stop_database()"
        subprocess.run([PY, "-c", code], cwd=ROOT, env=self._pg_env(), check=True, timeout=60)

    def migrate(self) -> None:
        subprocess.run(
            [PY, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=self._pg_env(),
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=300,
        )
        self.pg_started = True

    def redis_start(self) -> None:
        (self.data / "redis").mkdir(exist_ok=True)
        self.redis = subprocess.Popen(
            [
                self.args.redis_server,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data / "redis"),
                "--logfile",
                str(self.redis_log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches this script, which stops it in order
        )
        deadline = time.monotonic() + 15
        while not self.redis_ping():
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.redis_log}")
            time.sleep(0.05)

    def redis_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def redis_stop(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait()
        self.redis = None

    def server_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DATABASE_URL_FILE", None)
        env.update(
            AUTOGLM_DATA_DIR=str(self.data),
            DATABASE_URL=self.database_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            SECRET_KEY="chaos-only-secret-key-not-for-production-0123456789",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DEBUG="false",
            LLM_BACKEND="chat.llm.fake.FakeBackend",
            CHAT_NO_KNOWLEDGE_REPLY="model",
            CHAT_REPLY_LANGUAGE_CHECK="false",  # the fake answers every language in English
            LLM_FAKE_FIRST_TOKEN_MS=str(self.args.first_token_ms),
            LLM_FAKE_TOKEN_MS=str(self.args.token_ms),
            **LIFTED,
            CHAT_REPLY_LEASE_SECONDS=str(self.args.lease),
            DATABASE_CONN_MAX_AGE="60",
            LOG_LEVEL=os.environ.get("CHAOS_LOG_LEVEL", "WARNING"),
        )
        return env

    def server_start(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        log = self.server_log.open("ab")
        log.write(f"\n=== chaos run {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        log.flush()
        self.server = subprocess.Popen(
            [
                PY,
                "scripts/serve.py",
                "--processes",
                str(self.args.processes),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--restart-delay",
                str(self.args.restart_delay),
                "--pid-file",
                str(self.pid_file),
            ],
            cwd=ROOT,
            env=self.server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(120)

    def workers(self) -> list[int]:
        try:
            return [int(pid) for pid in json.loads(self.pid_file.read_text())["workers"]]
        except (OSError, ValueError, KeyError):
            return []

    def wait_ready(self, seconds: float) -> None:
        """Every worker listed and answering: several /healthz in a row (the kernel spreads
        new connections over the processes, so a worker still starting would stall one)."""
        deadline = time.monotonic() + seconds
        good = 0
        while good < 4 * self.args.processes:
            assert self.server is not None
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.server_log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server is not ready after {seconds:.0f} s")
            if len(self.workers()) < self.args.processes:
                time.sleep(0.3)
                continue
            try:
                url = f"http://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=3) as response:
                    good = good + 1 if response.status == 200 else 0
            except OSError:
                good = 0
                time.sleep(0.3)

    def server_stop(self) -> None:
        if self.server is None:
            return
        workers = self.workers()
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        for pid in workers:  # the supervisor stops them; this is only the backstop
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.server = None

    def stop(self) -> None:
        errors: list[str] = []
        for step in (self.server_stop, self.redis_stop):
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"{step.__name__}: {exc}")
        if self.pg_started:
            try:
                self.pg_stop()
            except Exception as exc:
                errors.append(f"pg_stop: {exc}")
        for error in errors:
            print(f"chaos: stopping: {error}", file=sys.stderr)


# --- a client that behaves like the widget ------------------------------------------------
@dataclass
class Shown:
    """A message as the client holds it (the widget's state.messages entry)."""

    id: int
    role: str
    text: str = ""
    status: str = ""
    reply_to: int | None = None
    client_id: str = ""


@dataclass
class Outgoing:
    turn: Turn
    state: str = "queued"  # queued | sending | failed (the widget's outbox states)
    failed_at: float = 0.0


@dataclass
class Client:
    index: int
    tag: str
    args: argparse.Namespace
    url: str
    clock: Clock
    rng: random.Random
    run: ConversationRun = field(init=False)
    token: str | None = None
    conversation_id: str | None = None
    messages: dict[int, Shown] = field(default_factory=dict)
    outbox: list[Outgoing] = field(default_factory=list)
    ws: ClientConnection | None = None
    ready: bool = False
    attempt: int = 0
    # (time, "close" | "welcome"), for heal times.
    timeline: list[tuple[float, str]] = field(default_factory=list)
    welcomes: int = 0
    opened: int = 0  # sockets opened
    closes: int = 0  # sockets closed or failed to open, each followed by a backoff
    refused: int = 0  # messages the server answered with an error frame (shown "Not sent.")
    duplicated: Counter[str] = field(default_factory=Counter)
    oddities: Counter[str] = field(default_factory=Counter)
    current: Turn | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stall_at: float | None = None
    pong_deadline: float | None = None
    trace: list[str] = field(default_factory=list)  # with --explain: what this client saw

    def note(self, what: str) -> None:
        if self.args.explain:
            self.trace.append(f"{self.clock.now():7.2f} {what}")

    def __post_init__(self) -> None:
        self.run = ConversationRun(index=self.index)

    # --- what the widget keeps ----------------------------------------------------------
    def upsert(self, payload: dict[str, Any], *, source: str) -> None:
        message_id = int(payload["id"])
        old = self.messages.get(message_id)
        new_text = str(payload.get("text") or "")
        if old is not None:
            if not (new_text.startswith(old.text) or old.text.startswith(new_text)):
                # The widget replaces the local copy: text shown changes under the visitor.
                self.duplicated[f"{source}_rewrote_shown_text"] += 1
            elif len(new_text) < len(old.text):
                self.oddities[f"{source}_shorter_than_shown"] += 1
            old.text, old.status = new_text, str(payload.get("status") or old.status)
            old.reply_to = payload.get("reply_to", old.reply_to)
        else:
            old = self.messages[message_id] = Shown(
                id=message_id,
                role=str(payload.get("role") or ""),
                text=new_text,
                status=str(payload.get("status") or ""),
                reply_to=payload.get("reply_to"),
                client_id=str(payload.get("client_id") or ""),
            )
        client_id = payload.get("client_id")
        if client_id:
            for item in [o for o in self.outbox if o.turn.client_id == client_id]:
                item.turn.message_id = message_id
                self.outbox.remove(item)

    def last_seen(self) -> int | None:
        seen = None
        for message_id in sorted(self.messages):
            if self.messages[message_id].role == "assistant" and self.messages[
                message_id
            ].status in {"pending", "streaming"}:
                break
            seen = message_id
        return seen

    def active(self) -> bool:
        return any(
            m.role == "assistant" and m.status in {"pending", "streaming"}
            for m in self.messages.values()
        )

    # --- sending ------------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> bool:
        ws = self.ws
        if ws is None or (not self.ready and frame["type"] != "hello"):
            return False
        try:
            await ws.send(json.dumps(frame, ensure_ascii=False))
        except ConnectionClosed:
            return False
        if frame["type"] != "ping":
            self.note(f"-> {frame['type']} {frame.get('client_id') or frame.get('last_seen_id')}")
        return True

    async def hello(self) -> None:
        await self.send(
            {
                "type": "hello",
                "token": self.token,
                "locale": self.args.locale,
                "conversation_id": self.conversation_id,
                "last_seen_id": self.last_seen() if self.conversation_id else None,
            }
        )

    async def flush_outbox(self) -> None:
        for item in list(self.outbox):
            if item.state != "failed":
                frame = {"type": "message", "client_id": item.turn.client_id}
                if await self.send({**frame, "text": item.turn.text}):
                    item.state = "sending"

    # --- frames -------------------------------------------------------------------------
    async def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        now = self.clock.now()
        if self.args.explain:
            brief = {k: v for k, v in frame.items() if k not in {"token", "limits", "usage"}}
            if kind == "welcome":
                brief["messages"] = [
                    (m["id"], m["role"][0], m["status"], len(m["text"]), m.get("reply_to"))
                    for m in frame.get("messages") or []
                ]
            if kind == "delta":
                brief["text"] = len(frame["text"])
            self.note(f"<- {json.dumps(brief, ensure_ascii=False)[:300]}")
        if kind == "welcome":
            self.ready = True
            self.attempt = 0
            self.welcomes += 1
            self.timeline.append((now, "welcome"))
            self.token = frame.get("token")
            if frame.get("conversation_id"):
                self.conversation_id = frame["conversation_id"]
            for payload in frame.get("messages") or []:
                self.upsert(payload, source="welcome")
            await self.flush_outbox()
        elif kind == "ack":
            self.conversation_id = frame["conversation_id"]
            for item in [o for o in self.outbox if o.turn.client_id == frame["client_id"]]:
                self.outbox.remove(item)
                item.turn.ack_at = item.turn.ack_at or now
            turn = self.turn_for(frame["client_id"])
            if turn is not None:
                turn.message_id = frame["message_id"]
                turn.ack_at = turn.ack_at or now
            if frame["message_id"] not in self.messages:
                text = turn.text if turn is not None else ""
                self.upsert(
                    {
                        "id": frame["message_id"],
                        "role": "user",
                        "text": text,
                        "status": "complete",
                        "client_id": frame["client_id"],
                    },
                    source="ack",
                )
            reply_id = frame.get("reply_id")
            if reply_id and reply_id not in self.messages:
                self.upsert(
                    {
                        "id": reply_id,
                        "role": "assistant",
                        "status": "pending",
                        "reply_to": frame["message_id"],
                    },
                    source="ack",
                )
        elif kind == "message":
            self.upsert(frame["message"], source="message")
        elif kind == "delta":
            message_id, offset, text = int(frame["message_id"]), int(frame["offset"]), frame["text"]
            shown = self.messages.get(message_id)
            if shown is None:
                shown = self.messages[message_id] = Shown(
                    id=message_id, role="assistant", status="streaming"
                )
            if offset > len(shown.text):  # a gap: the widget closes and takes the stored text
                self.oddities["gap_reconnect"] += 1
                if self.ws is not None:
                    await self.ws.close()
                return
            overlap = shown.text[offset : offset + len(text)]
            if overlap != text[: len(overlap)]:
                self.duplicated["delta_overlap_differs"] += 1
            if offset + len(text) < len(shown.text):
                self.oddities["delta_behind_shown"] += 1
            if shown.status not in {"pending", "streaming"}:
                self.oddities[f"delta_after_{shown.status or 'unknown'}"] += 1
            shown.text = shown.text[:offset] + text
            shown.status = "streaming"
        elif kind == "done":
            shown = self.messages.get(int(frame["message_id"]))
            if shown is not None:
                shown.status = str(frame.get("status"))
                if shown.status == "interrupted":
                    self.oddities["done_interrupted"] += 1
        elif kind == "error":
            code = str(frame.get("code"))
            self.run.errors[code] += 1
            if code in {"invalid_token", "conversation_not_found"}:
                if code == "invalid_token":
                    self.token = None
                self.conversation_id = None
                self.messages.clear()
                await self.hello()
            elif frame.get("client_id"):
                items = [o for o in self.outbox if o.turn.client_id == frame["client_id"]]
                for item in items:
                    item.state, item.failed_at = "failed", now
                    self.refused += 1
                if not items:  # the message was acknowledged before the error
                    self.oddities[f"error_{code}_after_ack"] += 1
            else:  # the widget shows it for 8 s and does nothing else
                self.oddities[f"error_{code}_without_client_id"] += 1
        elif kind == "pong":
            self.pong_deadline = None
            return
        else:
            return
        self.check_turn(now)
        self.changed.set()  # the visitor's loop looks again (a Retry may be due)
        # The widget's render(): a stall timer while a reply is active.
        self.stall_at = now + STALL_HELLO if self.ready and self.active() else None

    def turn_for(self, client_id: str) -> Turn | None:
        for turn in self.run.turns:
            if turn.client_id == client_id:
                return turn
        return None

    def check_turn(self, now: float) -> None:
        """Is the message in flight answered? Its newest reply decides, as the widget shows it
        (an interrupted reply that was regenerated is shown as its newer reply)."""
        turn = self.current
        if turn is None or turn.message_id is None or turn.done_at is not None:
            return
        replies = [
            m
            for m in self.messages.values()
            if m.role == "assistant"
            and (m.reply_to == turn.message_id or (m.reply_to is None and m.id > turn.message_id))
        ]
        if not replies:
            return
        newest = max(replies, key=lambda m: m.id)
        turn.interrupted = sorted(m.id for m in replies if m.status == "interrupted")
        if newest.status in {"pending", "streaming", "interrupted"}:
            if newest.status == "streaming" and turn.first_delta_at is None and newest.text:
                turn.first_delta_at = now
            return
        turn.reply_id, turn.reply_text, turn.status = newest.id, newest.text, newest.status
        turn.done_at = now

    # --- the connection -----------------------------------------------------------------
    async def connection(self) -> None:
        """Forever: one socket at a time, reopened with the widget's backoff."""
        while True:
            opened = False
            try:
                async with connect(
                    self.url,
                    origin=Origin(f"http://127.0.0.1:{urlport(self.url)}"),
                    open_timeout=self.args.open_timeout,
                    ping_interval=None,  # the widget pings with its own frames
                    close_timeout=1,
                    compression=None,
                    max_queue=None,
                ) as ws:
                    opened = True
                    self.opened += 1
                    self.ws = ws
                    await self.hello()
                    await self.read(ws)
            except asyncio.CancelledError:
                self.ws = None
                raise  # the visitor is done
            except Exception as exc:  # a refused, reset or timed-out socket: reconnect
                if not opened:
                    self.oddities[f"open_failed_{type(exc).__name__}"] += 1
            self.ws = None
            self.ready = False
            self.stall_at = self.pong_deadline = None
            if opened:
                self.timeline.append((self.clock.now(), "close"))
            self.note("socket closed" if opened else "socket did not open")
            for item in self.outbox:
                if item.state == "sending":
                    item.state = "queued"
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**self.attempt)
            delay *= 0.7 + self.rng.random() * 0.6
            self.attempt += 1
            self.closes += 1
            await asyncio.sleep(delay)

    async def read(self, ws: ClientConnection) -> None:
        next_ping: float | None = None
        while True:
            now = self.clock.now()
            if self.ready and next_ping is None:
                next_ping = now + PING_EVERY  # the widget's heartbeat() starts at welcome
            deadlines = [t for t in (next_ping, self.pong_deadline, self.stall_at) if t]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            try:
                async with asyncio.timeout(wait):
                    raw = await ws.recv()
            except TimeoutError:
                now = self.clock.now()
                if self.pong_deadline is not None and now >= self.pong_deadline:
                    self.oddities["pong_timeout_close"] += 1
                    await ws.close()
                    return
                if next_ping is not None and now >= next_ping:
                    next_ping = now + PING_EVERY
                    if await self.send({"type": "ping"}):
                        self.pong_deadline = now + PONG_WAIT
                if self.stall_at is not None and now >= self.stall_at:
                    self.stall_at = None
                    self.oddities["stall_hello"] += 1
                    await self.hello()
                continue
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            await self.on_frame(frame)

    # --- the visitor ----------------------------------------------------------------------
    async def conversation(self, *, start_at: float, end_at: float) -> None:
        await self.clock.sleep_until(start_at)
        link = asyncio.create_task(self.connection())
        history: list[tuple[str, str]] = []
        try:
            number = 0
            while self.clock.now() < end_at:
                turn = Turn(
                    client_id=f"{self.tag}-{self.index}-{number}", text=question(self.index, number)
                )
                number += 1
                history.append(("user", turn.text))
                turn.expected = expected_reply(history)
                self.run.turns.append(turn)
                self.current = turn
                turn.sent_at = self.clock.now()
                self.outbox.append(Outgoing(turn))
                await self.flush_outbox()
                await self.wait_answered(turn)
                if turn.done_at is None:
                    turn.lost = "timeout_no_ack" if turn.message_id is None else "timeout_no_reply"
                    break
                if turn.status != "complete":
                    turn.lost = f"status_{turn.status}"
                    break
                if turn.reply_text != turn.expected:
                    turn.lost = "text_mismatch"
                    break
                history.append(("assistant", turn.reply_text))
                think = self.args.think * (0.5 + self.rng.random())
                await asyncio.sleep(min(think, max(0.0, end_at - self.clock.now())))
        finally:
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link
            self.current = None
            self.run.connected = self.welcomes > 0

    async def wait_answered(self, turn: Turn) -> None:
        deadline = turn.sent_at + self.args.timeout
        while turn.done_at is None:
            now = self.clock.now()
            if now >= deadline:
                return
            wait = deadline - now
            for item in self.outbox:  # the visitor presses Retry on a message "Not sent."
                if item.state == "failed":
                    retry_at = item.failed_at + VISITOR_RETRY
                    if now >= retry_at:
                        item.state = "queued"
                        await self.flush_outbox()
                    else:
                        wait = min(wait, retry_at - now)
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.changed.wait()
            self.check_turn(self.clock.now())


def urlport(url: str) -> int:
    from urllib.parse import urlsplit

    return int(urlsplit(url).port or 80)


class Clock:
    """Seconds since the run started."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.wall_started = time.time()  # to place the server log's lines on the same clock

    def now(self) -> float:
        return time.perf_counter() - self.started

    async def sleep_until(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - self.now()))


# --- faults ----------------------------------------------------------------------------------
@dataclass
class Fault:
    name: str
    at: float  # planned, seconds since the start
    started: float | None = None
    restored: float | None = None  # the worker back, Redis or PostgreSQL up again
    detail: str = ""
    error: str = ""


async def inject(fault: Fault, stack: Stack, clock: Clock, args: argparse.Namespace) -> None:
    await clock.sleep_until(fault.at)
    try:
        if fault.name == "kill":
            workers = stack.workers()
            if not workers:
                fault.error = "no worker pid in the pid file"
                return
            victim = workers[0]
            fault.started = clock.now()
            os.kill(victim, signal.SIGKILL)
            fault.detail = f"kill -9 Daphne pid {victim}"
            while True:  # the supervisor starts it again after --restart-delay
                await asyncio.sleep(0.1)
                now_workers = stack.workers()
                if victim not in now_workers and len(now_workers) >= args.processes:
                    fault.restored = clock.now()
                    new = sorted(set(now_workers) - set(workers))
                    fault.detail += f", started again as pid {new[0] if new else '?'}"
                    break
                if clock.now() - fault.started > 60:
                    fault.error = "the worker was not started again within 60 s"
                    break
        elif fault.name == "redis":
            fault.started = clock.now()
            await asyncio.to_thread(stack.redis_stop)
            await asyncio.sleep(args.redis_down)
            await asyncio.to_thread(stack.redis_start)
            fault.restored = clock.now()
            fault.detail = f"redis-server :{stack.redis_port} stopped, started again (empty)"
        elif fault.name == "postgres":
            fault.started = clock.now()
            await asyncio.to_thread(stack.pg_stop)
            stopped = clock.now()
            await asyncio.sleep(args.pg_down)
            await asyncio.to_thread(stack.pg_start)
            fault.restored = clock.now()
            fault.detail = (
                f"pg_ctl stop -m fast (took {stopped - fault.started:.1f} s), started again"
            )
    except Exception as exc:
        fault.error = f"{type(exc).__name__}: {exc}"


@dataclass
class Heal:
    affected: int = 0
    healed: int = 0
    times: list[float] = field(default_factory=list)
    first_reply: float | None = None
    slowest: Client | None = None  # the last to heal, or one that never did


def heal_of(fault: Fault, clients: list[Client]) -> Heal:
    heal = Heal()
    t0 = fault.started
    if t0 is None:
        return heal
    turns = [t for c in clients for t in c.run.turns]
    after = [t.done_at for t in turns if t.done_at is not None and t.done_at > t0]
    heal.first_reply = min(after) - t0 if after else None
    for client in clients:
        in_flight = [
            t
            for t in client.run.turns
            if t.sent_at <= t0 and (t.done_at is None or t.done_at > t0) and t.sent_at
        ]
        closed = [at for at, what in client.timeline if what == "close" and t0 <= at <= t0 + 5]
        if not in_flight and not closed:
            continue
        heal.affected += 1
        if any(t.done_at is None or t.lost for t in in_flight):
            heal.slowest = client
            heal.times.append(float("inf"))
            continue  # never healed: counted as affected, not healed
        answered = max((t.done_at for t in in_flight if t.done_at is not None), default=t0)
        healed_at: float | None = None
        # Ready at `answered`, or the first welcome after it.
        state = "welcome"
        for at, what in client.timeline:
            if at <= answered:
                state = what
            elif state == "close" and what == "welcome":
                healed_at = at
                break
        if state == "welcome" and healed_at is None:
            healed_at = answered
        if healed_at is None:
            heal.slowest = client
            heal.times.append(float("inf"))
            continue
        heal.healed += 1
        if all(healed_at - t0 > t for t in heal.times):
            heal.slowest = client
        heal.times.append(healed_at - t0)
    heal.times = [t for t in heal.times if t != float("inf")]
    return heal


# --- the run ---------------------------------------------------------------------------------
async def warm_up(args: argparse.Namespace, stack: Stack) -> None:
    """A few one-message conversations before the clock starts, not counted: a fresh process
    loads its query embedder in the background, and the first fault should find it warm."""
    clock = Clock()
    tag = f"w{uuid.uuid4().hex[:8]}"
    clients = [
        Client(index=i, tag=tag, args=args, url=stack.url, clock=clock, rng=random.Random(i))
        for i in range(4 * args.processes)
    ]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(120):
            await asyncio.gather(*(c.conversation(start_at=0, end_at=0.5) for c in clients))
    answered = sum(1 for c in clients for t in c.run.turns if t.done_at is not None)
    print(f"chaos: warm-up, {answered} of {len(clients)} replies", file=sys.stderr, flush=True)


async def run_all(
    args: argparse.Namespace, stack: Stack
) -> tuple[list[Client], list[Fault], float]:
    await warm_up(args, stack)
    clock = Clock()
    args.wall_started = clock.wall_started
    rng = random.Random(args.seed)
    tag = f"c{uuid.uuid4().hex[:8]}"
    clients = [
        Client(
            index=i,
            tag=tag,
            args=args,
            url=stack.url,
            clock=clock,
            rng=random.Random(rng.random()),
        )
        for i in range(args.conversations)
    ]
    faults = [
        Fault("kill", args.kill_at),
        Fault("redis", args.redis_at),
        Fault("postgres", args.pg_at),
    ]
    faults = [f for f in faults if f.at >= 0]
    step = args.ramp / args.conversations
    tasks = [
        asyncio.create_task(c.conversation(start_at=i * step, end_at=args.duration))
        for i, c in enumerate(clients)
    ]
    fault_tasks = [asyncio.create_task(inject(f, stack, clock, args)) for f in faults]
    bound = args.duration + args.timeout + 30
    done, pending = await asyncio.wait(tasks, timeout=bound)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            print(f"chaos: a client failed: {task.exception()!r}", file=sys.stderr)
    await asyncio.gather(*fault_tasks, return_exceptions=True)
    for client, task in zip(clients, tasks, strict=True):
        if task in pending:
            client.run.failure = "hung"
            for turn in client.run.turns:
                if turn.done_at is None and not turn.lost:
                    turn.lost = "hung"
    return clients, faults, clock.now()


def database_extra(clients: list[Client]) -> tuple[Counter[str], int]:
    """What the database holds for the run's conversations beyond each reply's text: replies
    left active, questions with more than one complete reply, interrupted replies."""
    from chat.models import Message

    ids = [c.conversation_id for c in clients if c.conversation_id]
    found: Counter[str] = Counter()
    rows = list(
        Message.objects.filter(conversation_id__in=ids).values_list(
            "id", "role", "status", "reply_to_id", "client_id"
        )
    )
    complete_per_question: Counter[int] = Counter()
    ours = {t.client_id for c in clients for t in c.run.turns}
    for _pk, role, status, reply_to, client_id in rows:
        if role == "assistant":
            if status in {"pending", "streaming"}:
                found[f"reply_left_{status}"] += 1
            if status == "complete" and reply_to is not None:
                complete_per_question[reply_to] += 1
            if status == "interrupted":
                found["interrupted"] += 1
        elif client_id not in ours:
            found["user_message_not_sent_by_us"] += 1
    found["question_with_two_complete_replies"] = sum(
        1 for n in complete_per_question.values() if n > 1
    )
    return found, len(rows)


def explain(client: Client, why: str, *, since: float) -> None:
    print(f"    --- conversation {client.index} ({client.conversation_id}), {why}:")
    for turn in client.run.turns:
        print(
            f"      turn {turn.client_id} sent {turn.sent_at:.2f} message {turn.message_id} "
            f"reply {turn.reply_id} interrupted {turn.interrupted} done {fmt(turn.done_at)} "
            f"lost {turn.lost or '-'}"
        )
    for line in client.trace:
        if float(line.split()[0]) >= since:
            print(f"      {line}")


def log_summary(path: Path, since: int) -> tuple[int, int, Counter[str]]:
    """(ERROR lines, tracebacks, the most common error messages) in the server log since
    byte SINCE."""
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return 0, 0, Counter()
    errors = [line for line in lines if " ERROR " in line or line.startswith("ERROR")]
    tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
    kinds: Counter[str] = Counter()
    for line in lines:
        if " ERROR " in line or " WARNING " in line:
            line = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<uuid>", line.split(" ", 3)[-1])
            kinds[re.sub(r"\d+", "N", line)[:110]] += 1
    return len(errors), tracebacks, kinds


def server_events(path: Path, since: int, wall_started: float) -> dict[str, list[float]]:
    """Run-clock times of the server log lines that tell how replies fared: replies taken over
    after their heartbeat went stale (the generator was alive but had not checkpointed for a
    lease), generations that failed, sockets closed to resynchronise."""
    patterns = {
        "taken_over": "was taken over after its heartbeat went stale",
        "gen_failed": "reply generation for conversation",
        "resync": "closing the socket to resynchronise",
    }
    found: dict[str, list[float]] = {name: [] for name in patterns}
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return found
    for line in lines:
        for name, pattern in patterns.items():
            if pattern in line:
                try:
                    stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
                except ValueError:
                    continue
                found[name].append(stamp + int(line[20:23]) / 1000 - wall_started)
    return found


def timeline(clients: list[Client], events: dict[str, list[float]], faults: list[Fault]) -> None:
    """Per 10 s of the run: messages sent, replies completed, messages in flight at the end of
    the 10 s, sockets closed, and the server's replies taken over and failed generations."""
    turns = [t for c in clients for t in c.run.turns]
    closes = [at for c in clients for at, what in c.timeline if what == "close"]
    end = max([t.done_at or t.sent_at for t in turns] + [10.0])
    marks = {int(f.started // 10): f.name for f in faults if f.started is not None}
    print("timeline (10 s bins)     sent complete in-flight closes taken-over gen-failed resync")
    for start in range(0, int(end) + 10, 10):
        stop = start + 10

        def within(values: list[float], lo: int = start, hi: int = stop) -> int:
            return sum(1 for v in values if lo <= v < hi)

        flying = sum(1 for t in turns if t.sent_at < stop and (t.done_at or 1e9) >= stop)
        print(
            f"  {start:>4}-{stop:<4} s {marks.get(start // 10, ''):>9}"
            f" {within([t.sent_at for t in turns]):>5}"
            f" {within([t.done_at for t in turns if t.done_at]):>8}"
            f" {flying:>9} {within(closes):>6} {within(events['taken_over']):>10}"
            f" {within(events['gen_failed']):>10} {within(events['resync']):>6}"
        )


def report(
    clients: list[Client],
    faults: list[Fault],
    *,
    args: argparse.Namespace,
    stack: Stack,
    wall: float,
    db_problems: Counter[str],
    db_checked: int,
    db_extra: Counter[str],
    log_since: int,
) -> int:
    turns = [t for c in clients for t in c.run.turns]
    sent = [t for t in turns if t.sent_at]
    acked = [t for t in turns if t.message_id is not None]
    delivered = [t for t in turns if not t.lost and t.done_at is not None]
    lost = [t for t in turns if t.lost]
    duplicated: Counter[str] = Counter()
    oddities: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for client in clients:
        duplicated.update(client.duplicated)
        oddities.update(client.oddities)
        errors.update(client.run.errors)
        complete: Counter[int] = Counter(
            m.reply_to for m in client.messages.values() if m.status == "complete" and m.reply_to
        )
        duplicated["reply_shown_twice"] += sum(1 for n in complete.values() if n > 1)
    duplicated["stored_question_with_two_complete_replies"] = db_extra.pop(
        "question_with_two_complete_replies", 0
    )
    duplicated = +duplicated
    regenerated = [t for t in delivered if t.interrupted]
    reply_ms = [(t.done_at - t.sent_at) * 1000 for t in delivered if t.done_at]
    ack_ms = [(t.ack_at - t.sent_at) * 1000 for t in acked if t.ack_at]
    reconnects = sum(c.opened - 1 for c in clients if c.opened > 1)
    n_lost, n_dup = len(lost), sum(duplicated.values())

    print(
        f"chaos run               {len(clients)} conversations, {args.processes} Daphne processes "
        f"on 127.0.0.1:{stack.port} (scripts/serve.py), own Redis :{stack.redis_port}, "
        f"own PostgreSQL in {stack.data / 'pg'}; lease {args.lease:g} s; {wall:.1f} s"
    )
    print(
        f"traffic                 ramp {args.ramp:g} s, talking until {args.duration:g} s, "
        f"think {args.think:g} s (x0.5-1.5), reply timeout {args.timeout:g} s"
    )
    print(f"messages sent           {len(sent)} ({len(acked)} acknowledged)")
    print(
        f"replies delivered       {len(delivered)} complete and verified "
        "(text = the fake backend's, and the database's)"
    )
    print(f"lost                    {n_lost}")
    for reason, count in Counter(t.lost for t in lost).most_common():
        print(f"  {reason:<40} {count}")
    print(f"duplicated text         {n_dup}")
    for reason, count in duplicated.most_common():
        print(f"  {reason:<40} {count}")
    print(
        f"replies regenerated     {len(regenerated)} (a reply marked interrupted, followed to "
        f"its regenerated one; database: {db_extra.get('interrupted', 0)} interrupted rows)"
    )
    print(
        f"reconnects              {reconnects} (sockets opened again after a close; "
        f"{sum(c.closes for c in clients)} closes or failed opens, each followed by a backoff)"
    )
    refused = sum(c.refused for c in clients)
    print(
        f"messages refused        {refused} (an error frame for the message: the widget shows "
        "'Not sent.', the visitor pressed Retry)"
    )
    print("latency (client-measured from sending the message)")
    print(
        f"  ack                      p50 {fmt(percentile(ack_ms, 50)):>8} ms   "
        f"p99 {fmt(percentile(ack_ms, 99)):>8} ms   max {fmt(max(ack_ms, default=None)):>8} ms"
    )
    print(
        f"  whole reply              p50 {fmt(percentile(reply_ms, 50)):>8} ms   "
        f"p99 {fmt(percentile(reply_ms, 99)):>8} ms   "
        f"max {fmt(max(reply_ms, default=None)):>8} ms"
    )
    print("faults")
    print("  " + HEAL_DEFINITION)
    not_injected = 0
    for fault in faults:
        heal = heal_of(fault, clients)
        if fault.started is None or fault.error:
            not_injected += 1
        if fault.started is None:
            print(f"  {fault.name:<9} planned at {fault.at:g} s: not injected ({fault.error})")
            continue
        outage = f"{fault.restored - fault.started:.1f} s" if fault.restored else "not restored"
        healed = (
            f"heal {max(heal.times):.1f} s (p50 {percentile(heal.times, 50):.1f} s)"
            if heal.times
            else "heal -"
        )
        if heal.healed < heal.affected:
            healed += f", {heal.affected - heal.healed} never healed"
        first = f"+{heal.first_reply:.2f} s" if heal.first_reply is not None else "none"
        print(
            f"  {fault.name:<9} at {fault.started:5.1f} s  {fault.detail}; down {outage}; "
            f"affected {heal.affected}, {healed}; first reply {first}"
            + (f"; ERROR {fault.error}" if fault.error else "")
        )
        if args.explain and heal.slowest is not None:
            explain(heal.slowest, f"slowest to heal after {fault.name}", since=fault.started - 2)
    found = ", ".join(f"{k}={v}" for k, v in db_problems.items()) or "all as expected"
    extra = ", ".join(f"{k}={v}" for k, v in db_extra.items() if v and k != "interrupted")
    print(
        f"database check          {db_checked} replies read after the run: {found}"
        + (f"; {extra}" if extra else "")
    )
    if errors:
        print("error frames            " + ", ".join(f"{k}={v}" for k, v in errors.most_common()))
    if oddities:
        print("client saw              " + ", ".join(f"{k}={v}" for k, v in oddities.most_common()))
    n_errors, n_tracebacks, kinds = log_summary(stack.server_log, log_since)
    print(
        f"server log              {stack.server_log} ({n_errors} ERROR lines, "
        f"{n_tracebacks} tracebacks)"
    )
    for line, count in kinds.most_common(8):
        print(f"  {count:>5} x {line}")
    timeline(clients, server_events(stack.server_log, log_since, args.wall_started), faults)
    if args.explain:
        shown = 0
        for client in clients:
            if (client.duplicated or any(t.lost for t in client.run.turns)) and shown < 5:
                shown += 1
                explain(client, "lost or duplicated", since=0.0)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine                 {os.cpu_count()} cores; started {args.started}, load average "
        f"{args.load_at_start} (1, 5, 15 min); at the end {load}"
    )
    if not_injected:
        print(f"faults not injected     {not_injected}: the run did not test what it says")
    print(f"result: lost={n_lost} duplicated={n_dup}")
    return 1 if n_lost or n_dup or not_injected else 0


# --short: the faults 15 s apart (each heals in about 10 s), traffic until 15 s after the last.
SHORT = {
    "conversations": 60,
    "ramp": 3.0,
    "duration": 53.0,
    "think": 2.0,
    "kill_at": 8.0,
    "redis_at": 23.0,
    "pg_at": 38.0,
    "timeout": 40.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--conversations", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2, help="Daphne processes")
    parser.add_argument("--ramp", type=float, default=15.0, help="seconds to open them all")
    parser.add_argument(
        "--duration", type=float, default=115.0, help="conversations start no message after this"
    )
    parser.add_argument(
        "--think", type=float, default=15.0, help="mean pause between a reply and the next message"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for a reply")
    parser.add_argument("--kill-at", type=float, default=25.0, help="kill -9 a worker (<0: off)")
    parser.add_argument("--redis-at", type=float, default=55.0, help="restart Redis (<0: off)")
    parser.add_argument("--pg-at", type=float, default=85.0, help="stop PostgreSQL (<0: off)")
    parser.add_argument("--redis-down", type=float, default=2.0, help="seconds Redis is down")
    parser.add_argument("--pg-down", type=float, default=4.0, help="seconds PostgreSQL is down")
    parser.add_argument("--lease", type=float, default=5.0, help="CHAT_REPLY_LEASE_SECONDS")
    parser.add_argument("--restart-delay", type=float, default=1.0, help="serve.py's")
    parser.add_argument("--first-token-ms", type=int, default=40)
    parser.add_argument("--token-ms", type=int, default=20)
    parser.add_argument("--open-timeout", type=float, default=20.0)
    parser.add_argument("--locale", default="en")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--port", type=int, default=0, help="Daphne's port (default: a free one)")
    parser.add_argument("--redis-port", type=int, default=0, help="default: a free one")
    parser.add_argument("--redis-server", default="redis-server")
    parser.add_argument(
        "--data-dir",
        default=str(ROOT / ".data" / "chaos"),
        help="this run's PostgreSQL, Redis folder and logs (never the shared .data/pg)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print what the slowest and the lost clients saw"
    )
    parser.add_argument(
        "--short", action="store_true", help="CI: 60 conversations, faults compressed (< 2 min)"
    )
    args = parser.parse_args(argv)
    if args.short:  # the short run's values, under any option given explicitly
        parser.set_defaults(**SHORT)
        args = parser.parse_args(argv)
    if args.conversations < 1 or args.processes < 1:
        parser.error("--conversations and --processes must be at least 1")
    if args.ramp <= 0:
        args.ramp = 0.001
    if (Path(args.data_dir).resolve() / "pg") == (ROOT / ".data" / "pg").resolve():
        parser.error("--data-dir must not be the shared .data: the run stops its PostgreSQL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = Stack(args)

    def stop_on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_term)
    try:
        print(
            f"chaos: PostgreSQL in {stack.data / 'pg'}, Redis :{stack.redis_port}, "
            f"Daphne x{args.processes} :{stack.port}; server log {stack.server_log}",
            file=sys.stderr,
            flush=True,
        )
        args.started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        args.load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
        stack.migrate()
        stack.redis_start()
        log_since = stack.server_log.stat().st_size if stack.server_log.exists() else 0
        stack.server_start()
        clients, faults, wall = asyncio.run(run_all(args, stack))
        # The database check needs PostgreSQL: a fault task that failed may have left it down.
        if not (stack.data / "pg" / "postmaster.pid").exists():
            stack.pg_start()
        runs = [c.run for c in clients]
        for run, client in zip(runs, clients, strict=True):
            run.conversation_id = client.conversation_id
        # This process reads the run's database only: no shared Redis, no default data folder.
        os.environ.pop("REDIS_URL", None)
        os.environ.pop("DATABASE_URL_FILE", None)
        os.environ["AUTOGLM_DATA_DIR"] = str(stack.data)
        problems, checked = check_database(runs, stack.database_url)
        extra, _rows = database_extra(clients)
        return report(
            clients,
            faults,
            args=args,
            stack=stack,
            wall=wall,
            db_problems=problems,
            db_checked=checked,
            db_extra=extra,
            log_since=log_since,
        )
    except KeyboardInterrupt:
        print("chaos: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())

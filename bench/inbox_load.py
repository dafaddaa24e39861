"""Inbox load check: V visitors waiting for a person and A agents working at once.

Each visitor says hello in its language, asks for a person, then sends --messages messages,
each after the agent's answer to the previous one. Each agent takes waiting conversations
(oldest first, from the `queue` events and the list endpoint), opens them and answers every
visitor message in German; every answer is translated into the visitor's language on the
way. At the end every message is checked both ways against the database: a visitor message no
agent saw, or an agent answer the visitor never got, counts as lost; exits 1 when one is.

    bench/serve_bench.sh --with .venv/bin/python bench/inbox_load.py --visitors 50 --agents 5

Run it through serve_bench.sh (or with the server's DATABASE_URL and SECRET_KEY set): it signs
the agents in by writing their sessions to the server's database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.typing import Origin  # noqa: E402

ASKS = {
    "ar": "أريد التحدث مع موظف",
    "es": "quiero hablar con una persona",
    "zh-hans": "转人工",
    "fr": "je veux parler à un humain",
    "ja": "オペレーターと話したい",
}


@dataclass
class Stats:
    agent_ack_ms: list[float] = field(default_factory=list)
    to_agent_ms: list[float] = field(default_factory=list)
    to_visitor_ms: list[float] = field(default_factory=list)
    translation_ms: list[float] = field(default_factory=list)
    wait_to_claim_s: list[float] = field(default_factory=list)
    visitor_sent: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    agent_saw: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    agent_sent: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    visitor_got: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    translated: set[int] = field(default_factory=set)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


def _agents_signed_in(count: int) -> list[str]:
    """COUNT agents (German speakers) in the server's database, and a session cookie each."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from django.utils import timezone

    from inbox.models import AGENTS_GROUP, AgentProfile

    group, _ = Group.objects.get_or_create(name=AGENTS_GROUP)
    cookies = []
    for n in range(count):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-agent-{n}")
        user.groups.add(group)
        AgentProfile.objects.update_or_create(
            user=user,
            defaults={
                "display_name": f"Agent {n}",
                "preferred_language": "de",
                "languages": ["de"],
                "last_seen_at": timezone.now(),
            },
        )
        client = Client()
        client.force_login(user)
        cookies.append(f"sessionid={client.cookies['sessionid'].value}")
    return cookies


def _stored_counts(conversation_ids: list[str]) -> dict[str, dict[str, int]]:
    from chat.models import Message

    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = Message.objects.filter(conversation_id__in=conversation_ids).values_list(
        "conversation_id", "role"
    )
    for conversation_id, role in rows:
        by_role = counts[str(conversation_id)]
        by_role[role] = by_role.get(role, 0) + 1
    return counts


async def _frames(ws: ClientConnection):  # type: ignore[no-untyped-def]
    async for raw in ws:
        yield json.loads(raw)


class Visitor:
    def __init__(self, index: int, args: argparse.Namespace, stats: Stats) -> None:
        self.language = list(ASKS)[index % len(ASKS)]
        self.args, self.stats = args, stats
        self.conversation_id = ""
        self.answered: asyncio.Queue[int] = asyncio.Queue()
        self.sent_at: dict[int, float] = {}

    async def run(self) -> None:
        origin = Origin(f"http://{urlsplit(self.args.url).netloc}")
        url = self.args.url.replace("http", "ws", 1) + "ws/chat/"
        async with connect(url, origin=origin, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "hello", "locale": self.language}))
            reader = asyncio.create_task(self._read(ws))
            try:
                await self._send(ws, ASKS[self.language], wait_agent=True)
                for turn in range(self.args.messages):
                    await asyncio.sleep(random.uniform(0, self.args.think))  # noqa: S311
                    await self._send(ws, f"سؤال {turn} @{time.time():.6f}", wait_agent=True)
                # The answers' translations follow their delivery: wait for them (20 s at most).
                deadline = time.monotonic() + 20
                while (
                    time.monotonic() < deadline and not set(self.sent_at) <= self.stats.translated
                ):
                    await asyncio.sleep(0.2)
            finally:
                reader.cancel()

    async def _send(self, ws: ClientConnection, text: str, *, wait_agent: bool) -> None:
        client_id = uuid.uuid4().hex
        self._acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await ws.send(json.dumps({"type": "message", "client_id": client_id, "text": text}))
        ack = await asyncio.wait_for(self._acked, 30)
        self.conversation_id = ack["conversation_id"]
        self.stats.visitor_sent[self.conversation_id].add(ack["message_id"])
        if wait_agent:
            await asyncio.wait_for(self.answered.get(), self.args.timeout)

    async def _read(self, ws: ClientConnection) -> None:
        async for frame in _frames(ws):
            kind = frame["type"]
            if kind == "ack" and not self._acked.done():
                self._acked.set_result(frame)
            elif kind == "message" and frame["message"]["role"] == "agent":
                message = frame["message"]
                got = self.stats.visitor_got[self.conversation_id]
                if message["id"] in got:
                    self.stats.duplicates += 1
                got.add(message["id"])
                sent = _stamp(message["text"])
                if sent:
                    self.stats.to_visitor_ms.append((time.time() - sent) * 1000)
                self.sent_at[message["id"]] = time.monotonic()
                if message["translation"] and message["translation"]["status"] == "done":
                    self.stats.translated.add(message["id"])
                self.answered.put_nowait(message["id"])
            elif kind == "translation" and frame["status"] == "done":
                self.stats.translated.add(frame["message_id"])
                if frame["message_id"] in self.sent_at:
                    self.stats.translation_ms.append(
                        (time.monotonic() - self.sent_at[frame["message_id"]]) * 1000
                    )
            elif kind == "error":
                self.stats.errors.append(f"visitor: {frame['code']}")


def _stamp(text: str) -> float | None:
    if "@" not in text:
        return None
    try:
        return float(text.rsplit("@", 1)[1].split()[0])
    except ValueError:
        return None


class Agent:
    def __init__(self, cookie: str, args: argparse.Namespace, stats: Stats, claims: set[str]):
        self.cookie, self.args, self.stats, self.claims = cookie, args, stats, claims
        self.acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.ws: ClientConnection | None = None
        self.mine: set[str] = set()
        self.done = asyncio.Event()
        self.wake = asyncio.Event()

    def _waiting(self) -> list[dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.args.url + "inbox/api/conversations?queue=waiting",
            headers={"Cookie": self.cookie},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return list(json.load(response)["conversations"])

    async def run(self) -> None:
        origin = Origin(f"http://{urlsplit(self.args.url).netloc}")
        url = self.args.url.replace("http", "ws", 1) + "ws/inbox/"
        async with connect(
            url, origin=origin, additional_headers={"Cookie": self.cookie}, max_queue=None
        ) as ws:
            self.ws = ws
            reader = asyncio.create_task(self._read(ws))
            try:
                while not self.done.is_set():
                    self.wake.clear()
                    await self._take()
                    await asyncio.sleep(1.0)  # the inbox page's throttle
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.args.poll)
            finally:
                reader.cancel()

    async def _take(self) -> None:
        if len(self.mine) >= self.args.per_agent:
            return
        waiting = await asyncio.to_thread(self._waiting)
        for conversation in waiting:
            conversation_id = conversation["id"]
            if conversation_id in self.claims or len(self.mine) >= self.args.per_agent:
                continue
            self.claims.add(conversation_id)  # agents of this bench do not fight over one
            self.mine.add(conversation_id)
            self.stats.wait_to_claim_s.append(conversation["waiting_seconds"] or 0)
            assert self.ws is not None
            await self.ws.send(json.dumps({"type": "open", "conversation_id": conversation_id}))

    async def _answer(self, conversation_id: str, message: dict[str, Any]) -> None:
        assert self.ws is not None
        sent = _stamp(message["text"])
        if sent:
            self.stats.to_agent_ms.append((time.time() - sent) * 1000)
        client_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[client_id] = future
        started = time.monotonic()
        text = f"Antwort auf Nachricht {message['id']} @{time.time():.6f}"
        await self.ws.send(
            json.dumps(
                {
                    "type": "send",
                    "conversation_id": conversation_id,
                    "client_id": client_id,
                    "text": text,
                }
            )
        )
        ack = await asyncio.wait_for(future, 30)
        self.stats.agent_ack_ms.append((time.monotonic() - started) * 1000)
        self.stats.agent_sent[conversation_id].add(ack["message_id"])

    async def _read(self, ws: ClientConnection) -> None:
        seen: set[int] = set()
        async for frame in _frames(ws):
            kind = frame["type"]
            if kind == "ack":
                future = self.acks.pop(frame["client_id"], None)
                if future is not None and not future.done():
                    future.set_result(frame)
            elif kind == "conversation" and "messages" in frame:
                conversation_id = frame["conversation"]["id"]
                for message in frame["messages"]:
                    if message["role"] == "user" and message["id"] not in seen:
                        seen.add(message["id"])
                        self.stats.agent_saw[conversation_id].add(message["id"])
                        asyncio.create_task(self._answer(conversation_id, message))
            elif kind == "message" and frame["message"]["role"] == "user":
                message, conversation_id = frame["message"], frame["conversation_id"]
                if conversation_id in self.mine and message["id"] not in seen:
                    seen.add(message["id"])
                    self.stats.agent_saw[conversation_id].add(message["id"])
                    asyncio.create_task(self._answer(conversation_id, message))
            elif kind == "queue" and frame["event"] == "waiting":
                self.wake.set()  # the page refreshes its lists at most once a second too
            elif kind == "error":
                self.stats.errors.append(f"agent: {frame['code']}")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(args: argparse.Namespace) -> int:
    cookies = await asyncio.to_thread(_agents_signed_in, args.agents)
    stats = Stats()
    claims: set[str] = set()
    agents = [Agent(cookie, args, stats, claims) for cookie in cookies]
    agent_tasks = [asyncio.create_task(agent.run()) for agent in agents]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    visitors = [Visitor(n, args, stats) for n in range(args.visitors)]
    results = await asyncio.gather(*(v.run() for v in visitors), return_exceptions=True)
    elapsed = time.monotonic() - started
    for agent in agents:
        agent.done.set()
        agent.wake.set()
    await asyncio.gather(*agent_tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]

    conversation_ids = [v.conversation_id for v in visitors if v.conversation_id]
    stored = await asyncio.to_thread(_stored_counts, conversation_ids)
    lost_to_agent = sum(len(stats.visitor_sent[c] - stats.agent_saw[c]) for c in conversation_ids)
    lost_to_visitor = sum(len(stats.agent_sent[c] - stats.visitor_got[c]) for c in conversation_ids)
    unstored = sum(
        max(0, len(stats.visitor_sent[c]) - stored[c].get("user", 0))
        + max(0, len(stats.agent_sent[c]) - stored[c].get("agent", 0))
        for c in conversation_ids
    )
    agent_messages = sum(len(s) for s in stats.agent_sent.values())
    lost = lost_to_agent + lost_to_visitor + unstored
    print(
        json.dumps(
            {
                "visitors": args.visitors,
                "agents": args.agents,
                "seconds": round(elapsed, 1),
                "visitor_messages": sum(len(s) for s in stats.visitor_sent.values()),
                "agent_messages": agent_messages,
                "lost_to_agent": lost_to_agent,
                "lost_to_visitor": lost_to_visitor,
                "not_stored": unstored,
                "lost": lost,
                "duplicates": stats.duplicates,
                "translated": f"{len(stats.translated)}/{agent_messages}",
                "agent_ack_ms_p50_p99": [
                    round(_pct(stats.agent_ack_ms, 0.5), 1),
                    round(_pct(stats.agent_ack_ms, 0.99), 1),
                ],
                "visitor_to_agent_ms_p50_p99": [
                    round(_pct(stats.to_agent_ms, 0.5), 1),
                    round(_pct(stats.to_agent_ms, 0.99), 1),
                ],
                "agent_to_visitor_ms_p50_p99": [
                    round(_pct(stats.to_visitor_ms, 0.5), 1),
                    round(_pct(stats.to_visitor_ms, 0.99), 1),
                ],
                "translation_after_delivery_ms_p50_p99": [
                    round(_pct(stats.translation_ms, 0.5), 1),
                    round(_pct(stats.translation_ms, 0.99), 1),
                ],
                "wait_to_claim_s_median": round(statistics.median(stats.wait_to_claim_s), 1)
                if stats.wait_to_claim_s
                else None,
                "visitor_failures": [repr(f)[:200] for f in failures[:5]],
                "errors": sorted(set(stats.errors))[:10],
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 1 if lost or failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8765/")
    parser.add_argument("--visitors", type=int, default=50)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--messages", type=int, default=5, help="per visitor, after the ask")
    parser.add_argument("--think", type=float, default=1.0, help="max seconds between messages")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait an answer")
    parser.add_argument("--per-agent", type=int, default=1000, help="conversations per agent")
    parser.add_argument(
        "--poll", type=float, default=1.0, help="seconds between an agent's list reads"
    )
    args = parser.parse_args()
    if not args.url.endswith("/"):
        args.url += "/"
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

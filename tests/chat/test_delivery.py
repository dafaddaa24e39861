"""The per-socket delivery bookkeeping, without a socket: what is relayed, trimmed and filled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chat import events
from chat.delivery import Coalesced, ReplyDelivery, Watched
from chat.models import Message


class Harness:
    """A ReplyDelivery with recorded frames and in-memory live and stored texts."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.live: dict[int, str] = {}
        self.stored: dict[int, str] = {}
        self.finished_rows: list[events.DoneEvent] = []
        self.resumed = 0
        self.orphaned = True
        self.failed: list[int] = []
        self.delivery = ReplyDelivery(
            self._send,
            live_text=self._live,
            stored_text=self._stored,
            watched=self._watched,
            resume=self._resume,
            failed=self._failed,
        )

    async def _send(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)

    async def _live(self, message_id: int) -> str | None:
        return self.live.get(message_id)

    async def _stored(self, message_id: int) -> str | None:
        return self.stored.get(message_id)

    async def _watched(self, ids: list[int]) -> Watched:
        done = [row for row in self.finished_rows if row["message_id"] in ids]
        return Watched(done=done, orphaned=self.orphaned)

    async def _resume(self) -> None:
        self.resumed += 1

    async def _failed(self, message_id: int) -> None:
        self.failed.append(message_id)

    def text(self, message_id: int) -> str:
        """The text the frames give for MESSAGE_ID, checking each delta starts where the last
        one ended."""
        text = ""
        for frame in self.frames:
            if frame["type"] == "delta" and frame["message_id"] == message_id:
                assert frame["offset"] == len(text), (frame, text)
                text += frame["text"]
        return text


def _done(message_id: int, *, length: int, status: str = "complete") -> events.DoneEvent:
    event = events.ended_event(reply_id=message_id, status=status)
    event["length"] = length
    event["finish_reason"] = "stop"
    return event


def _delta(message_id: int, offset: int, text: str) -> events.DeltaEvent:
    return events.delta_event(message_id=message_id, offset=offset, text=text)


async def test_repeated_and_overlapping_deltas_are_trimmed() -> None:
    h = Harness()
    h.delivery.expect(7)
    for offset, text in [(0, "Hel"), (0, "Hel"), (2, "llo "), (6, "world"), (3, "lo")]:
        await h.delivery.on_delta(_delta(7, offset, text))
    assert h.text(7) == "Hello world"
    assert [f["text"] for f in h.frames] == ["Hel", "lo ", "world"]


async def test_a_gap_is_filled_from_the_live_text_then_the_database() -> None:
    h = Harness()
    h.delivery.expect(7)
    await h.delivery.on_delta(_delta(7, 0, "Good "))
    h.live[7] = "Good morning, "
    await h.delivery.on_delta(_delta(7, 14, "how "))  # "morning, " was dropped
    assert h.text(7) == "Good morning, how "
    h.live.pop(7)
    h.stored[7] = "Good morning, how are you"
    await h.delivery.on_delta(_delta(7, 22, "you"))  # "are " dropped, live text gone
    assert h.text(7) == "Good morning, how are you"


async def test_done_sends_the_missing_tail_once_then_nothing_more() -> None:
    h = Harness()
    h.delivery.expect(9)
    await h.delivery.on_delta(_delta(9, 0, "Part one"))
    h.stored[9] = "Part one and part two"
    assert await h.delivery.on_done(_done(9, length=len(h.stored[9])))
    assert h.text(9) == "Part one and part two"
    assert h.frames[-1]["type"] == "done" and h.frames[-1]["finish_reason"] == "stop"
    frames = len(h.frames)
    assert not await h.delivery.on_done(_done(9, length=21))
    await h.delivery.on_delta(_delta(9, 21, " late"))
    assert len(h.frames) == frames
    assert h.delivery.waiting() == []


async def test_failed_reply_gets_an_error_after_its_done() -> None:
    h = Harness()
    h.delivery.expect(3)
    await h.delivery.on_done(_done(3, length=-1, status=Message.Status.FAILED))
    assert h.failed == [3]


async def test_snapshot_counts_as_sent_and_uses_the_longer_live_text() -> None:
    h = Harness()
    h.live[5] = "Streaming further"
    payloads = [
        {"id": 4, "role": "user", "text": "Question", "status": "complete"},
        {"id": 5, "role": "assistant", "text": "Stream", "status": "streaming"},
    ]
    shown = await h.delivery.snapshot(payloads)
    assert shown[1]["text"] == "Streaming further"
    assert h.delivery.waiting() == [5]
    await h.delivery.on_delta(_delta(5, 0, "Streaming further on"))
    assert h.frames == [{"type": "delta", "message_id": 5, "offset": 17, "text": " on"}]


async def test_messages_are_relayed_once() -> None:
    h = Harness()
    h.delivery.sent_whole(1, 5)
    payload = {"id": 1, "role": "user", "text": "Hello", "status": "complete"}
    await h.delivery.on_message(events.message_event(payload))
    reply = {"id": 2, "role": "assistant", "text": "", "status": "pending"}
    await h.delivery.on_message(events.message_event(reply))
    await h.delivery.on_message(events.message_event(reply))
    assert h.frames == [{"type": "message", "message": reply}]
    assert h.delivery.waiting() == [2]


async def test_watchdog_sends_a_dropped_done_from_the_database_and_resumes_after_the_lease() -> (
    None
):
    h = Harness()
    h.delivery.expect(8)
    await h.delivery.on_delta(_delta(8, 0, "Hi"))
    h.delivery.last_event -= 1.0  # quiet for a second
    await h.delivery.check(quiet=0.5, lease=5.0)
    assert h.frames[-1]["type"] == "delta" and h.resumed == 0  # not finished yet: nothing new
    h.stored[8] = "Hi there"
    h.finished_rows.append(_done(8, length=8))
    await h.delivery.check(quiet=0.5, lease=5.0)
    assert h.text(8) == "Hi there" and h.frames[-1]["type"] == "done"
    assert h.delivery.waiting() == []

    h.delivery.expect(10)
    h.delivery.last_event -= 10.0  # silent past the lease: the process may have died
    h.orphaned = False  # ... but a generator still holds the reply: a busy server, left alone
    await h.delivery.check(quiet=0.5, lease=5.0)
    assert h.resumed == 0
    h.orphaned = True  # its lease ran out: resumed, once
    await h.delivery.check(quiet=0.5, lease=5.0)
    await h.delivery.check(quiet=0.5, lease=5.0)
    assert h.resumed == 1


async def test_lookups_from_many_sockets_are_merged_while_one_runs() -> None:
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def fetch(ids: list[int]) -> dict[int, str]:
        calls.append(ids)
        await gate.wait()
        return {i: f"state {i}" for i in ids if i != 4}

    merger = Coalesced(fetch)
    first = asyncio.create_task(merger.get([1]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    rest = [asyncio.create_task(merger.get(ids)) for ids in ([2, 3], [3], [4])]
    await asyncio.sleep(0)
    gate.set()
    assert await first == {1: "state 1"}
    assert [await task for task in rest] == [{2: "state 2", 3: "state 3"}, {3: "state 3"}, {}]
    assert calls == [[1], [2, 3, 4]]  # the three that came while the first ran: one lookup


async def test_a_failed_lookup_fails_its_callers_and_the_next_one_runs() -> None:
    failing = True

    async def fetch(ids: list[int]) -> dict[int, int]:
        if failing:
            raise ConnectionError("database down")
        return {i: i for i in ids}

    merger = Coalesced(fetch)
    with pytest.raises(ConnectionError):
        await merger.get([1])
    failing = False
    assert await merger.get([1]) == {1: 1}


async def test_concurrent_relays_do_not_interleave() -> None:
    h = Harness()
    h.delivery.expect(6)
    text = "abcdefghijklmnopqrstuvwxyz"
    deltas = [_delta(6, i, text[i : i + 3]) for i in range(0, len(text), 2)]
    await asyncio.gather(*(h.delivery.on_delta(d) for d in deltas))
    assert h.text(6) == text

"""Hostile frames at the chat WebSocket of a running server; it must answer each with a known
frame or a close, never an internal error, and stay healthy.

    .venv/bin/python bench/fuzz_ws.py --url ws://127.0.0.1:8000/ws/chat/ --frames 10000

Frames: broken JSON, wrong types, unknown fields and types, huge and deeply nested values,
control characters, lone surrogates, binary frames, frames before hello, and valid frames in
between. A socket the server closes (abuse limits) is replaced by a new one. Prints a JSON
summary; exits 1 on an internal error, an unexpected frame type or an unhealthy server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

import websockets

KNOWN = {
    "welcome", "ack", "message", "delta", "done", "error", "pong", "state", "feedback_saved",
    "csat_saved", "email_saved", "transcript_sent", "translation", "typing",
}  # fmt: skip
TYPES = ["hello", "message", "cancel", "feedback", "ping", "typing", "handoff", "csat", "x", ""]


def hostile_frame(rng: random.Random) -> str | bytes:
    kind = rng.randrange(16)
    if kind == 0:
        return "{" * rng.randint(1, 2000)
    if kind == 1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
    if kind == 2:
        return json.dumps([1, 2, 3])
    if kind == 3:
        return json.dumps({"type": rng.choice(TYPES), "text": "\ud800" * 3}, ensure_ascii=True)
    if kind == 4:
        nested: Any = "x"
        for _ in range(rng.randint(50, 400)):
            nested = {"a": nested}
        return json.dumps({"type": "message", "client_id": "n", "text": nested})
    if kind == 5:
        return json.dumps({"type": "message", "client_id": "big", "text": "w" * 20_000})
    if kind == 6:
        return json.dumps({"type": "hello", "token": "\x00" * rng.randint(1, 100)})
    if kind == 7:
        return json.dumps({"type": "hello", "identity": {"id": "u", "signature": "é" * 40}})
    if kind == 8:
        return json.dumps({"type": "feedback", "message_id": -(2**70), "rating": "up"})
    if kind == 9:
        return json.dumps({"type": "cancel", "message_id": "1; DROP TABLE"})
    if kind == 10:
        return json.dumps({"type": rng.choice(TYPES), **{f"k{i}": i for i in range(50)}})
    if kind == 11:
        return json.dumps({"type": "hello", "conversation_id": "../../etc", "last_seen_id": 1e308})
    if kind == 12:
        return json.dumps({"type": "csat", "rating": rng.choice([0, 6, "5", None, 1.5])})
    if kind == 13:
        return json.dumps({"type": "email", "address": "a@" + "b" * 300})
    if kind == 14:
        return json.dumps({"type": "ping", "pad": "\u202e\u0000\u200b" * 50})
    return json.dumps({"type": "message", "client_id": str(rng.random()), "text": "hi"})


async def fuzz(url: str, frames: int, seed: int, origin: str, spread: bool) -> dict[str, Any]:
    """SPREAD: each socket claims its own address in X-Forwarded-For (a server that trusts
    this machine as its proxy counts them apart, as it would a botnet's)."""
    rng = random.Random(seed)
    seen: Counter[str] = Counter()
    closes: Counter[int] = Counter()
    bad: list[str] = []
    sent = sockets = 0
    while sent < frames:
        sockets += 1
        headers = {"X-Forwarded-For": f"198.18.{sockets // 250 % 250}.{sockets % 250}"}
        async with websockets.connect(  # type: ignore[arg-type]
            url, origin=origin, max_size=2**22, additional_headers=headers if spread else None
        ) as ws:
            try:
                if rng.random() < 0.7:
                    locale = rng.choice(["en", "ar", "zh-hans"])
                    await ws.send(json.dumps({"type": "hello", "locale": locale}))
                for _ in range(rng.randint(20, 200)):
                    if sent >= frames:
                        break
                    await ws.send(hostile_frame(rng))
                    sent += 1
                    try:
                        while True:
                            raw = await asyncio.wait_for(ws.recv(), timeout=0.02)
                            frame = json.loads(raw)
                            seen[frame.get("code") or frame.get("type")] += 1
                            known = frame.get("type") in KNOWN
                            if not known or frame.get("code") == "internal_error":
                                bad.append(str(raw)[:200])
                    except TimeoutError:
                        pass
            except websockets.ConnectionClosed as closed:
                closes[closed.rcvd.code if closed.rcvd else 1006] += 1
    return {
        "frames": sent,
        "sockets": sockets,
        "answers": dict(seen),
        "closes": dict(closes),
        "bad": bad[:20],
    }


def healthy(url: str) -> bool:
    http = url.replace("ws://", "http://").replace("wss://", "https://").split("/ws/")[0]
    try:
        with urllib.request.urlopen(f"{http}/healthz", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/chat/")
    parser.add_argument("--origin", default="http://127.0.0.1:8000")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--spread-addresses",
        action="store_true",
        help="a different X-Forwarded-For per socket (server: TRUSTED_PROXIES=127.0.0.1/32)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    summary = asyncio.run(
        fuzz(args.url, args.frames, args.seed, args.origin, args.spread_addresses)
    )
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["healthy_after"] = healthy(args.url)
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["healthy_after"] and not summary["bad"] else 1


if __name__ == "__main__":
    sys.exit(main())

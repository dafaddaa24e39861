"""A hostile client against a running server, while real visitors keep asking.

Start the server behind a "proxy" (this bench sets X-Forwarded-For, so each client has its
own address), with the fake model so that the bench measures the socket layer:

    TRUSTED_PROXIES=127.0.0.1/32 LLM_BACKEND=chat.llm.fake.FakeBackend make run &
    .venv/bin/python bench/hostile.py --url ws://127.0.0.1:8000/ws/chat/

From one address the attacker opens --sockets sockets at once (never saying hello on most of
them), floods tokenless hellos (each would be a new visitor) and messages; meanwhile --visitors
real visitors, each from their own address, connect, say hello and ask one question. Prints
JSON: what the attacker got (accepted, refused, close codes), and how many real visitors were
served and how fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from typing import Any

import websockets

ATTACKER = "203.0.113.66"


def _headers(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def _connect(url: str, origin: str, address: str) -> Any:
    return await websockets.connect(
        url, origin=origin, additional_headers=_headers(address), open_timeout=20
    )  # type: ignore[arg-type]


async def _drain(ws: Any, codes: Counter[str], seconds: float) -> int | None:
    """Read what the server says for SECONDS; the close code if it closed."""
    try:
        async with asyncio.timeout(seconds):
            async for raw in ws:
                frame = json.loads(raw)
                codes[frame.get("code") or frame.get("type")] += 1
    except TimeoutError:
        return None
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def socket_flood(url: str, origin: str, count: int, hold: float) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    closes: Counter[str] = Counter()
    opened = failed = 0

    async def one() -> None:
        nonlocal opened, failed
        try:
            ws = await _connect(url, origin, ATTACKER)
        except Exception:
            failed += 1
            return
        opened += 1
        close = await _drain(ws, codes, hold)
        closes[str(close) if close is not None else "still open"] += 1
        await ws.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return {"tried": count, "handshakes": opened, "failed": failed, "closes": dict(closes),
            "frames": dict(codes)}  # fmt: skip


async def hello_flood(url: str, origin: str, count: int) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    for _ in range(count):
        try:
            ws = await _connect(url, origin, ATTACKER)
        except Exception:
            codes["handshake failed"] += 1
            continue
        await ws.send(json.dumps({"type": "hello", "locale": "en"}))
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            codes[frame.get("code") or frame.get("type")] += 1
        except (TimeoutError, websockets.ConnectionClosed):
            codes["closed"] += 1
        await ws.close()
    return {"tried": count, "answers": dict(codes)}


async def message_flood(url: str, origin: str, count: int) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    ws = await _connect(url, origin, ATTACKER)
    await ws.send(json.dumps({"type": "hello", "locale": "en"}))
    await ws.recv()
    try:
        for index in range(count):
            await ws.send(json.dumps({"type": "message", "client_id": f"f{index}", "text": "x"}))
        await _drain(ws, codes, 5)
    except websockets.ConnectionClosed:
        pass
    return {"sent": count, "answers": dict(codes), "close": ws.close_code}


async def visitor(url: str, origin: str, index: int) -> float | None:
    started = time.monotonic()
    try:
        async with await _connect(url, origin, f"198.51.100.{index % 250 + 1}") as ws:
            await ws.send(json.dumps({"type": "hello", "locale": "en"}))
            await asyncio.wait_for(ws.recv(), 20)
            await ws.send(json.dumps({"type": "message", "client_id": "q", "text": "Hello?"}))
            async with asyncio.timeout(60):
                async for raw in ws:
                    if json.loads(raw).get("type") == "done":
                        return time.monotonic() - started
    except Exception:
        return None
    return None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async def visitors() -> list[float | None]:
        results = []
        for wave in range(0, args.visitors, 10):
            batch = range(wave, min(wave + 10, args.visitors))
            results += await asyncio.gather(*(visitor(args.url, args.origin, i) for i in batch))
        return results

    attack = asyncio.gather(
        socket_flood(args.url, args.origin, args.sockets, args.hold),
        hello_flood(args.url, args.origin, args.hellos),
        message_flood(args.url, args.origin, args.messages),
    )
    await asyncio.sleep(1)  # the attack is under way before the visitors come
    served = await visitors()
    sockets, hellos, messages = await attack
    times = sorted(t for t in served if t is not None)
    return {
        "attacker": {"sockets": sockets, "tokenless_hellos": hellos, "messages": messages},
        "visitors": {
            "tried": args.visitors,
            "served": len(times),
            "p50_s": round(statistics.median(times), 3) if times else None,
            "max_s": round(times[-1], 3) if times else None,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/chat/")
    parser.add_argument("--origin", default="http://127.0.0.1:8000")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds a flood socket stays")
    parser.add_argument("--hellos", type=int, default=300)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--visitors", type=int, default=50)
    args = parser.parse_args()
    started = time.monotonic()
    summary = asyncio.run(run(args))
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, indent=2))
    return 0 if summary["visitors"]["served"] == args.visitors else 1


if __name__ == "__main__":
    sys.exit(main())

"""Liveness and readiness: is the process up, and can it reach what a reply needs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from chat.llm import get_backend

CHECK_TIMEOUT_SECONDS = 3.0


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return {"pgvector": row[0] if row else None}


async def _channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "ready.check"})
    await layer.receive(channel)
    return {"backend": type(layer).__name__}


async def _llm() -> dict[str, Any]:
    statuses = await get_backend().check()
    endpoints = [
        {
            "name": s.name,
            "ok": s.ok,
            "state": s.state or ("up" if s.ok else "down"),
            "detail": s.detail,
            "latency_ms": None if s.latency_ms is None else round(s.latency_ms, 1),
        }
        for s in statuses
    ]
    if not any(s.ok for s in statuses):
        raise RuntimeError("no LLM endpoint is available")
    # Only the knowledge-base fallback answers: still ready (visitors get an honest reply).
    degraded = not any(s.ok and s.state != "fallback" for s in statuses)
    return {"endpoints": endpoints, "degraded": degraded}


async def _timed(check: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
        result: dict[str, Any] = {"ok": True, **detail}
    except TimeoutError:
        result = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


async def readiness_report() -> dict[str, Any]:
    database, layer, llm = await asyncio.gather(
        _timed(sync_to_async(_database)),
        _timed(_channel_layer),
        _timed(_llm),
    )
    checks = {"database": database, "channel_layer": layer, "llm": llm}
    return {"ok": all(check["ok"] for check in checks.values()), "checks": checks}

"""Fixed-window counters in the shared cache (Redis in production): rate limits of the chat,
its abuse limits and the API keys."""

from __future__ import annotations

import time

from django.core.cache import cache


def window_hit(name: str, *, window: int) -> int:
    """Count one hit in the current WINDOW-second window of NAME; the window's count so far.

    The key is `NAME:<window number>`, kept a little longer than the window."""
    key = f"{name}:{int(time.time() // window)}"
    cache.add(key, 0, timeout=window + 5)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 5)
        return 1

"""Fixed-window counters in the shared cache (Redis in production): rate limits of the chat,
its abuse limits and the API keys."""

from __future__ import annotations

import time

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache


def window_hit(name: str, *, window: int) -> int:
    """Count one hit in the current WINDOW-second window of NAME; the window's count so far.

    The key is `NAME:<window number>`, kept a little longer than the window. On Redis it is one
    round trip (SET NX EX, then INCR, in one MULTI); elsewhere (the embedded mode's local memory)
    the cache's own add and incr."""
    key = f"{name}:{int(time.time() // window)}"
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
        full_key = backend.make_and_validate_key(key)
        with client.pipeline(transaction=True) as pipe:  # MULTI: the key never lacks its expiry
            pipe.set(full_key, 0, ex=window + 5, nx=True)
            pipe.incr(full_key)
            return int(pipe.execute()[1])
    cache.add(key, 0, timeout=window + 5)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 5)
        return 1

"""Fixed-window counters (autoglm_site.windows) on the real Redis and on local memory, and the
Redis cache backend that shares one client per pool (autoglm_site.cache)."""

from __future__ import annotations

import redis
from django.core.cache import caches
from django.test import override_settings

from autoglm_site.cache import RedisCache
from autoglm_site.windows import window_hit


def _redis_caches(url: str) -> dict[str, dict[str, str]]:
    return {"default": {"BACKEND": "autoglm_site.cache.RedisCache", "LOCATION": url}}


def test_window_counts_on_redis_in_one_key_with_an_expiry(redis_url: str) -> None:
    with override_settings(CACHES=_redis_caches(redis_url)):
        caches["default"].clear()
        assert [window_hit("t:hits", window=60) for _ in range(3)] == [1, 2, 3]
        assert window_hit("t:other", window=60) == 1
        raw = redis.Redis.from_url(redis_url)
        [key] = [k for k in raw.keys("*t:hits*")]
        assert 0 < raw.ttl(key) <= 65
        backend = caches["default"]
        backend.set("k", {"a": 1})
        assert backend.get("k") == {"a": 1}
        first = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
        assert backend._cache.get_client(write=True) is first  # type: ignore[attr-defined]
        # Another instance (Django makes one per asyncio context: per socket) shares them.
        other = RedisCache(redis_url, {})
        assert other._cache.get_client(write=True) is first  # type: ignore[attr-defined]
        assert other.get("k") == {"a": 1}


def test_window_counts_in_local_memory() -> None:
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    ):
        assert [window_hit("t:local", window=60) for _ in range(3)] == [1, 2, 3]

"""The Redis cache backend, with one client object per connection pool.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` for every cache call; with
redis-py 8 that construction (its response callbacks, its driver info) cost more of a loaded
Daphne process's interpreter time than the round trip itself (py-spy, bench/chaos.py: the rate
limits' three cache calls per visitor message were 15% of it). A `redis.Redis` is safe to share
between threads (each command takes a connection from the pool), so one is kept per pool.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _SharedClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClient

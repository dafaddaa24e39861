"""The Redis cache backend, with one connection pool and one client object per process.

Django keeps a cache backend per asyncio context, so under Channels every socket got its own
`RedisCacheClient` with its own connection pool, and its first cache call (a rate limit) opened
a new Redis connection; and `get_client` builds a new `redis.Redis` for every call, whose
construction (response callbacks, driver info) costs more interpreter time than the round trip
with redis-py 8. With 500 sockets opening at once (bench/chaos.py) that was the largest single
share of a Daphne process's time (py-spy). A `redis.ConnectionPool` and a `redis.Redis` are safe
to share between threads, so the pools and clients here are shared by every backend instance
of the process with the same servers and options.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_lock = threading.Lock()
_shared: dict[str, tuple[dict[int, Any], dict[int, Any]]] = {}  # servers+options -> pools, clients


class _SharedClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = repr((self._servers, sorted(self._pool_options.items(), key=repr)))  # type: ignore[attr-defined]
        with _lock:
            self._pools, self._clients = _shared.setdefault(key, ({}, {}))

    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        pool = self._pools.get(index)
        if pool is None:
            with _lock:
                pool = self._pools.get(index)
                if pool is None:
                    pool = self._pools[index] = self._pool_class.from_url(  # type: ignore[attr-defined]
                        self._servers[index],  # type: ignore[attr-defined]
                        **self._pool_options,  # type: ignore[attr-defined]
                    )
        return pool

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)
            with _lock:
                client = self._clients.setdefault(index, self._client(connection_pool=pool))  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClient

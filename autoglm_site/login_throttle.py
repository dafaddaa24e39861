"""Sign-in throttling: failed sign-ins counted per user name and address, in the cache."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _key(*, username: str, address: str) -> str:
    # Hashed: user names may hold anything, and cache keys must be short and plain.
    digest = hashlib.sha256(f"{username.strip().casefold()}\0{address}".encode()).hexdigest()
    return f"login:failures:{digest}"


def login_locked_out(*, username: str, address: str) -> bool:
    """Whether USERNAME from ADDRESS failed too often lately to be allowed another try."""
    failures = cache.get(_key(username=username, address=address), 0)
    return int(failures) >= settings.ADMIN_LOGIN_MAX_FAILURES


def login_failure_record(*, username: str, address: str) -> None:
    """Count one failed sign-in; the count is forgotten ADMIN_LOGIN_LOCKOUT_SECONDS after the
    first failure of the window."""
    key = _key(username=username, address=address)
    timeout = settings.ADMIN_LOGIN_LOCKOUT_SECONDS
    cache.add(key, 0, timeout=timeout)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)


def login_failures_clear(*, username: str, address: str) -> None:
    cache.delete(_key(username=username, address=address))

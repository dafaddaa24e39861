"""Limits that hold against a script: per address and global, per socket, per process.

Counted where they must be shared (new visitors, messages per address: the cache, Redis in
production, so every process sees the same count) or where a crash must not leak a count
(open sockets, frames per socket, replies in flight: this process's memory). docs/security.md
lists them with their settings.
"""

from __future__ import annotations

import time
from collections import Counter

from django.conf import settings

# Re-exported: the chat's limits count per address (autoglm_site.addresses).
from autoglm_site.addresses import client_address as client_address
from autoglm_site.addresses import scope_address as scope_address
from autoglm_site.windows import window_hit
from chat import errors

# Daphne (Autobahn) lets an application close only with 1000 or 3000-4999: the policy
# violation (1008) of an abusive client is sent as 4008. Frames over Daphne's own size limit
# are closed by Daphne itself with 1009 before they are buffered (autoglm_site.daphne_server).
ABUSE_CLOSE_CODE = 4008
# Idle for CHAT_IDLE_TIMEOUT_SECONDS: the widget reconnects only when the visitor is back.
IDLE_CLOSE_CODE = 4001


def _window_hit(name: str, *, limit: int, window: int) -> bool:
    """Count one hit in a fixed window shared by all processes; False when over LIMIT."""
    return window_hit(f"chat:abuse:{name}", window=window) <= limit


def new_visitor_allow(*, address: str) -> None:
    """A tokenless hello makes a visitor row: per address per hour, and for everyone per
    minute (a botnet of addresses)."""
    if not _window_hit("visitors", limit=settings.CHAT_NEW_VISITORS_PER_MINUTE, window=60):
        raise errors.TooManyVisitors()
    per_ip = settings.CHAT_NEW_VISITORS_PER_IP_PER_HOUR
    if not _window_hit(f"visitors:{address}", limit=per_ip, window=3600):
        raise errors.TooManyVisitors()


def message_allow(*, address: str) -> None:
    """Messages per address (the per-visitor limit is chat.services._rate_limit_hit)."""
    limit = settings.CHAT_MESSAGES_PER_IP_PER_MINUTE
    if not _window_hit(f"messages:{address}", limit=limit, window=60):
        raise errors.RateLimited()


class SocketCounts:
    """Open chat sockets of this process, in all and per address."""

    def __init__(self) -> None:
        self.total = 0
        self.per_address: Counter[str] = Counter()

    def open(self, address: str) -> bool:
        """Count a new socket; False (nothing counted) when a cap is reached."""
        if self.total >= settings.CHAT_MAX_SOCKETS:
            return False
        if self.per_address[address] >= settings.CHAT_MAX_SOCKETS_PER_IP:
            return False
        self.total += 1
        self.per_address[address] += 1
        return True

    def close(self, address: str) -> None:
        self.total = max(0, self.total - 1)
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]


SOCKETS = SocketCounts()


class TokenBucket:
    """Frames a socket may send: RATE a second on average, BURST at once."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def frame_bucket() -> TokenBucket:
    return TokenBucket(
        rate=settings.CHAT_SOCKET_FRAMES_PER_SECOND, burst=settings.CHAT_SOCKET_FRAME_BURST
    )


def replies_allow(*, active: int) -> None:
    """A bound on the replies this process generates at once: past it, an honest "busy"."""
    if active >= settings.CHAT_MAX_ACTIVE_REPLIES:
        raise errors.ServerBusy()

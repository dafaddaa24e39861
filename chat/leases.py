"""The leases of the replies this process is generating, kept fresh by one thread of its own.

A streaming reply's `heartbeat_at` tells other processes that its generator is alive; one
older than CHAT_REPLY_LEASE_SECONDS is recovered as interrupted and generated again
(`services.conversation_recover`). The checkpoints refresh it too, but they run on the reply
pool, behind prompt assembly: on a loaded process (hundreds of sockets reconnecting after
another process was killed) a checkpoint can wait longer than the lease, and live replies
were then taken over as dead, which added work and took more over (bench/chaos.py lost 400
of 1,201 messages that way: docs/benchmarks.md). So the lease says whether the process and
its generator are alive, not whether the reply pool is busy: a daemon thread (with its own
database connection, outside both pools and the event loop) refreshes, every third of the
lease, the heartbeat of every reply a generator of this process holds. A generator holds its
reply from its claim until its end is stored (`held`); when the generator's task ends in any
way, the hold is released and the lease runs out unless the reply was finished.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat.models import Message

logger = logging.getLogger(__name__)

_SQL = (
    f"UPDATE {Message._meta.db_table} SET heartbeat_at = %s "  # noqa: S608
    f"WHERE id = ANY(%s) AND status = '{Message.Status.STREAMING.value}'"
)


class LeaseKeeper:
    """The replies held by this process's generators, and the thread that renews them."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}  # reply id -> holds (a test may run two loops)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0  # statements that succeeded (tests and the bench read it)

    @contextlib.contextmanager
    def held(self, reply_id: int) -> Iterator[None]:
        """Keep REPLY_ID's lease fresh while the block runs."""
        with self._lock:
            self._held[reply_id] = self._held.get(reply_id, 0) + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="reply_leases", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                left = self._held.pop(reply_id) - 1
                if left:
                    self._held[reply_id] = left
                idle = not self._held
            if idle:
                self._wake.set()  # the thread ends at once, and closes its connection

    def holding(self) -> list[int]:
        with self._lock:
            return sorted(self._held)

    def renew(self) -> int | None:
        """Refresh the heartbeat of every held reply now: how many rows were renewed, None
        when nothing is held."""
        ids = self.holding()
        if not ids:
            return None
        with connection.cursor() as cursor:
            cursor.execute(_SQL, [timezone.now(), ids])
            count = cursor.rowcount
        self.renewals += 1
        return count

    def _run(self) -> None:
        failing_since: float | None = None
        while True:
            # While the database is unreachable, retried often: the leases must be renewed as
            # soon as it is back, before another process's watchdog finds them expired.
            every = settings.CHAT_REPLY_LEASE_SECONDS / 3
            self._wake.wait(every if failing_since is None else min(every, 0.25))
            self._wake.clear()
            with self._lock:
                if not self._held:
                    # Nothing held: the thread ends, and no connection stays open (a test
                    # database can be dropped; the embedded PostgreSQL counts connections).
                    self._thread = None
                    break
            try:
                self.renew()
                failing_since = None
            except Exception:
                with contextlib.suppress(Exception):
                    connection.close()  # reconnect on the next round (the database restarted)
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    logger.warning("renewing reply leases failed", exc_info=True)
                elif now - failing_since > settings.CHAT_REPLY_LEASE_SECONDS:
                    logger.warning(
                        "renewing reply leases has failed for %.0f s", now - failing_since
                    )
                    failing_since = now
        connection.close()


_keeper = LeaseKeeper()


def get_keeper() -> LeaseKeeper:
    """This process's lease keeper."""
    return _keeper

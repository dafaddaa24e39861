"""Celery tasks of the knowledge base: ids in, services do the work.

Delivery is at least once: a task is acknowledged only when it has finished, and one whose
worker died is delivered again (settings: acks late, reject on worker lost, the broker's
visibility timeout; docs/operations.md). So every task is idempotent: syncing or indexing again
brings the rows to what the source says, and a sync that already finished is not run twice.
Transient failures (the database going away, a source that cannot be read) are retried with
exponential backoff and jitter: at most 1, 2, 4 and 8 seconds, then the task fails; each
attempt of a sync is a SyncRun the admin shows. The backoff stays far below the visibility
timeout, or a task waiting for its retry would be delivered a second time.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from knowledge import services
from knowledge.models import SyncRun

_TRANSIENT = (OperationalError, InterfaceError)
_RETRY: dict[str, Any] = {
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 4,
}
# A finished sync's task id is remembered this long (the message may come again if its worker
# died between the end of the work and the acknowledgement): longer than the visibility timeout.
_DONE_SECONDS = 2 * 24 * 3600
_LOCK_WAIT_SECONDS = 30


class SyncRunFailed(Exception):
    """A sync run failed as a whole (its source could not be read): worth another attempt."""

    @classmethod
    def of(cls, run: SyncRun) -> SyncRunFailed:
        first = run.errors[0]["error"] if run.errors else ""
        return cls(f"sync run {run.pk} of source {run.source_id} failed: {first}")


@shared_task(name="knowledge.tasks.index_article", autoretry_for=_TRANSIENT, **_RETRY)
def index_article(*, article_id: int) -> int:
    """Re-chunk and re-embed what changed in one article; the number of chunks embedded."""
    return services.article_index(article_id=article_id).chunks_embedded


@shared_task(
    bind=True,
    name="knowledge.tasks.sync_source",
    autoretry_for=(SyncRunFailed, *_TRANSIENT),
    **_RETRY,
)
def sync_source(self: Any, *, source_id: int, trigger: str = SyncRun.Trigger.MANUAL) -> int | None:
    """Sync one source; the SyncRun id (None when another sync of it was running)."""
    done_key = f"knowledge:sync_source:done:{self.request.id}"
    finished: int | None = cache.get(done_key)
    if finished is not None:
        return finished  # this very task finished already; its message came again
    # A task delivered again lost its worker mid-run, and PostgreSQL may not yet have closed
    # that worker's session, which holds the source's lock: wait for it a little.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    run = services.source_sync(
        source_id=source_id,
        trigger=trigger,
        lock_wait_seconds=_LOCK_WAIT_SECONDS if redelivered else 0,
    )
    if run is None:
        return None
    # In a thread of the web process (no broker) nobody would wait for a retry's countdown:
    # the failed run is recorded and the next scheduled sync tries again.
    if run.status == SyncRun.Status.FAILED and not self.request.is_eager:
        raise SyncRunFailed.of(run)
    cache.set(done_key, run.pk, timeout=_DONE_SECONDS)
    return run.pk


@shared_task(name="knowledge.tasks.sync_due_sources", autoretry_for=_TRANSIENT, **_RETRY)
def sync_due_sources() -> list[int]:
    """Beat: enqueue the sources whose schedule has come round."""
    return services.sources_sync_due()

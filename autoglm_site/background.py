"""Runs a Celery task after commit: on the broker, or in a thread when there is no broker."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from celery import Task
from django.conf import settings
from django.db import close_old_connections, transaction

logger = logging.getLogger(__name__)


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="background")


def _run_in_thread(task: Task, kwargs: dict[str, Any]) -> None:
    try:
        task.apply(kwargs=kwargs, throw=True)
    except Exception:
        logger.exception("background task %s failed", task.name)
    finally:
        close_old_connections()


def enqueue(task: Task, **kwargs: Any) -> None:
    """Schedule TASK with KWARGS once the current transaction commits; off the request path."""
    if settings.BACKGROUND_IN_PROCESS:
        transaction.on_commit(lambda: _executor().submit(_run_in_thread, task, kwargs))
    else:
        transaction.on_commit(lambda: task.apply_async(kwargs=kwargs))

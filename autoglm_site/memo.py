"""A few seconds of memory for reads of tables that admins edit rarely and every reply needs.

The glossary and the decoding presets are read for every prompt: a query each, compiled by the
ORM, on the hot path. `admin_tables_memo(*models)` keeps a function's results per process for
ADMIN_TABLES_MEMO_SECONDS, and forgets them at once in the process where one of MODELS is saved
or deleted (the admin's own process sees its change immediately; another process within the
memo's seconds).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import models
from django.db.models.signals import post_delete, post_save

P = ParamSpec("P")
R = TypeVar("R")

_memos: list[dict[Any, tuple[float, Any]]] = []


def memo_forget_all(**_kwargs: Any) -> None:
    """Forget every memo of this process (a signal receiver; tests call it between tests)."""
    for memo in _memos:
        memo.clear()


def admin_tables_memo(*tables: type[models.Model]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    for table in tables:
        post_save.connect(
            memo_forget_all, sender=table, dispatch_uid=f"memo-save-{table._meta.label}"
        )
        post_delete.connect(
            memo_forget_all, sender=table, dispatch_uid=f"memo-del-{table._meta.label}"
        )

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        memo: dict[Any, tuple[float, Any]] = {}
        _memos.append(memo)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            seconds = settings.ADMIN_TABLES_MEMO_SECONDS
            if seconds <= 0:
                return func(*args, **kwargs)
            key = (args, tuple(sorted(kwargs.items())))
            now = time.monotonic()
            hit = memo.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]  # type: ignore[no-any-return,unused-ignore]
            value = func(*args, **kwargs)
            memo[key] = (now + seconds, value)
            return value

        return wrapper

    return decorate

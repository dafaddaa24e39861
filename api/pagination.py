"""Cursor pagination: an opaque cursor over (a timestamp or id, id), stable under inserts."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet

from api import errors

M = TypeVar("M", bound=Model)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def _encode(values: Sequence[Any]) -> str:
    raw = json.dumps(
        [
            v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, uuid.UUID) else v
            for v in values
        ]
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidRequest([{"field": "cursor", "problem": "not a cursor"}]) from exc
    if (
        not isinstance(values, list)
        or len(values) != 2
        or any(isinstance(v, str) and "\x00" in v for v in values)  # PostgreSQL refuses NUL
    ):
        raise errors.InvalidRequest([{"field": "cursor", "problem": "not a cursor"}])
    return values


def paginate(
    queryset: QuerySet[M],
    *,
    cursor: str | None,
    limit: int | None,
    field: str = "created_at",
    descending: bool = True,
) -> tuple[list[M], str | None]:
    """One page of QUERYSET ordered by FIELD then id, and the cursor of the next page (or None).

    The cursor holds the last row's (FIELD, id); the next page starts strictly after it.
    """
    size = min(max(limit or DEFAULT_LIMIT, 1), MAX_LIMIT)
    sign = "-" if descending else ""
    queryset = queryset.order_by(f"{sign}{field}", f"{sign}pk")
    if cursor:
        value, last_id = _decode(cursor)
        # Integer keys, or UUID keys (conversations), which the cursor holds as text.
        if not isinstance(last_id, int | str) or isinstance(last_id, bool):
            raise errors.InvalidRequest([{"field": "cursor", "problem": "not a cursor"}])
        op = "lt" if descending else "gt"
        try:
            queryset = queryset.filter(
                Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"pk__{op}": last_id})
            )
            rows = list(queryset[: size + 1])
        except (ValueError, TypeError, ValidationError) as exc:
            raise errors.InvalidRequest([{"field": "cursor", "problem": "not a cursor"}]) from exc
    else:
        rows = list(queryset[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = _encode([getattr(rows[-1], field), rows[-1].pk]) if more and rows else None
    return rows, next_cursor

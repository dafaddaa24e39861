"""ETags and conditional requests: If-None-Match on reads (304), If-Match on writes (412)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse

from api import errors


def etag_of(payload: Any) -> str:
    raw = json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False)
    return '"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"'


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def conditional_json(request: HttpRequest, payload: Any, *, status: int = 200) -> HttpResponse:
    """PAYLOAD as JSON with its ETag, or 304 Not Modified when the client has it already."""
    tag = etag_of(payload)
    wanted = request.headers.get("If-None-Match", "")
    if status == 200 and wanted and (wanted.strip() == "*" or tag in _tags(wanted)):
        response = HttpResponse(status=304)
    else:
        response = JsonResponse(payload, status=status, encoder=DjangoJSONEncoder, safe=False)
    response["ETag"] = tag
    return response


def check_if_match(request: HttpRequest, current: Any) -> None:
    """Refuse a write whose If-Match names another version of the resource than CURRENT."""
    wanted = request.headers.get("If-Match", "")
    if wanted and wanted.strip() != "*" and etag_of(current) not in _tags(wanted):
        raise errors.PreconditionFailed()

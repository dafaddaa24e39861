"""Every call to /api/ is logged (api.models.ApiCall): key or user, method, path, status."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from autoglm_site.addresses import request_address

logger = logging.getLogger(__name__)


class ApiCallLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        started = time.monotonic()
        response = self.get_response(request)
        self.record(request, response, time.monotonic() - started)
        return response

    @staticmethod
    def record(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        from api.models import ApiCall

        key = getattr(request, "api_key", None)
        user = getattr(request, "user", None)
        try:
            ApiCall.objects.create(
                key=key,
                user=user if user is not None and user.is_authenticated else None,
                method=(request.method or "")[:8],
                path=request.path[:500],
                status=response.status_code,
                duration_ms=int(seconds * 1000),
                remote_addr=request_address(request) if request.META.get("REMOTE_ADDR") else None,
            )
        except Exception:  # the log never breaks the call it logs
            logger.exception("could not log the API call %s %s", request.method, request.path)

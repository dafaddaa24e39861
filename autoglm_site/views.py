"""Site pages: the demo help page, and the health endpoints for load balancers."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from autoglm_site.health import readiness_report


def demo(request: HttpRequest) -> HttpResponse:
    return render(request, "demo.html", {"assistant_name": settings.CHAT_ASSISTANT_NAME})


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    report = await readiness_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)

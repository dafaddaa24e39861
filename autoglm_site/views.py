"""Site pages: the demo help page, the health endpoints for load balancers, /metrics."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from autoglm_site import metrics as site_metrics
from autoglm_site.health import readiness_report


def demo(request: HttpRequest) -> HttpResponse:
    return render(request, "demo.html", {"assistant_name": settings.CHAT_ASSISTANT_NAME})


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    """200 or 503 for anyone; what each check found (hosts, errors) only for an admitted probe
    (the bearer METRICS_TOKEN or an address in METRICS_ALLOWED_NETWORKS, as for /metrics)."""
    report = await readiness_report()
    status = 200 if report["ok"] else 503
    admitted = site_metrics.scrape_admitted(
        authorization=request.headers.get("Authorization", ""),
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        forwarded=site_metrics.forwarded(request.headers),
    )
    if not admitted:
        return JsonResponse({"status": "ok" if report["ok"] else "unavailable"}, status=status)
    return JsonResponse(
        {"status": "ok" if report["ok"] else "unavailable", **report}, status=status
    )


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of every process on this machine, for an admitted scraper only."""
    admitted = site_metrics.scrape_admitted(
        authorization=request.headers.get("Authorization", ""),
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        forwarded=site_metrics.forwarded(request.headers),
    )
    if not admitted:
        return HttpResponseNotFound(b"")  # says nothing, not even that the page exists
    body, content_type = site_metrics.scrape(accept=request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)

"""The API instance: /api/v1/, its routers, its error handlers and its OpenAPI 3.1 schema."""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from api import errors
from api.auth import Access
from api.models import ApiKey

logger = logging.getLogger(__name__)

DESCRIPTION = """The AutoGLM HTTP API: conversations, knowledge base, visitors, webhooks, and the
grounded assistant behind an OpenAI-compatible endpoint.

Authenticate with an API key: `Authorization: Bearer agk_...` (admin: API keys). Each key has
scopes; every error body is `{"error": {"code", "message", "details"}}`, its message in the
language of `Accept-Language`. See docs/api.md."""

api = NinjaAPI(
    title="AutoGLM API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
)


def _error(request: HttpRequest, error: errors.ApiError) -> HttpResponse:
    return errors.error_response(error)


@api.exception_handler(errors.ApiError)
def on_api_error(request: HttpRequest, exc: errors.ApiError) -> HttpResponse:
    return _error(request, exc)


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    details = [
        {
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "problem": str(error.get("msg", "")),
        }
        for error in exc.errors
    ]
    return _error(request, errors.InvalidRequest(details))


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, errors.Unauthorized())


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, errors.NotFound())


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    by_status: dict[int, type[errors.ApiError]] = {
        400: errors.ApiError,
        401: errors.Unauthorized,
        403: errors.ScopeMissing,
        404: errors.NotFound,
        405: errors.MethodNotAllowed,
        409: errors.Conflict,
        412: errors.PreconditionFailed,
        422: errors.InvalidRequest,
    }
    kind = by_status.get(exc.status_code, errors.ApiError)
    error = kind(scope="") if kind is errors.ScopeMissing else kind()
    return _error(request, error)


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("API error on %s %s", request.method, request.path)
    return _error(request, errors.InternalError())


class KeyInfo(Schema):
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_per_minute: int


@api.get(
    "/key",
    response={200: KeyInfo, 401: errors.ErrorBody},
    auth=Access("assistant"),
    summary="The API key in use",
    tags=["keys"],
)
def key_info(request: HttpRequest) -> Any:
    """The key the request is made with (any key with the "assistant" scope)."""
    key = getattr(request, "api_key", None)
    if not isinstance(key, ApiKey):
        raise errors.NotFound()
    return key


def _mount() -> None:
    # Each resource has its own module and router (api/<resource>.py).
    from importlib import import_module

    for module_name, prefix in (
        ("api.conversations", "/"),
        ("api.knowledge", "/"),
        ("api.webhooks", "/"),
        ("api.openai_compat", "/openai"),
    ):
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        api.add_router(prefix, module.router)


_mount()

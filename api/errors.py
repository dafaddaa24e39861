"""API errors: a stable code for programs, a message in the caller's language, an HTTP status.

Every error body is ``{"error": {"code": ..., "message": ..., "details": [...]}}``; the codes are
listed in docs/api.md (the chat's error table, for HTTP). The message follows Accept-Language.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from ninja import Schema


class ErrorDetail(Schema):
    code: str
    message: str
    details: list[dict[str, Any]] = []


class ErrorBody(Schema):
    error: ErrorDetail


class ApiError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: ClassVar[str | Promise] = _("This request was not understood.")

    def __init__(self, details: list[dict[str, Any]] | None = None, **params: Any) -> None:
        super().__init__(self.code)
        self.details = details or []
        self.params = params
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        text = str(self.message)
        if self.params:
            text = text % self.params
        return {"error": {"code": self.code, "message": text, "details": self.details}}


class InvalidRequest(ApiError):
    status = 422
    code = "invalid_request"
    message = _("Some fields of this request are missing or not valid.")


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"
    message = _("An API key is needed: send it as “Authorization: Bearer <key>”.")


class InvalidKey(ApiError):
    status = 401
    code = "invalid_key"
    message = _("This API key is not valid or has been revoked.")


class ScopeMissing(ApiError):
    status = 403
    code = "scope_missing"
    message = _("This API key does not have the scope “%(scope)s”.")


class NotFound(ApiError):
    status = 404
    code = "not_found"
    message = _("Nothing was found at this address.")


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    message = _("This method is not allowed here.")


class Conflict(ApiError):
    status = 409
    code = "conflict"
    message = _("This request conflicts with the current state of the resource.")


class PreconditionFailed(ApiError):
    status = 412
    code = "precondition_failed"
    message = _("The resource has changed since you read it (If-Match did not match).")


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    message = _("Too many requests for this API key. Try again in %(seconds)s seconds.")


class ModelNotFound(ApiError):
    status = 404
    code = "model_not_found"
    message = _("The model “%(model)s” does not exist here; use “%(available)s”.")


class ReplyFailed(ApiError):
    status = 503
    code = "reply_failed"
    message = _("Sorry, the assistant could not answer just now. Please try again.")


class InternalError(ApiError):
    status = 500
    code = "internal_error"
    message = _("Something went wrong. Please try again.")


def error_response(error: ApiError) -> HttpResponse:
    from django.http import JsonResponse

    response = JsonResponse(error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


@csrf_exempt  # a POST to an unknown address is a JSON 404 too, not the CSRF failure page
def not_found_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    return error_response(NotFound())

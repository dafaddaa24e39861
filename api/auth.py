"""Who calls the API: an API key (Authorization: Bearer agk_...) with the operation's scope, or a
staff user's session (the browsable docs). Each key has its own per-minute rate limit."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer
from ninja.utils import check_csrf

from api import errors
from api.models import KEY_PREFIX, ApiKey, key_digest
from autoglm_site.windows import window_hit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def key_from_header(request: HttpRequest) -> ApiKey | None:
    """The active key the request carries; None if it carries none; InvalidKey if it is bad."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if not header:
        return None
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX):
        raise errors.InvalidKey()
    prefix, _sep, secret = token[len(KEY_PREFIX) :].partition("_")
    key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first() if secret else None
    # Compared by digest: equal-length hex strings, so the comparison leaks nothing useful.
    import hmac

    if key is None or not hmac.compare_digest(key.digest, key_digest(secret)):
        raise errors.InvalidKey()
    return key


def rate_limit(key: ApiKey) -> None:
    """A fixed window per minute and key, counted in the shared cache (Redis in production)."""
    if window_hit(f"api:rate:{key.prefix}", window=60) > key.rate_limit_per_minute:
        error = errors.RateLimited(seconds=60 - int(time.time()) % 60)
        error.headers["Retry-After"] = str(error.params["seconds"])
        raise error


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)


class Access(HttpBearer):
    """The operation needs SCOPE. Staff sessions may read; superusers' sessions may also write."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def __call__(self, request: HttpRequest) -> Any:
        key = key_from_header(request)
        if key is not None:
            if not key.has_scope(self.scope):
                raise errors.ScopeMissing(scope=self.scope)
            rate_limit(key)
            _touch(key)
            request.api_key = key  # type: ignore[attr-defined]
            return key
        user = getattr(request, "user", None)
        if user is not None and user.is_active and user.is_staff:
            writes = not self.scope.endswith(":read")
            if writes and not user.is_superuser:
                raise errors.ScopeMissing(scope=self.scope)
            if request.method not in SAFE_METHODS:
                csrf_error = check_csrf(request)
                if csrf_error:
                    raise errors.Unauthorized()
            return user
        raise errors.Unauthorized()

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover
        return None  # __call__ does the work

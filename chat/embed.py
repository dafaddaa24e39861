"""HTTP endpoints the embedded widget reads: its configuration and its string catalogue."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils import translation
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_GET
from django.views.i18n import JSONCatalog

from autoglm_site.languages import ALIASES, language_bidi
from chat.origins import origin_allowed

_catalog_view = JSONCatalog.as_view(domain="djangojs", packages=["chat"])


def _cross_origin(response: HttpResponseBase, *, max_age: int) -> HttpResponseBase:
    # Both answers hold nothing private: any page may read them, which the widget needs when
    # it runs on another site. Whether that site may chat is decided by the WebSocket check.
    response["Access-Control-Allow-Origin"] = "*"
    patch_cache_control(response, public=True, max_age=max_age)
    return response


@require_GET
def widget_config(request: HttpRequest) -> HttpResponseBase:
    """Languages, the site default and whether the asking page's origin may embed the chat.

    `aliases` is autoglm_site.languages.ALIASES, so the widget maps navigator.languages onto a
    code exactly as the server maps Accept-Language (the widget's supported() mirrors
    language_supported).
    """
    origin = request.headers.get("Origin")
    languages: list[dict[str, Any]] = []
    for code, _name in settings.LANGUAGES:
        info = translation.get_language_info(code)
        languages.append({"code": code, "name": info["name_local"], "bidi": language_bidi(code)})
    response = JsonResponse(
        {
            "origin_allowed": origin_allowed(origin),
            "default_language": settings.LANGUAGE_CODE,
            "languages": languages,
            "aliases": dict(ALIASES),
            "assistant_name": settings.CHAT_ASSISTANT_NAME,
            "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        }
    )
    patch_vary_headers(response, ["Origin"])
    return _cross_origin(response, max_age=60)


@require_GET
def widget_catalog(request: HttpRequest, lang: str) -> HttpResponseBase:
    """Django's JSON catalogue of the djangojs domain (the widget's strings) in `lang`."""
    if lang not in {code for code, _name in settings.LANGUAGES}:
        raise Http404("unknown language")
    with translation.override(lang):
        response = _catalog_view(request)
    return _cross_origin(response, max_age=3600)

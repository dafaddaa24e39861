"""HTTP middleware: the interface language of each request (in the product's order of
precedence) and the Content-Security-Policy of the site's pages."""

from __future__ import annotations

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.urls import translate_url
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.deprecation import MiddlewareMixin

from autoglm_site.catalogues import catalogues_reload_if_changed
from autoglm_site.languages import language_supported
from chat.language import language_negotiate


class InterfaceLanguageMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware with the visitor's explicit choice first.

    Order: the language cookie (set by Django's set_language view at /i18n/setlang/) > the URL
    language prefix (/fr/...) > Accept-Language by quality, with regional fallbacks (zh-CN ->
    zh-hans, pt-PT -> pt-br, es-MX -> es; autoglm_site.languages) > settings.LANGUAGE_CODE.
    Django's own middleware ranks the URL prefix above the cookie; a prefixed URL that disagrees
    with the visitor's choice is redirected to the chosen language's URL instead.
    """

    # Django's stubs type process_request as returning None; a middleware may answer early.
    def process_request(  # type: ignore[override]
        self, request: HttpRequest
    ) -> HttpResponseBase | None:
        catalogues_reload_if_changed()  # a translator may have saved in Rosetta
        urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
        i18n_patterns_used, _prefixed_default = is_language_prefix_patterns_used(urlconf)
        chosen = language_supported(request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME))
        from_path = (
            translation.get_language_from_path(request.path_info) if i18n_patterns_used else None
        )
        if chosen and from_path and chosen != from_path:
            with translation.override(from_path):  # the URL resolves in its own language
                target = translate_url(request.get_full_path(), chosen)
            if target != request.get_full_path():
                redirect = self.response_redirect_class(target)
                patch_vary_headers(redirect, ("Cookie",))
                return redirect
        language = (
            chosen
            or from_path
            or language_negotiate(accept_language=request.headers.get("Accept-Language", ""))
        )
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        return None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        response = super().process_response(request, response)
        patch_vary_headers(response, ("Cookie",))
        return response


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """settings.SECURE_CSP as the Content-Security-Policy header of every HTML response.

    A response that has its own policy keeps it. The page's WebSocket origin (ws:// and wss://
    on its host) is added to connect-src, for browsers that do not count it as 'self'.
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        policy: dict[str, list[str]] = getattr(settings, "SECURE_CSP", {})
        content_type = response.get("Content-Type", "")
        if not policy or "Content-Security-Policy" in response:
            return response
        if not content_type.startswith(("text/html", "application/xhtml+xml")):
            return response
        directives = {name: list(sources) for name, sources in policy.items()}
        try:
            host = request.get_host()
        except DisallowedHost:
            host = ""
        if host and "connect-src" in directives:
            directives["connect-src"] += [f"ws://{host}", f"wss://{host}"]
        response["Content-Security-Policy"] = "; ".join(
            " ".join([name, *sources]) for name, sources in directives.items()
        )
        return response

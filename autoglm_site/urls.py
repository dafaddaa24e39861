"""URL routes of the site."""

from __future__ import annotations

from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.i18n import set_language

from autoglm_site import translators, views
from chat import embed

urlpatterns = [
    path("", views.demo, name="demo"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),  # Prometheus; no language prefix
    # The widget's configuration and its strings (Django's catalogue of the djangojs domain).
    path("chat/config", embed.widget_config, name="chat-widget-config"),
    path("jsi18n/<str:lang>/", embed.widget_catalog, name="chat-widget-catalog"),
    # The analytics dashboard, before the admin: it takes the analytics app's admin index.
    path("admin/analytics/", include("analytics.urls")),
    path("admin/", admin.site.urls),
    path("inbox/", include("inbox.urls")),
    path("api/v1/", include("api.urls")),
    # Interface languages: the visitor's choice (a cookie) and the translators' pages.
    path("i18n/setlang/", set_language, name="set_language"),
    re_path(
        r"^rosetta/files/(?P<po_filter>(?!project/)[\w-]+)/",
        translators.catalogues_outside_project,
    ),
    # Rosetta's own page of a catalogue, matched first: a save is checked before it is written.
    re_path(
        r"^rosetta/files/(?P<po_filter>project)/(?P<lang_id>[\w\-_\.@]+)/(?P<idx>\d+)/$",
        translators.CheckedTranslationFormView.as_view(),
    ),
    path("rosetta/", include("rosetta.urls")),
]
# The demo page under a language prefix (/fr/, /zh-hans/); "/" negotiates without one.
urlpatterns += i18n_patterns(path("", views.demo, name="demo-language"))

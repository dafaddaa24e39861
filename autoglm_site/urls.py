"""URL routes of the site."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from autoglm_site import views
from chat import embed

urlpatterns = [
    path("", views.demo, name="demo"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # The widget's configuration and its strings (Django's catalogue of the djangojs domain).
    path("chat/config", embed.widget_config, name="chat-widget-config"),
    path("jsi18n/<str:lang>/", embed.widget_catalog, name="chat-widget-catalog"),
    path("admin/", admin.site.urls),
]

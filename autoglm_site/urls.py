"""URL routes of the site."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from autoglm_site import views

urlpatterns = [
    path("", views.demo, name="demo"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

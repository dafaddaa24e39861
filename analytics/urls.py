"""The analytics dashboard's URL, under /admin/analytics/ (before the admin's own URLs)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from analytics import views

app_name = "analytics"
urlpatterns = [
    # admin_view: the admin's sign-in for anyone not signed in as staff, no caching.
    path("", admin.site.admin_view(views.dashboard), name="dashboard"),
]

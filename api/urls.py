"""/api/v1/: the ninja API, and a JSON 404 for any other path under it."""

from __future__ import annotations

from django.urls import path, re_path

from api.errors import not_found_view
from api.main import api

urlpatterns = [
    path("", api.urls),
    re_path(r"^.*$", not_found_view),
]

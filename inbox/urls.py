"""The inbox's URLs, under /inbox/."""

from __future__ import annotations

from django.urls import path

from inbox import views

app_name = "inbox"
urlpatterns = [
    path("", views.inbox_page, name="page"),
    path("api/me", views.api_me, name="me"),
    path("api/conversations", views.api_conversations, name="conversations"),
    path("api/canned", views.api_canned, name="canned"),
    path("api/knowledge", views.api_knowledge, name="knowledge"),
    path(
        "conversations/<uuid:conversation_id>/transcript.pdf",
        views.transcript,
        name="transcript",
    ),
]

"""The inbox WebSocket route: the agent's session cookie, and only the product's own hosts as
origins (a partner site that embeds the widget must not open an agent's socket)."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from inbox.consumers import InboxConsumer

websocket_urlpatterns = [
    path(
        "ws/inbox/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(InboxConsumer.as_asgi())),
    )
]

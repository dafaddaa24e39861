"""WebSocket routes."""

from __future__ import annotations

from django.urls import path

from chat.consumers import ChatConsumer
from chat.origins import ChatOriginValidator

# ALLOWED_HOSTS plus CHAT_ALLOWED_ORIGINS (the sites that embed the widget).
websocket_urlpatterns = [path("ws/chat/", ChatOriginValidator(ChatConsumer.as_asgi()))]

"""ASGI entry point: Daphne serves HTTP (Django + whitenoise) and the chat WebSocket."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")

from autoglm_site.embedded import ensure_database  # noqa: E402

ensure_database()  # no-op when DATABASE_URL is set

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.origins import ChatOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # ALLOWED_HOSTS plus CHAT_ALLOWED_ORIGINS (sites that embed the widget); others refused.
        # No session/auth middleware: visitors carry their own signed token, and a per-handshake
        # session lookup would queue every connection behind the database.
        "websocket": ChatOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)

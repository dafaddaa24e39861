"""ASGI entry point: Daphne serves HTTP (Django + whitenoise) and the chat WebSocket."""

from __future__ import annotations

import logging
import os
import sys
import threading

# The event loop (every socket, every stream) shares the GIL with the pool threads doing
# database work; at Python's default 5 ms switch interval the loop waits up to 5 ms for the
# GIL after each read or write while a thread computes (measured: acks and deltas queued for
# seconds at 100 conversations). 0.5 ms hands it back sooner (docs/benchmarks.md, "Speed").
sys.setswitchinterval(float(os.environ.get("ASGI_GIL_SWITCH_MS", "0.5")) / 1000)

# One BLAS thread per web process, set before numpy loads: a query embedding is a few small
# matrix products, and idle OpenBLAS workers spin on the cores every socket needs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")

from autoglm_site.embedded import ensure_database  # noqa: E402

ensure_database()  # no-op when DATABASE_URL is set

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from inbox.routing import websocket_urlpatterns as inbox_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The chat: ALLOWED_HOSTS plus CHAT_ALLOWED_ORIGINS (sites that embed the widget);
        # others refused. No session/auth middleware there: visitors carry their own signed
        # token, and a per-handshake session lookup would queue every connection behind the
        # database. The inbox (agents): the session, and the product's own hosts only.
        "websocket": URLRouter([*websocket_urlpatterns, *inbox_urlpatterns]),
    }
)


def _warm_up() -> None:
    """Load the query embedder now, in the background: the first visitor's search would
    otherwise wait for it (a few seconds of CPU), and every process pays it once. Where
    prompts are prepared in a prompt process, it is loaded there instead (this process loads
    it only should it prepare one itself, its worker having died)."""
    from chat import prompt_process

    try:
        if prompt_process.enabled():
            prompt_process.warm_up()
        else:
            from knowledge import embeddings

            embeddings.warm_up()
    except Exception:  # a failure here shows again, with its cause, on the first reply
        logging.getLogger(__name__).warning("warming up the query embedder failed", exc_info=True)


threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()

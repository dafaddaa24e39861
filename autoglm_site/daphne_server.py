"""Daphne with our limits: `python -m autoglm_site.daphne_server [daphne options] app`.

Daphne buffers a WebSocket message of up to 1 MiB before the application sees it; ours are
at most the larger of the chat's and the inbox's frame limits (CHAT_MAX_FRAME_BYTES, 64 KiB).
Past that Daphne closes the socket itself with 1009 ("message too big"); below it, an
oversized chat frame gets the polite `frame_too_large` error. Options given on the command
line win.
"""

from __future__ import annotations

import os
import sys


def websocket_limit() -> int:
    from autoglm_site.env import env_int
    from inbox.schemas import MAX_FRAME_BYTES as INBOX_MAX_FRAME_BYTES

    chat = env_int("CHAT_MAX_FRAME_BYTES", 16_384, minimum=1024)
    return max(chat, INBOX_MAX_FRAME_BYTES)


def arguments(argv: list[str]) -> list[str]:
    extra: list[str] = []
    limit = str(websocket_limit())
    for option in ("--websocket-max-message-size", "--websocket-max-frame-size"):
        if not any(arg == option or arg.startswith(option + "=") for arg in argv):
            extra += [option, limit]
    return [*extra, *argv]


def close_violations_politely() -> None:
    """Autobahn drops the TCP connection of a peer that breaks a limit (failByDrop), so the
    client never reads why; with the option off it is sent the close frame first (1009)."""
    from daphne.ws_protocol import WebSocketFactory

    original = WebSocketFactory.__init__
    if getattr(original, "polite", False):
        return

    def init(self: WebSocketFactory, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    init.polite = True  # type: ignore[attr-defined]
    WebSocketFactory.__init__ = init


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
    from daphne.cli import CommandLineInterface

    close_violations_politely()

    CommandLineInterface().run(arguments(sys.argv[1:]))


if __name__ == "__main__":
    main()

"""A load bench is one address opening many sockets and visitors: the abuse limits
(docs/security.md) are lifted for the servers it starts, so that it measures throughput."""

from __future__ import annotations

LIFTED = {
    name: "1000000"
    for name in (
        "CHAT_RATE_LIMIT_MESSAGES",
        "CHAT_MAX_SOCKETS",
        "CHAT_MAX_SOCKETS_PER_IP",
        "CHAT_NEW_VISITORS_PER_IP_PER_HOUR",
        "CHAT_NEW_VISITORS_PER_MINUTE",
        "CHAT_MESSAGES_PER_IP_PER_MINUTE",
        "CHAT_SOCKET_FRAMES_PER_SECOND",
        "CHAT_SOCKET_FRAME_BURST",
        "CHAT_MAX_ACTIVE_REPLIES",
    )
}

if __name__ == "__main__":  # for shell benches: eval "$(python bench/limits.py)"
    for name, value in LIFTED.items():
        print(f"export {name}=${{{name}:-{value}}}")

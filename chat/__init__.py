"""Conversations between visitors and the assistant: storage, streaming replies, WebSocket."""

"""Abuse limits on the chat socket: per address, global, per socket and per process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from autoglm_site.asgi import application
from chat import abuse
from chat.models import Conversation, Message, Visitor
from tests.chat.wsclient import hello, receive, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


async def _open(
    address: str = "203.0.113.5", forwarded: str | None = None, language: str = "en"
) -> tuple[WebsocketCommunicator, bool]:
    headers = [
        (b"origin", b"http://testserver"),
        (b"host", b"testserver"),
        (b"accept-language", language.encode()),
    ]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    communicator.scope["client"] = (address, 40000)
    connected, _ = await communicator.connect()
    return communicator, connected


async def _closed_with(communicator: WebsocketCommunicator, timeout: float = 5) -> Any:
    """The frames until the server closes, and its close code."""
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            output = await communicator.receive_output(timeout=timeout)
            if output["type"] == "websocket.close":
                return frames, output.get("code")
            frames.append(json.loads(output["text"]))


def test_the_address_is_the_peer_unless_the_peer_is_a_trusted_proxy(settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert abuse.client_address(peer="198.51.100.9", forwarded_for="1.2.3.4") == "198.51.100.9"
    # Behind our proxy: the first address right to left that is not ours.
    forwarded = "6.6.6.6, 198.51.100.9, 10.0.0.3"
    assert abuse.client_address(peer="10.0.0.2", forwarded_for=forwarded) == "198.51.100.9"
    assert abuse.client_address(peer="10.0.0.2", forwarded_for="") == "10.0.0.2"
    assert abuse.client_address(peer="10.0.0.2", forwarded_for="not-an-ip") == "10.0.0.2"
    settings.TRUSTED_PROXIES = []
    assert abuse.client_address(peer="10.0.0.2", forwarded_for="1.2.3.4") == "10.0.0.2"


async def test_sockets_per_address_are_capped_and_others_still_connect(settings: Any) -> None:
    settings.CHAT_MAX_SOCKETS_PER_IP = 3
    open_ones = [(await _open("203.0.113.5"))[0] for _ in range(3)]
    refused, connected = await _open("203.0.113.5")
    assert connected  # told why, in the visitor's language, then closed
    frames, code = await _closed_with(refused)
    assert [f["code"] for f in frames] == ["too_many_connections"]
    assert code == abuse.ABUSE_CLOSE_CODE
    other, _connected = await _open("198.51.100.20")
    assert (await hello(other, locale="en"))["type"] == "welcome"
    await open_ones[0].disconnect()
    again, _connected = await _open("203.0.113.5")  # a closed socket frees its place
    assert (await hello(again, locale="en"))["type"] == "welcome"
    for communicator in [*open_ones[1:], other, again]:
        await communicator.disconnect()
    assert abuse.SOCKETS.total == 0 and not abuse.SOCKETS.per_address


async def test_a_forged_forwarded_header_does_not_escape_the_cap(settings: Any) -> None:
    settings.CHAT_MAX_SOCKETS_PER_IP = 2
    sockets = [(await _open("203.0.113.5", forwarded=f"192.0.2.{i}"))[0] for i in range(2)]
    refused, _connected = await _open("203.0.113.5", forwarded="192.0.2.99")
    _frames, code = await _closed_with(refused)
    assert code == abuse.ABUSE_CLOSE_CODE
    for communicator in sockets:
        await communicator.disconnect()


async def test_tokenless_hellos_from_one_address_are_limited(settings: Any) -> None:
    settings.CHAT_NEW_VISITORS_PER_IP_PER_HOUR = 3
    for _ in range(3):
        communicator, _connected = await _open("203.0.113.7")
        await hello(communicator, locale="de")
        await communicator.disconnect()
    flood, _connected = await _open("203.0.113.7", language="de")
    await send(flood, {"type": "hello", "locale": "de"})
    frames, code = await _closed_with(flood)
    assert [f["code"] for f in frames] == ["too_many_visitors"]
    assert code == abuse.ABUSE_CLOSE_CODE
    assert await Visitor.objects.acount() == 3
    assert "Netzwerk" in frames[0]["message"]  # in the visitor's language


async def test_a_returning_visitor_is_served_when_new_ones_are_limited(settings: Any) -> None:
    first, _connected = await _open("203.0.113.8")
    token = (await hello(first, locale="en"))["token"]
    await first.disconnect()
    settings.CHAT_NEW_VISITORS_PER_IP_PER_HOUR = 1  # the one above used it up
    back, _connected = await _open("203.0.113.8")
    assert (await hello(back, locale="en", token=token))["type"] == "welcome"
    await back.disconnect()


async def test_new_visitors_are_limited_for_everyone(settings: Any) -> None:
    settings.CHAT_NEW_VISITORS_PER_MINUTE = 2
    for index in range(2):
        communicator, _connected = await _open(f"198.51.100.{index}")
        await hello(communicator, locale="en")
        await communicator.disconnect()
    last, _connected = await _open("198.51.100.77")
    await send(last, {"type": "hello", "locale": "en"})
    frames, _code = await _closed_with(last)
    assert frames[0]["code"] == "too_many_visitors"


async def test_messages_per_address_are_limited_across_visitors(settings: Any) -> None:
    settings.CHAT_MESSAGES_PER_IP_PER_MINUTE = 2
    sent = 0
    for visitor in range(2):
        communicator, _connected = await _open("203.0.113.9")
        await hello(communicator, locale="en")
        await send(communicator, {"type": "message", "client_id": f"m{visitor}", "text": "Hi"})
        await receive_until(communicator, "done")
        sent += 1
        await communicator.disconnect()
    third, _connected = await _open("203.0.113.9")
    await hello(third, locale="en")
    await send(third, {"type": "message", "client_id": "m3", "text": "Hi again"})
    refusal = await receive(third)
    assert refusal["code"] == "rate_limited" and refusal["client_id"] == "m3"
    assert await Message.objects.filter(role=Message.Role.USER).acount() == sent
    await third.disconnect()


async def test_a_socket_that_does_not_say_hello_in_time_is_closed(settings: Any) -> None:
    settings.CHAT_HELLO_TIMEOUT_SECONDS = 0.2
    communicator, _connected = await _open()
    frames, code = await _closed_with(communicator)
    assert [f["code"] for f in frames] == ["hello_timeout"]
    assert code == abuse.ABUSE_CLOSE_CODE


async def test_an_idle_socket_is_closed_but_not_while_a_person_is_awaited(
    settings: Any,
) -> None:
    settings.CHAT_HELLO_TIMEOUT_SECONDS = 0.05
    settings.CHAT_IDLE_TIMEOUT_SECONDS = 0.6
    idle, _connected = await _open()
    await hello(idle, locale="en")
    await send(idle, {"type": "ping"})  # pings keep the line alive, not the socket
    assert (await receive(idle))["type"] == "pong"
    _frames, code = await _closed_with(idle)
    assert code == abuse.IDLE_CLOSE_CODE

    waiting, _connected = await _open()
    await hello(waiting, locale="en")
    await send(waiting, {"type": "message", "client_id": "w1", "text": "Hello"})
    ack = (await receive_until(waiting, "done"))[0]
    await Conversation.objects.filter(pk=ack["conversation_id"]).aupdate(
        mode=Conversation.Mode.WAITING
    )
    with pytest.raises(asyncio.TimeoutError):
        await _closed_with(waiting, timeout=1.5)
    await waiting.disconnect()


async def test_a_frame_flood_is_refused_then_closed(settings: Any) -> None:
    settings.CHAT_SOCKET_FRAME_BURST = 5
    settings.CHAT_SOCKET_FRAMES_PER_SECOND = 1
    settings.CHAT_MAX_REFUSED_FRAMES = 10
    communicator, _connected = await _open()
    await hello(communicator, locale="en")
    for _ in range(30):
        await send(communicator, {"type": "ping"})
    frames, code = await _closed_with(communicator)
    kinds = [f.get("code", f["type"]) for f in frames]
    assert kinds.count("pong") == 4  # the burst, less the hello
    assert kinds.count("too_many_requests") == 1  # said once, not once per frame
    assert code == abuse.ABUSE_CLOSE_CODE


async def test_bad_frames_get_errors_then_the_socket_is_closed(settings: Any) -> None:
    settings.CHAT_MAX_REFUSED_FRAMES = 3
    communicator, _connected = await _open()
    await hello(communicator, locale="en")
    for _ in range(4):
        await communicator.send_to(text_data="{not json")
    frames, code = await _closed_with(communicator)
    assert [f["code"] for f in frames] == ["invalid_json"] * 3
    assert code == abuse.ABUSE_CLOSE_CODE


async def test_a_good_frame_forgives_earlier_bad_ones(settings: Any) -> None:
    settings.CHAT_MAX_REFUSED_FRAMES = 2
    communicator, _connected = await _open()
    await hello(communicator, locale="en")
    for _ in range(5):
        await communicator.send_to(text_data="{not json")
        assert (await receive(communicator))["code"] == "invalid_json"
        await send(communicator, {"type": "ping"})
        assert (await receive(communicator))["type"] == "pong"
    await communicator.disconnect()


async def test_a_busy_process_says_so_and_stores_nothing(settings: Any) -> None:
    settings.CHAT_MAX_ACTIVE_REPLIES = 1
    from chat.replies import get_runner

    busy = get_runner()
    original = busy.active
    busy.active = lambda: 1  # type: ignore[method-assign]
    try:
        communicator, _connected = await _open(language="fr")
        await hello(communicator, locale="fr")
        await send(communicator, {"type": "message", "client_id": "b1", "text": "Bonjour"})
        refusal = await receive(communicator)
    finally:
        busy.active = original  # type: ignore[method-assign]
    assert refusal["code"] == "server_busy" and refusal["client_id"] == "b1"
    assert await Message.objects.acount() == 0  # not acknowledged, not stored: the widget keeps it
    await communicator.disconnect()

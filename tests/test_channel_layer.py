"""The local-first Redis channel layer (autoglm_site.channel_layer) on the real Redis: two
layers with their own client prefixes stand for two Daphne processes."""

from __future__ import annotations

import asyncio

import redis

from autoglm_site.channel_layer import LocalFirstRedisChannelLayer
from chat.live import RedisLiveText


def _layer(url: str) -> LocalFirstRedisChannelLayer:
    return LocalFirstRedisChannelLayer(hosts=[{"address": url}], capacity=100, expiry=60)


def _local(layer: LocalFirstRedisChannelLayer, channel: str) -> list[dict[str, str]]:
    """What was handed to this process's CHANNEL in memory."""
    queue = layer.receive_buffer[channel]
    return [queue.get_nowait() for _ in range(queue.qsize())]


def _queued_in_redis(url: str, layer: LocalFirstRedisChannelLayer, channel: str) -> int:
    """How many messages wait in Redis for the other process's CHANNEL."""
    client = redis.Redis.from_url(url)
    return sum(client.zcard(key) for key in client.keys(f"*{layer.non_local_name(channel)}"))


async def test_recoverable_sends_reach_other_processes_once_their_members_are_read_again(
    redis_url: str,
) -> None:
    here, there = _layer(redis_url), _layer(redis_url)
    mine = await here.new_channel()
    await here.group_add("g", mine)
    await here.group_send_recoverable("g", {"type": "chat.delta", "n": "1"})
    assert _local(here, mine) == [{"type": "chat.delta", "n": "1"}]

    # A socket of the other process joins: recoverable sends within the members' fresh time
    # may miss it (its delivery fills the gap), a plain group_send (a reply's end) never does.
    theirs = await there.new_channel()
    await there.group_add("g", theirs)
    await here.group_send_recoverable("g", {"type": "chat.delta", "n": "2"})
    assert _queued_in_redis(redis_url, there, theirs) == 0
    await here.group_send("g", {"type": "chat.done", "n": "3"})
    assert _queued_in_redis(redis_url, there, theirs) == 1
    assert _local(here, mine) == [{"type": "chat.delta", "n": "2"}, {"type": "chat.done", "n": "3"}]

    await asyncio.sleep(LocalFirstRedisChannelLayer.MEMBERS_FRESH_SECONDS + 0.1)
    await here.group_send_recoverable("g", {"type": "chat.delta", "n": "4"})
    assert _queued_in_redis(redis_url, there, theirs) == 2
    assert _local(here, mine) == [{"type": "chat.delta", "n": "4"}]
    for layer in (here, there):
        await layer.close_pools()


async def test_live_text_appends_in_one_command_and_expires(redis_url: str) -> None:
    live = RedisLiveText(redis_url)
    await live.append(7, "Hola, ")
    await live.append(7, "¿qué tal? 你好")
    assert await live.get(7) == "Hola, ¿qué tal? 你好"
    ttl = redis.Redis.from_url(redis_url).ttl("autoglm:live:7")
    assert 3500 < ttl <= 3600
    await live.clear(7)
    assert await live.get(7) is None

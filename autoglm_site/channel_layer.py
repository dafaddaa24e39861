"""The Redis channel layer, with group messages for this process's own sockets kept in memory.

channels_redis's RedisChannelLayer sends every group message through Redis: four round trips to
send it (expire old members, read the members, expire old messages, push), then one blocking
pop per message on the receiving process, one at a time. A reply's deltas nearly always go to a
socket in the process that generates it (the visitor's socket started the reply there), so
those trips are pure cost: measured with 100 conversations, the receiving loop fell seconds
behind the generators (docs/benchmarks.md, "Scale").

This layer keeps channels_redis's behaviour and storage for everything else, and for a group
message:
- reads the group's members and expires old ones in one round trip;
- hands the message to this process's own members in memory (they were added here with
  group_add, so this process knows them without asking Redis);
- sends it through Redis, in one script call per Redis host, only to members in other
  processes (a socket that reconnected to another Daphne process while the reply streams).

A reply's deltas go through group_send_recoverable, which reads the group's members from Redis
at most twice a second per group rather than for every delta (a missed delta is recovered).

Messages handed over in memory are the sender's dict itself, not a copy: receivers must not
modify events (chat.delivery does not).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import weakref
from typing import Any

from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

# channels_redis's group-send script, with the expiry of old messages done in the same call.
_SEND_LUA = """
local over_capacity = 0
local current_time = ARGV[#ARGV - 1]
local expiry = ARGV[#ARGV]
for i=1,#KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, current_time - expiry)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


class LocalFirstRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This process's channels in each group (the groups' other members live in Redis).
        self._local_members: dict[str, set[str]] = collections.defaultdict(set)
        self._local_suffix = self.client_prefix + "!"
        # group -> (until when it is trusted, its members in other processes)
        self._remote_known: dict[str, tuple[float, list[str]]] = {}
        # Per event loop: the task that pops this process's Redis queue (see receive()).
        self._pumps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary()
        )

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message of CHANNEL. For this process's channels, one task per event loop
        pops the process's Redis queue and files each message under its channel, and
        receivers wait on their own in-memory queue: a message handed over in memory is
        received at once (channels_redis lets one receiver at a time wait on Redis for up to
        5 s, and a message put in memory for that receiver waited with it)."""
        if "!" not in channel:
            return await super().receive(channel)  # type: ignore[no-any-return,unused-ignore]
        assert self._is_local(channel), "Wrong client prefix"
        self._pump_for(self.non_local_name(channel))
        queue = self.receive_buffer[channel]
        try:
            message: dict[str, Any] = await queue.get()
        except asyncio.CancelledError:
            # The consumer is gone (its dispatch loop was cancelled): drop its queue.
            self.receive_buffer.pop(channel, None)
            raise
        return message

    def _pump_for(self, real_channel: str) -> None:
        loop = asyncio.get_running_loop()
        task = self._pumps.get(loop)
        if task is None or task.done():
            self._pumps[loop] = loop.create_task(self._pump(real_channel), name="channel-pump")

    async def _pump(self, real_channel: str) -> None:
        while True:
            try:
                target, message = await self.receive_single(real_channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis down: keep trying, as channels_redis's receivers do
                logger.warning("receiving from the channel layer failed", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for name in target if isinstance(target, list) else [target]:
                self.receive_buffer[name].put_nowait(message)

    def _is_local(self, channel: str) -> bool:
        return "!" in channel and self.non_local_name(channel).endswith(self._local_suffix)

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        if self._is_local(channel):
            self._local_members[group].add(channel)

    async def group_discard(self, group: str, channel: str) -> None:
        members = self._local_members.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                del self._local_members[group]
        await super().group_discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert self.require_valid_group_name(group), "Group name not valid"
        await self._send_members(group, message, remote=await self._remote_members(group))

    async def group_send_recoverable(self, group: str, message: dict[str, Any]) -> None:
        """group_send for a message whose receivers recover it when they miss it (a reply's
        delta: the next delta's offset, or the reply's end, shows the gap, which they fill
        from the live text or the database: chat.delivery). The group's members in other
        processes are read from Redis at most every MEMBERS_FRESH_SECONDS per group, not for
        every delta: a socket that joined the group in another process within that time may
        miss a few deltas, and fills them in."""
        assert self.require_valid_group_name(group), "Group name not valid"
        now = time.monotonic()
        known = self._remote_known.get(group)
        if known is None or known[0] <= now:
            remote = await self._remote_members(group)
            if len(self._remote_known) > 10_000:
                self._remote_known = {g: k for g, k in self._remote_known.items() if k[0] > now}
            self._remote_known[group] = (now + self.MEMBERS_FRESH_SECONDS, remote)
        else:
            remote = known[1]
        await self._send_members(group, message, remote=remote)

    # How long group_send_recoverable trusts the members it last read of a group.
    MEMBERS_FRESH_SECONDS = 0.5

    async def _remote_members(self, group: str) -> list[str]:
        """The group's members in other processes (the expired ones removed first)."""
        key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        now = int(time.time())
        async with connection.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, min=0, max=now - self.group_expiry)
            pipe.zrange(key, 0, -1)
            _removed, members = await pipe.execute()
        return [
            name
            for name in (member.decode("utf8") for member in members)
            if not self._is_local(name)
        ]

    async def _send_members(
        self, group: str, message: dict[str, Any], *, remote: list[str]
    ) -> None:
        """MESSAGE to the group's members in this process, in memory, then to REMOTE."""
        for channel in self._local_members.get(group, ()):
            self.receive_buffer[channel].put_nowait(message)
        if remote:
            await self._send_to(remote, message, group=group)

    async def _send_to(self, channels: list[str], message: dict[str, Any], *, group: str) -> None:
        by_connection, messages, capacities = self._map_channel_keys_to_connection(
            channels, message
        )
        for index, keys in by_connection.items():
            args = [messages[key] for key in keys] + [capacities[key] for key in keys]
            args += [time.time(), self.expiry]
            over = await self.connection(index).eval(_SEND_LUA, len(keys), *keys, *args)
            if over:
                logger.info("%s of %s channels over capacity in group %s", over, len(keys), group)

"""Agents for the inbox tests: a user in the Agents group with a profile, signed in."""

from __future__ import annotations

from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from autoglm_site.asgi import application
from autoglm_site.memo import memo_forget_all
from inbox.models import AGENTS_GROUP, AgentProfile


def agent_create(
    username: str = "anna",
    *,
    language: str = "de",
    speaks: list[str] | None = None,
    online: bool = True,
) -> AgentProfile:
    from django.utils import timezone

    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    # get_or_create: transactional tests flush the group the migration made
    user.groups.add(Group.objects.get_or_create(name=AGENTS_GROUP)[0])
    profile = AgentProfile.objects.create(
        user=user,
        display_name=username.title(),
        preferred_language=language,
        languages=speaks or [language],
        last_seen_at=timezone.now() if online else None,
    )
    memo_forget_all()  # "is there an agent" is memoised for a few seconds
    return profile


def session_cookie(profile: AgentProfile) -> str:
    client = Client()
    client.force_login(profile.user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def inbox_connect(cookie: str, *, origin: bytes = b"http://testserver") -> Any:
    communicator = WebsocketCommunicator(
        application,
        "/ws/inbox/",
        headers=[(b"origin", origin), (b"host", b"testserver"), (b"cookie", cookie.encode())],
    )
    connected, code = await communicator.connect()
    return communicator, connected, code

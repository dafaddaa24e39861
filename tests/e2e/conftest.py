"""Browser tests: a real Daphne on the test database, a second origin, and headless Chromium."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("AUTOGLM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Names for the other origins a partner page is served from; they all reach loopback.
    "--host-resolver-rules=MAP shop.test 127.0.0.1, MAP evil.test 127.0.0.1",
]
# The browser tests' screenshots (fake backend) land here; README's come from `make screenshots`.
SCREENSHOTS = Path(
    os.environ.get("AUTOGLM_E2E_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots")
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChatServer:
    """`daphne autoglm_site.asgi:application` on a fixed port, that can be killed and restarted."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a full pipe would block the server.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "autoglm_site.daphne_server",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            [*command, "autoglm_site.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):  # noqa: S310
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log_tail()) from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-reply, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


class PartnerSite:
    """Serves static/embed-demo/index.html on another port, loading the widget from the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.widget_origin = ""
        page = (ROOT / "static" / "embed-demo" / "index.html").read_text(encoding="utf-8")
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                body = page.replace("http://127.0.0.1:8000", site.widget_origin).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}/"


@pytest.fixture(scope="session")
def partner_site() -> Iterator[PartnerSite]:
    site = PartnerSite(free_port())
    yield site
    site.httpd.shutdown()


# The test servers' key: sessions made here for a browser (agent_session) are signed with it.
SERVER_SECRET_KEY = "browser-test-secret-key-0123456789abcdef"


def server_env(partner_site: PartnerSite) -> dict[str, str]:
    """The environment of a test Daphne: the test database, the fake backend, no Redis."""
    database = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@/{database}?host={django_settings.EMBEDDED_PG_DIR}",
        "SECRET_KEY": SERVER_SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Production settings otherwise, but served over plain http on loopback.
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "CHAT_ALLOWED_ORIGINS": f"http://shop.test:{partner_site.port}",
        "LLM_BACKEND": "chat.llm.fake.FakeBackend",
        "CHAT_NO_KNOWLEDGE_REPLY": "model",
        # Slow enough to watch the reply grow and to cut it mid-way.
        "LLM_FAKE_FIRST_TOKEN_MS": "150",
        "LLM_FAKE_TOKEN_MS": "45",
        "CHAT_CHECKPOINT_MS": "100",
        # Short, for the crash test, but not so short that a busy 2-core machine trips it.
        "CHAT_REPLY_LEASE_SECONDS": "4",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    return env


@pytest.fixture
def chat_server(transactional_db: None, partner_site: PartnerSite) -> Iterator[ChatServer]:
    server = ChatServer(server_env(partner_site), free_port())
    partner_site.widget_origin = server.url
    yield server
    server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} (make test installs Debian's chromium)")
    # Playwright's sync API keeps an event loop in this thread, which Django takes for async
    # code; the database work here (fixtures, short reads) is plain sync code. Module-scoped so
    # the switch ends with the browser tests.
    with (
        mock.patch.dict(os.environ, {"DJANGO_ALLOW_ASYNC_UNSAFE": "true"}),
        sync_playwright() as playwright,
    ):
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """new_page(**context_options): a page in a fresh context (its own localStorage)."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1100, "height": 720})
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def redis_chat_servers(
    transactional_db: None, partner_site: PartnerSite, redis_url: str
) -> Iterator[tuple[ChatServer, ChatServer]]:
    """Two Daphne processes sharing the test database and Redis (channel layer and cache)."""
    env = {**server_env(partner_site), "REDIS_URL": redis_url}
    first = ChatServer(env, free_port())
    second = ChatServer(env, free_port())
    partner_site.widget_origin = first.url
    yield first, second
    first.kill()
    second.kill()


def agent_create(*, username: str, name: str, language: str, languages: list[str]) -> Any:
    """An active user in the Agents group with an agent profile (the inbox's users)."""
    from django.contrib.auth.models import Group, User

    from inbox.models import AGENTS_GROUP, AgentProfile

    # The group comes from a migration, which a transactional test's flush removes.
    group, _created = Group.objects.get_or_create(name=AGENTS_GROUP)
    user = User.objects.create_user(username=username, password="agent-password-0123")
    user.groups.add(group)
    AgentProfile.objects.create(
        user=user, display_name=name, preferred_language=language, languages=languages
    )
    return user


@pytest.fixture
def agent_de(transactional_db: None) -> Any:
    """Anna, an agent who works in German. Ask for it before the server: whether the human
    side is on is read when the server first needs it."""
    return agent_create(username="anna", name="Anna", language="de", languages=["de"])


@pytest.fixture
def agent_ar(transactional_db: None) -> Any:
    """Karim, an agent who works in Arabic (a right-to-left inbox)."""
    return agent_create(username="karim", name="Karim", language="ar", languages=["ar"])


def agent_session(user: Any) -> str:
    """The key of a signed-in session of USER, valid for the test servers (their SECRET_KEY)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import override_settings

    with override_settings(SECRET_KEY=SERVER_SECRET_KEY):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        assert session.session_key is not None
        return session.session_key


@pytest.fixture
def agent_page(new_page: Any) -> Any:
    """agent_page(server, user, **context_options): USER's inbox, signed in, loaded."""

    def make(server: ChatServer, user: Any, **options: Any) -> Any:
        page = new_page(**options)
        page.context.add_cookies(
            [{"name": "sessionid", "value": agent_session(user), "url": server.url}]
        )
        page.goto(server.url + "/inbox/")
        page.locator("#list").wait_for(state="attached")
        return page

    return make

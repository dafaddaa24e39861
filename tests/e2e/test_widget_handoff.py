"""The visitor's side of the human handoff in the widget, in Chromium against a real Daphne:
the "talk to a person" control, the waiting banner, agents' messages with their translation,
the agent typing, CSAT after a resolve, the e-mail form when nobody is online, the transcript
(docs/widget.md, "A person in the conversation")."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import translation

from chat.models import Conversation, Message
from inbox.models import AgentProfile, Csat
from tests.e2e.conftest import ChatServer, agent_create, agent_session, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT_JS = "document.querySelector('autoglm-chat').shadowRoot"
AGENT_TEXT = "Your order #4417 ships tomorrow, see https://shop.example.com/orders"


@pytest.fixture
def new_page(new_page: Any) -> Iterator[Any]:
    """conftest's new_page, and an uncaught error in any of its pages fails the test."""
    errors: list[str] = []

    def make(**options: Any) -> Any:
        page = new_page(**options)
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    assert errors == []


def w(page: Any, selector: str) -> Any:
    return page.locator(f"autoglm-chat >> {selector}")


def open_chat(page: Any, url: str) -> None:
    page.goto(url)
    w(page, ".launch").click()
    w(page, "textarea").wait_for()


def ask(page: Any, text: str) -> None:
    w(page, "textarea").fill(text)
    w(page, "textarea").press("Enter")


def wait_first_reply(page: Any) -> None:
    """The assistant's reply to a short greeting (short: no "no knowledge" handoff)."""
    w(page, ".m.assistant >> nth=1 >> .rate >> nth=0").wait_for()


def conversation() -> Conversation:
    return Conversation.objects.get()


@pytest.fixture
def agent(transactional_db: None) -> AgentProfile:
    """Anna, an agent who writes English: the human side is on ("auto"). Asked for before the
    page connects: the server reads whether it is on when it first needs it."""
    user = agent_create(username="anna", name="Anna", language="en", languages=["en"])
    return AgentProfile.objects.get(user=user)


class InboxSocket:
    """An agent's inbox WebSocket (docs/inbox.md), opened in a page of the chat server's own
    origin with the agent's session: while it is open the agent is online."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def send(self, frame: dict[str, Any]) -> None:
        self.page.evaluate("f => window.__inbox.send(JSON.stringify(f))", frame)

    def wait(self, predicate_js: str, timeout: float = 15_000) -> dict[str, Any]:
        """The first frame received for which PREDICATE_JS (a JS expression of `f`) holds."""
        handle = self.page.wait_for_function(
            f"() => window.__frames.find(f => {predicate_js}) || null", timeout=timeout
        )
        found: dict[str, Any] = handle.json_value()
        return found


@pytest.fixture
def inbox_socket(new_page: Any, chat_server: ChatServer) -> Callable[[AgentProfile], InboxSocket]:
    def make(profile: AgentProfile) -> InboxSocket:
        page = new_page()
        session = agent_session(profile.user)
        page.context.add_cookies([{"name": "sessionid", "value": session, "url": chat_server.url}])
        page.goto(chat_server.url + "/healthz")
        page.evaluate(
            """url => new Promise((ok, fail) => {
                window.__frames = [];
                const s = window.__inbox = new WebSocket(url);
                s.onmessage = e => window.__frames.push(JSON.parse(e.data));
                s.onopen = () => ok(); s.onclose = e => fail('closed ' + e.code);
            })""",
            chat_server.url.replace("http", "ws") + "/ws/inbox/",
        )
        return InboxSocket(page)

    return make


def test_no_handoff_control_while_the_human_side_is_off(
    chat_server: ChatServer, new_page: Any
) -> None:
    page = new_page()
    open_chat(page, chat_server.url + "/")
    ask(page, "Hello")
    wait_first_reply(page)
    assert w(page, ".handoff").count() == 0
    assert w(page, ".wait").is_hidden()
    # The transcript link is part of the human side's frames too: the server has them.
    assert w(page, ".trl").is_visible()


def test_handoff_in_arabic_translated_agent_message_typing_and_csat(
    chat_server: ChatServer,
    new_page: Any,
    agent: AgentProfile,
    inbox_socket: Callable[[AgentProfile], InboxSocket],
) -> None:
    inbox = inbox_socket(agent)  # Anna is online
    page = new_page(locale="ar")
    open_chat(page, chat_server.url + "/")
    assert w(page, ".w").get_attribute("dir") == "rtl"
    # No conversation yet: nothing to hand to a person.
    assert w(page, ".handoff").count() == 0
    ask(page, "مرحبا")
    wait_first_reply(page)
    handoff = w(page, ".handoff")
    handoff.wait_for()
    # Right to left: the control starts at the panel's right edge.
    panel, button = w(page, ".panel").bounding_box(), handoff.bounding_box()
    assert button["x"] + button["width"] > panel["x"] + panel["width"] - 60
    handoff.click()

    w(page, ".wait").wait_for()
    assert w(page, ".handoff").count() == 0
    system = Message.objects.filter(role=Message.Role.SYSTEM).get()
    assert system.language == "ar"
    line = w(page, ".m.system").first
    line.wait_for()
    assert line.inner_text() == system.text
    assert line.get_attribute("dir") == "auto" and line.get_attribute("lang") == "ar"
    assert conversation().mode == Conversation.Mode.WAITING
    assert w(page, ".card input[type=email]").count() == 0  # someone is online: no e-mail form
    screenshot(page, "widget-handoff-waiting.png")

    conversation_id = str(conversation().pk)
    inbox.send({"type": "open", "conversation_id": conversation_id, "ref": "o"})
    inbox.wait("f.type === 'conversation' && f.ref === 'o'")
    inbox.send({"type": "claim", "conversation_id": conversation_id, "ref": "c"})
    inbox.wait("f.type === 'ok' && f.ref === 'c'")
    with translation.override("ar"):
        joined = translation.gettext("%(name)s joined the conversation.") % {"name": "Anna"}
    w(page, f".m.system >> text={joined}").wait_for()
    w(page, ".wait").wait_for(state="hidden")
    assert "Anna" in w(page, ".who").inner_text()

    # The agent types: the visitor sees it, for a few seconds.
    inbox.send({"type": "typing", "conversation_id": conversation_id})
    w(page, ".typ >> text=Anna").wait_for()
    # The visitor types: the agent sees it.
    w(page, "textarea").press_sequentially("شكرا")
    inbox.wait("f.type === 'typing' && f.who === 'visitor'")
    w(page, "textarea").fill("")

    inbox.send(
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_id": "a1",
            "text": AGENT_TEXT,
            "ref": "s",
        }
    )
    message = w(page, ".m.agent")
    message.wait_for()
    assert message.locator(".an").inner_text() == "Anna"
    # The fake translator labels its output "[ar] ..." and keeps the number and the link.
    body = message.locator(".b")
    page.wait_for_function(
        f"() => {ROOT_JS}.querySelector('.m.agent .b')?.textContent.startsWith('[ar]')"
    )
    translated = body.inner_text()
    assert "#4417" in translated and "https://shop.example.com/orders" in translated
    assert body.get_attribute("lang") == "ar" and body.get_attribute("dir") == "auto"
    assert message.locator(".tr").inner_text() != ""
    toggle = message.locator(".tog")
    assert toggle.get_attribute("aria-pressed") == "false"
    screenshot(page, "widget-agent-translated.png")
    toggle.click()
    assert body.inner_text() == AGENT_TEXT
    assert body.get_attribute("lang") == "en"
    assert message.locator(".tog").get_attribute("aria-pressed") == "true"
    message.locator(".tog").click()
    assert body.inner_text() == translated
    # An agent message is not an assistant reply: no thumbs, no copy.
    assert message.locator(".rate").count() == 0
    assert w(page, ".m.agent").count() == 1

    # Resolved: the visitor is asked to rate, in five buttons reachable by keyboard.
    inbox.send({"type": "resolve", "conversation_id": conversation_id, "ref": "r"})
    inbox.wait("f.type === 'ok' && f.ref === 'r'")
    stars = w(page, ".stars button")
    stars.first.wait_for()
    assert stars.count() == 5
    labels = [stars.nth(i).get_attribute("aria-label") for i in range(5)]
    assert len(set(labels)) == 5 and all(labels)
    stars.first.focus()
    for _ in range(3):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert stars.nth(3).get_attribute("aria-pressed") == "true"
    w(page, ".card input").fill("سريع ومفيد")
    screenshot(page, "widget-csat.png")
    w(page, ".card button[type=submit]").click()
    w(page, ".card .ok").wait_for()
    csat = Csat.objects.get()
    assert (csat.rating, csat.comment, csat.agent_id) == (4, "سريع ومفيد", agent.user_id)
    assert w(page, ".stars").count() == 0

    # The transcript by e-mail, from the link under the conversation.
    w(page, ".trl").click()
    address = w(page, ".tools input[type=email]")
    assert page.evaluate(f"{ROOT_JS}.activeElement.id") == "ta"
    address.fill("visitor@example.com")
    address.press("Enter")
    w(page, ".tools .ok >> text=visitor@example.com").wait_for()
    assert w(page, ".tools input").count() == 0


def test_email_form_when_no_agent_is_online(
    chat_server: ChatServer, new_page: Any, agent: AgentProfile
) -> None:
    page = new_page(locale="en-US")
    open_chat(page, chat_server.url + "/")
    ask(page, "Hi")
    wait_first_reply(page)
    w(page, ".handoff").click()
    w(page, ".wait").wait_for()
    with translation.override("en"):
        assert "Nobody from our team" in w(page, ".m.system").first.inner_text()
    field = w(page, ".card input[type=email]")
    field.wait_for()
    field.fill("not an address")
    field.press("Enter")
    error = w(page, ".card .err")
    error.wait_for()
    assert error.inner_text()  # the server's message, by the field
    assert field.get_attribute("aria-invalid") == "true"
    assert field.get_attribute("aria-describedby") == error.get_attribute("id")
    field.fill("visitor@example.com")
    w(page, ".card button[type=submit]").click()
    field.wait_for(state="detached")
    w(page, ".m.system >> text=visitor@example.com").wait_for()
    stored = conversation()
    assert (stored.visitor_email, stored.is_ticket) == ("visitor@example.com", True)
    # The transcript form offers the address just left.
    w(page, ".trl").click()
    assert w(page, ".tools input[type=email]").input_value() == "visitor@example.com"


# An older server: no `state` in welcome, no `state` frames.
WITHOUT_STATE = """(() => {
  const Native = window.WebSocket;
  window.WebSocket = function (url, protocols) {
    const s = new Native(url, protocols);
    Object.defineProperty(s, "onmessage", { set(handler) {
      s.addEventListener("message", ev => {
        const frame = JSON.parse(ev.data);
        if (frame.type === "state") return;
        delete frame.state;
        handler({ data: JSON.stringify(frame) });
      });
    }, get() { return null; } });
    return s;
  };
  window.WebSocket.prototype = Native.prototype;
})()"""


def test_a_server_without_state_shows_no_human_controls(
    chat_server: ChatServer, new_page: Any, agent: AgentProfile
) -> None:
    page = new_page()
    page.add_init_script(WITHOUT_STATE)
    open_chat(page, chat_server.url + "/")
    ask(page, "Hello")
    wait_first_reply(page)
    assert json.loads(page.evaluate("JSON.stringify(localStorage)"))  # the widget ran
    assert w(page, ".handoff").count() == 0
    assert w(page, ".trl").count() == 0
    assert w(page, ".tools").is_hidden()
    assert w(page, ".wait").is_hidden()


def test_agent_message_without_translation_is_marked_not_translated(
    chat_server: ChatServer,
    new_page: Any,
    agent: AgentProfile,
    inbox_socket: Callable[[AgentProfile], InboxSocket],
) -> None:
    inbox = inbox_socket(agent)
    page = new_page(locale="ar")
    open_chat(page, chat_server.url + "/")
    ask(page, "مرحبا")
    wait_first_reply(page)
    conversation_id = str(conversation().pk)
    # Translation off for this conversation: the English original shows, marked.
    inbox.send({"type": "translation", "conversation_id": conversation_id, "enabled": False})
    inbox.send(
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_id": "a1",
            "text": "Hello, I am Anna.",
            "ref": "s",
        }
    )
    message = w(page, ".m.agent")
    message.locator(".tr").wait_for()
    assert message.locator(".b").inner_text() == "Hello, I am Anna."
    assert message.locator(".b").get_attribute("lang") == "en"
    assert message.locator(".tog").count() == 0
    # The visitor's side followed the claim the message made.
    w(page, ".who >> text=Anna").wait_for()
    assert w(page, ".handoff").count() == 0

"""The embeddable widget in headless Chromium against a real Daphne (docs/widget.md)."""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Message
from tests.e2e.conftest import ChatServer, PartnerSite, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT_JS = "document.querySelector('autoglm-chat').shadowRoot"
REPLIES_JS = f"""() => [...{ROOT_JS}.querySelectorAll('.m.assistant')].slice(1).map(m => ({{
    text: m.querySelector('.dots') ? '' : m.querySelector('.b').textContent,
    done: !!m.querySelector('.rate'), typing: !!m.querySelector('.dots')}}))"""
LONG_QUESTION = (
    "Please explain in detail how storage quotas work across the Free and Pro plans, what "
    "happens when a team goes over its limit, and how archived files are counted each month"
)


def w(page: Any, selector: str) -> Any:
    return page.locator(f"autoglm-chat >> {selector}")


def open_chat(page: Any, url: str) -> None:
    page.goto(url)
    w(page, ".launch").click()
    w(page, "textarea").wait_for()
    assert page.evaluate(f"{ROOT_JS}.activeElement.tagName") == "TEXTAREA"


def ask(page: Any, text: str) -> None:
    w(page, "textarea").fill(text)
    w(page, "textarea").press("Enter")


def replies(page: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.evaluate(REPLIES_JS)
    return result


def wait_replies_done(page: Any, count: int, timeout: float = 20_000) -> list[str]:
    page.wait_for_function(
        f"() => {{ const r = ({REPLIES_JS})(); "
        f"return r.length === {count} && r.every(x => x.done); }}",
        timeout=timeout,
    )
    return [reply["text"] for reply in replies(page)]


def stored_replies() -> list[str]:
    rows = Message.objects.filter(role=Message.Role.ASSISTANT).order_by("id")
    return [m.text for m in rows if m.status == Message.Status.COMPLETE]


def test_reply_streams_in_and_history_survives_reload_and_second_tab(
    chat_server: ChatServer, new_page: Any
) -> None:
    page = new_page()
    open_chat(page, chat_server.url + "/")
    ask(page, LONG_QUESTION)
    # Typing indicator before the first token, then text that grows while the stop button shows.
    w(page, ".dots").wait_for()
    page.wait_for_function(
        f"() => {{ const r = ({REPLIES_JS})(); return r.length === 1 && r[0].text.length > 0 "
        "&& !r[0].done; }"
    )
    assert w(page, ".stop").is_visible()
    partial = replies(page)[0]["text"]
    texts = wait_replies_done(page, 1)
    assert texts == stored_replies()
    assert texts[0].startswith(partial) and len(texts[0]) > len(partial)
    assert not w(page, ".stop").is_visible()
    assert w(page, ".m.user .b").inner_text() == LONG_QUESTION
    screenshot(page, "widget-desktop.png")

    page.reload()
    w(page, ".launch").click()
    assert wait_replies_done(page, 1) == texts
    assert w(page, ".m.user").count() == 1

    # A second tab shows the same conversation and sees what the first one sends.
    second = page.context.new_page()
    second.goto(chat_server.url + "/")
    w(second, ".launch").click()
    assert wait_replies_done(second, 1) == texts
    ask(second, "And what about invoices?")
    both = wait_replies_done(page, 2)
    assert both == wait_replies_done(second, 2) == stored_replies()
    assert w(page, ".m.user").count() == 2


def test_dropped_socket_mid_reply_resumes_with_the_full_text_once(
    chat_server: ChatServer, new_page: Any
) -> None:
    page = new_page()
    page.add_init_script(
        "(() => { const Native = window.WebSocket; window.__sockets = [];"
        " window.WebSocket = function (url, p) { const s = new Native(url, p);"
        " window.__sockets.push(s); return s; };"
        " window.WebSocket.prototype = Native.prototype; })()"
    )
    open_chat(page, chat_server.url + "/")
    ask(page, LONG_QUESTION)
    page.wait_for_function(f"() => {{ const r = ({REPLIES_JS})(); return r[0]?.text.length > 20 }}")
    page.evaluate("window.__sockets.at(-1).close()")
    texts = wait_replies_done(page, 1)
    assert page.evaluate("window.__sockets.length") >= 2  # it did reconnect
    assert texts == stored_replies()


def test_server_crash_mid_reply_resumes_and_sends_the_offline_queue_once(
    chat_server: ChatServer, new_page: Any
) -> None:
    page = new_page()
    open_chat(page, chat_server.url + "/")
    ask(page, LONG_QUESTION)
    page.wait_for_function(f"() => {{ const r = ({REPLIES_JS})(); return r[0]?.text.length > 20 }}")
    chat_server.kill()
    # Typed while the server is down: queued, with a visible state.
    ask(page, "Is my data safe?")
    w(page, ".conn.bad").wait_for()
    assert "Waiting for connection" in w(page, ".m.user >> nth=1").inner_text()

    chat_server.start()
    page.evaluate("window.dispatchEvent(new Event('online'))")  # skip the backoff wait
    texts = wait_replies_done(page, 2, timeout=30_000)
    assert texts == stored_replies()
    assert texts[0].count("You asked") == 1
    assert w(page, ".m.user").count() == 2
    assert Message.objects.filter(role=Message.Role.USER).count() == 2
    assert not w(page, ".conn.bad").is_visible()


def test_arabic_locale_renders_right_to_left(chat_server: ChatServer, new_page: Any) -> None:
    page = new_page(locale="ar")
    catalogues: list[str] = []
    page.on("request", lambda r: "/jsi18n/" in r.url and catalogues.append(r.url))
    open_chat(page, chat_server.url + "/")
    assert w(page, ".w").get_attribute("dir") == "rtl"
    assert w(page, ".w").get_attribute("lang") == "ar"
    assert catalogues == [chat_server.url + "/jsi18n/ar/"]
    assert w(page, "select.lang").input_value() == "ar"
    ask(page, "كيف أغيّر كلمة المرور في Northwind Cloud؟")
    wait_replies_done(page, 1)
    # Mirrored: the panel hugs the left edge, the visitor's bubble sits on the left side.
    panel = w(page, ".panel").bounding_box()
    assert panel["x"] < 50
    user, reply = w(page, ".m.user").bounding_box(), w(page, ".m.assistant >> nth=1").bounding_box()
    assert user["x"] < reply["x"]
    assert w(page, ".m.user .b").get_attribute("dir") == "auto"
    screenshot(page, "widget-desktop-arabic.png")

    # The visitor's choice in the menu wins over the browser's languages, also after a reload.
    w(page, "select.lang").select_option("en")
    page.wait_for_function(f"() => {ROOT_JS}.querySelector('.w').dir === 'ltr'")
    page.reload()
    w(page, ".launch").wait_for()
    assert w(page, ".w").get_attribute("dir") == "ltr"


HOSTILE = "\n".join(
    [
        "<script>window.__pwned = 'script'</script>",
        "<img src=x onerror=\"window.__pwned='img'\">",
        "[click me](javascript:window.__pwned='link') and [two](JaVaScRiPt:alert(1))",
        "[tab](java\tscript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=)",
        "![pixel](http://tracker.invalid/p.png)",
        "<style>*{display:none!important}</style>",
        '<div style="position:fixed;inset:0;background:red">cover</div>',
        '<a href="javascript:alert(1)">raw</a> <iframe src="http://tracker.invalid/"></iframe>',
        "**bold** and [safe](https://example.com/safe)",
        "x" * 1500,
    ]
)


def test_hostile_markdown_stays_inert(chat_server: ChatServer, new_page: Any) -> None:
    page = new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    open_chat(page, chat_server.url + "/")
    ask(page, HOSTILE)
    wait_replies_done(page, 1)
    log = f"{ROOT_JS}.querySelector('.log')"
    assert page.evaluate("window.__pwned") is None
    tags = page.evaluate(f"[...{log}.querySelectorAll('*')].map(e => e.tagName.toLowerCase())")
    assert not {"script", "img", "iframe", "style", "object", "embed"} & set(tags)
    assert "strong" in tags
    attrs = page.evaluate(
        f"[...{log}.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))"
    )
    assert not [a for a in attrs if a.startswith("on") or a in {"style", "src", "srcdoc"}]
    hrefs = page.evaluate(f"[...{log}.querySelectorAll('a')].map(a => a.href)")
    assert "https://example.com/safe" in hrefs
    assert all(h.startswith(("http://", "https://", "mailto:")) for h in hrefs)
    assert not [u for u in requests if "tracker.invalid" in u]
    # Very long unbroken text wraps inside the bubble instead of widening the panel.
    overflow = page.evaluate(
        f"[...{log}.querySelectorAll('.b')].some(b => b.scrollWidth > b.clientWidth + 1)"
    )
    assert overflow is False
    assert w(page, ".panel").is_visible()


def test_partner_origin_in_the_allow_list_can_chat(
    chat_server: ChatServer, partner_site: PartnerSite, new_page: Any
) -> None:
    page = new_page()
    page.goto(partner_site.url("shop.test"))
    w(page, ".launch").wait_for()
    # data-position="left" and the page's colour; the page's own CSS does not reach inside.
    assert w(page, ".launch").bounding_box()["x"] < 100
    assert "rgb(11, 110, 79)" in w(page, ".launch").evaluate("e => getComputedStyle(e).background")
    font = w(page, ".launch").evaluate("e => getComputedStyle(e).fontFamily")
    assert "Comic Sans" not in font
    page.click("#open")  # the host page's button calls AutoGLM.open()
    assert "Hi from Contoso" in w(page, ".m.assistant").first.inner_text()
    ask(page, "Where is my order?")
    assert wait_replies_done(page, 1) == stored_replies()
    page.locator("#events li", has_text="reply").wait_for()


def test_page_from_an_origin_not_allowed_is_refused(
    chat_server: ChatServer, partner_site: PartnerSite, new_page: Any
) -> None:
    page = new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(partner_site.url("evil.test"))
    page.locator("#events li", has_text="refused").wait_for()
    assert any("not allowed" in e and "CHAT_ALLOWED_ORIGINS" in e for e in errors)
    assert page.locator("autoglm-chat").count() == 0
    # The server itself refuses the handshake, whatever the page's script does.
    outcome = page.evaluate(
        "url => new Promise(done => { const s = new WebSocket(url);"
        " s.onopen = () => done('open'); s.onclose = () => done('refused'); })",
        chat_server.url.replace("http", "ws") + "/ws/chat/",
    )
    assert outcome == "refused"


def test_keyboard_only_flow(chat_server: ChatServer, new_page: Any) -> None:
    page = new_page()
    page.goto(chat_server.url + "/")
    w(page, ".launch").wait_for()
    active = f"{ROOT_JS}.activeElement?.className"
    page.keyboard.press("Tab")
    assert page.evaluate(active) == "launch"
    page.keyboard.press("Enter")
    assert page.evaluate(f"{ROOT_JS}.activeElement.tagName") == "TEXTAREA"
    assert w(page, ".panel").get_attribute("role") == "dialog"
    assert w(page, ".log").get_attribute("role") == "log"
    assert w(page, "[aria-live=polite]").count() >= 1
    page.keyboard.type("Two lines:")
    page.keyboard.press("Shift+Enter")
    # Long enough (a reply of ~250 tokens) that it still streams when Stop is pressed.
    page.keyboard.insert_text(" ".join([LONG_QUESTION] * 6))
    assert "\n" in w(page, "textarea").input_value()
    page.keyboard.press("Enter")
    w(page, ".stop").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate(active) == "stop"
    page.keyboard.press("Enter")
    w(page, ".m.assistant >> text=Stopped").wait_for()
    assert page.evaluate(f"{ROOT_JS}.activeElement.tagName") == "TEXTAREA"
    page.keyboard.press("Escape")
    assert w(page, ".panel").is_hidden()
    assert page.evaluate(active) == "launch"
    assert w(page, ".launch").get_attribute("aria-expanded") == "false"


def test_phone_and_zoomed_layouts_fit(chat_server: ChatServer, new_page: Any) -> None:
    phone = new_page(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    open_chat(phone, chat_server.url + "/")
    ask(phone, "How do I reset my password?")
    wait_replies_done(phone, 1)
    box = w(phone, ".panel").bounding_box()
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 360, 740)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(phone, "widget-phone.png")
    # 200% zoom of a 1280x800 window leaves 640x400 CSS pixels: everything still reachable.
    zoomed = new_page(viewport={"width": 640, "height": 400})
    open_chat(zoomed, chat_server.url + "/")
    for selector in ("textarea", ".send", ".close", "select.lang"):
        b = w(zoomed, selector).bounding_box()
        assert b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= 640
        assert b["y"] + b["height"] <= 400


def test_identify_null_clears_the_stored_conversation_for_the_next_person(
    chat_server: ChatServer, new_page: Any
) -> None:
    page = new_page()
    open_chat(page, chat_server.url + "/")
    page.evaluate("() => window.AutoGLM.identify({token: 'minted.by.the.host'})")
    ask(page, "My order number is 1234")
    wait_replies_done(page, 1)
    stored_js = "() => JSON.parse(localStorage.getItem('autoglm:' + location.host) || '{}')"
    page.wait_for_function(f"() => ({stored_js})().conversation_id")
    before = page.evaluate(stored_js)
    assert before["token"]

    page.evaluate("() => window.AutoGLM.identify(null)")  # the host site's sign-out
    after = page.evaluate(stored_js)
    assert after["conversation_id"] is None and after["messages"] == []
    assert after["token"] != before["token"]
    assert w(page, ".m.user").count() == 0
    # A new visitor's welcome comes, with a token of its own; a reload shows nothing old.
    page.wait_for_function(f"() => ({stored_js})().token")
    assert page.evaluate(stored_js)["token"] != before["token"]
    page.reload()
    w(page, ".launch").click()
    w(page, "textarea").wait_for()
    assert w(page, ".m.user").count() == 0


def test_an_idle_socket_closes_and_the_widget_reconnects_when_the_visitor_is_back(
    partner_site: PartnerSite, new_page: Any
) -> None:
    import time

    from tests.e2e.conftest import free_port, server_env

    env = {**server_env(partner_site), "CHAT_IDLE_TIMEOUT_SECONDS": "2"}
    server = ChatServer(env, free_port())
    try:
        page = new_page()
        sockets: list[Any] = []
        page.on("websocket", lambda socket: sockets.append(socket))
        open_chat(page, server.url + "/")
        ask(page, "Hello there")
        wait_replies_done(page, 1)
        deadline = time.monotonic() + 15
        while not sockets[0].is_closed() and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert sockets[0].is_closed()  # closed for being idle (4001)...
        page.wait_for_timeout(3000)
        assert len(sockets) == 1  # ...and not reopened while nobody is there
        ask(page, "Are you still there?")  # the visitor types: the widget reconnects
        assert wait_replies_done(page, 2)[-1]
        assert len(sockets) == 2
    finally:
        server.kill()

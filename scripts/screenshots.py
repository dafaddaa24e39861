"""README's screenshots: the widget answering real questions with the packaged model.

Starts Daphne on the embedded defaults (the packaged PostgreSQL with the demo knowledge base,
the local engine with the packaged Qwen2.5 model: `make screenshots` prepares both), opens the
demo page in headless Chromium and asks one question in English, Chinese and Arabic on a
desktop and one on a 360 px phone, waits for each streamed answer and its citations, and writes
docs/screenshots/answer-*.png. Each reply is generated for real: several minutes on 2 cores.

    .venv/bin/python scripts/screenshots.py [--port 8124] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("AUTOGLM_CHROMIUM", "/usr/bin/chromium")
ROOT_JS = "document.querySelector('autoglm-chat').shadowRoot"
DONE_JS = f"""(count) => {{
    const r = [...{ROOT_JS}.querySelectorAll('.m.assistant')].slice(1);
    return r.length === count && r.every(m => !!m.querySelector('.rate'));
}}"""
REPLY_JS = f"""() => {{
    const r = [...{ROOT_JS}.querySelectorAll('.m.assistant')].slice(1);
    const last = r[r.length - 1];
    return {{text: last.querySelector('.b').textContent,
             sources: last.querySelectorAll('.src li, .sources li, li').length}};
}}"""

SHOTS = [
    # (file, browser locale, viewport, question)
    ("answer-english.png", "en-US", (1100, 760), "How do I reset my password?"),
    ("answer-chinese.png", "zh-CN", (1100, 760), "年度套餐可以退款吗？"),
    ("answer-arabic.png", "ar", (1100, 760), "ما هي حدود التخزين في الخطة المجانية؟"),
    ("answer-phone.png", "en-US", (360, 740), "How do I delete my account?"),
]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"daphne did not answer at {url} within {timeout:g} s")


def shoot(browser: Any, url: str, out: Path, shot: tuple[str, str, tuple[int, int], str]) -> None:
    name, locale, (width, height), question = shot
    phone = width < 500
    context = browser.new_context(
        locale=locale,
        viewport={"width": width, "height": height},
        is_mobile=phone,
        has_touch=phone,
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(url + "/")
    page.locator("autoglm-chat >> .launch").click()
    textarea = page.locator("autoglm-chat >> textarea")
    textarea.wait_for()
    textarea.fill(question)
    textarea.press("Enter")
    started = time.monotonic()
    page.wait_for_function(DONE_JS, arg=1, timeout=300_000)
    reply = page.evaluate(REPLY_JS)
    # Show the question with the start of its answer (the log scrolls to the end of a long one).
    page.evaluate(
        f"() => {{ const u = [...{ROOT_JS}.querySelectorAll('.m.user')].pop(); "
        "u.scrollIntoView({block: 'start'}); }"
    )
    page.wait_for_timeout(300)  # let the last frame paint
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / name))
    took = time.monotonic() - started
    print(f"{name}: {question!r} answered in {took:.1f} s: {reply['text'][:160]!r}")
    context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(args.port)]
        + ["autoglm_site.asgi:application"],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_healthy(url, server)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            for shot in SHOTS:
                shoot(browser, url, args.out, shot)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

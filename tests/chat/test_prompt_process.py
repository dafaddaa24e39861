"""Reply prompts prepared in a process of their own (chat/prompt_process.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from chat import prompt_process
from tests.chat.wsclient import connect, hello, receive_until, send, text_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _one_prompt_process(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings.CHAT_PROMPT_PROCESSES = 1
    yield
    prompt_process.shutdown()  # its settings were this test's; its connection closes too


def _worker_pids() -> list[int]:
    pool = prompt_process._pool
    return [] if pool is None else list((pool._processes or {}).keys())


async def _ask(communicator, client_id: str, text: str):  # type: ignore[no-untyped-def]
    await send(communicator, {"type": "message", "client_id": client_id, "text": text})
    frames = await receive_until(communicator, "done", timeout=60)  # the first starts Django
    ack = next(f for f in frames if f["type"] == "ack")
    return ack, frames


async def test_replies_are_prepared_in_the_prompt_process_with_the_conversation() -> None:
    communicator = await connect()
    await hello(communicator, locale="en")
    _ack, _frames = await _ask(communicator, "p1", "How do I reset my password?")
    ack, frames = await _ask(communicator, "p2", "And my e-mail address?")
    # The fake backend answers from the request it was given: built in the worker, from the
    # stored conversation (two questions), with the test's own settings.
    assert text_of(frames, ack["reply_id"]) == (
        "You asked: «And my e-mail address?». This is question 2 of our conversation."
        " Earlier you asked: «How do I reset my password?»."
    )
    assert frames[-1]["status"] == "complete"
    pids = _worker_pids()
    assert pids and os.getpid() not in pids
    await communicator.disconnect()


async def test_a_killed_prompt_process_costs_no_reply() -> None:
    communicator = await connect()
    await hello(communicator, locale="en")
    await _ask(communicator, "k1", "Hello there")
    [pid] = _worker_pids()
    os.kill(pid, signal.SIGKILL)
    ack, frames = await _ask(communicator, "k2", "Are you still there?")
    assert frames[-1]["status"] == "complete"  # prepared on a reply thread instead
    assert "question 2" in text_of(frames, ack["reply_id"])
    ack, frames = await _ask(communicator, "k3", "And now?")
    assert frames[-1]["status"] == "complete"
    assert _worker_pids() and pid not in _worker_pids()  # a new process took over
    await communicator.disconnect()


def test_a_worker_exits_when_its_parent_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, os, sys, threading, time
            from chat.prompt_process import _exit_with_parent

            def child(parent_pid):
                threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
                time.sleep(120)

            if __name__ == "__main__":
                spawn = multiprocessing.get_context("spawn")
                process = spawn.Process(target=child, args=(os.getpid(),))
                process.start()
                print(process.pid, flush=True)
                time.sleep(120)
            """
        )
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return  # gone (reaped by init)
        if _zombie(child):
            return
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the worker outlived its parent")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True

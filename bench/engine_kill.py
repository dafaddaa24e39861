"""Kill the embedded engine mid-reply on a running server and show what the visitor gets.

    .venv/bin/python bench/engine_kill.py PORT .data/engine/engine.json

Against a server run by `make run` (or daphne on the embedded defaults) on 127.0.0.1:PORT: asks
a question in Spanish, SIGKILLs the engine process at the first delta, prints the reply (what
was streamed, then the honest fallback), the seconds from the kill to `done`, then asks again
and prints how long the next answer took and the new engine's pid.
"""

import asyncio
import json
import os
import signal
import sys
import time

import websockets

PORT = sys.argv[1]
ENGINE = sys.argv[2]


def engine_pid() -> int:
    with open(ENGINE) as handle:
        return int(json.load(handle)["pid"])


async def main():
    async with websockets.connect(
        f"ws://127.0.0.1:{PORT}/ws/chat/", origin=f"http://127.0.0.1:{PORT}"
    ) as ws:
        await ws.send(json.dumps({"type": "hello", "locale": "es"}))
        print(json.loads(await ws.recv())["type"])
        await ws.send(
            json.dumps(
                {
                    "type": "message",
                    "client_id": "k1",
                    "text": "¿Cómo restablezco mi contraseña? Explícalo con mucho detalle.",
                }
            )
        )
        text = ""
        killed = None
        while True:
            f = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if f["type"] == "delta":
                text += f["text"]
                if killed is None:
                    pid = engine_pid()
                    os.kill(pid, signal.SIGKILL)
                    killed = time.monotonic()
                    print("killed engine", pid, "after", repr(text))
            if f["type"] == "done":
                print("done", f["status"], f"{time.monotonic() - killed:.2f}s after the kill")
                break
        print("reply:", repr(text))
        f = json.loads(await asyncio.wait_for(ws.recv(), 10))
        print("then:", f.get("type"), f.get("code"), f.get("message"))
        t0 = time.monotonic()
        await ws.send(
            json.dumps({"type": "message", "client_id": "k2", "text": "¿Y cuánto dura el enlace?"})
        )
        text = ""
        while True:
            f = json.loads(await asyncio.wait_for(ws.recv(), 180))
            if f["type"] == "delta":
                text += f["text"]
            if f["type"] == "done":
                print("next:", f["status"], f"{time.monotonic() - t0:.1f}s", repr(text[:200]))
                break
        print("new engine pid", engine_pid())


asyncio.run(main())

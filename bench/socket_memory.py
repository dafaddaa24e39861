"""Memory per idle chat socket: RSS of the server processes before and after N sockets said hello.

bench/serve_bench.sh --with .venv/bin/python bench/socket_memory.py -n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.typing import Origin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ws_chat import origin_for, wait_ready  # noqa: E402


def server_pids(port: int) -> list[int]:
    """The processes listening on PORT (ss from iproute2)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    pids = set()
    for part in out.stdout.split("pid=")[1:]:
        pids.add(int(part.split(",")[0]))
    return sorted(pids)


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


async def hold(url: str, n: int, seconds: float) -> int:
    sockets = []
    for _ in range(n):
        ws = await connect(url, origin=Origin(origin_for(url)), ping_interval=None, max_queue=None)
        await ws.send(json.dumps({"type": "hello", "locale": "en"}))
        await ws.recv()
        sockets.append(ws)
    await asyncio.sleep(seconds)  # let the server settle (buffers, watchdogs)
    return len(sockets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765/ws/chat/")
    parser.add_argument("-n", type=int, default=1000)
    args = parser.parse_args()
    wait_ready(args.url, 120)
    port = int(args.url.split(":")[2].split("/")[0])
    pids = server_pids(port)
    time.sleep(3)
    before = rss_kib(pids)
    loop = asyncio.new_event_loop()
    task = loop.create_task(hold(args.url, args.n, 5))
    opened = loop.run_until_complete(task)
    after = rss_kib(pids)
    print(f"server processes        {len(pids)} (pids {', '.join(map(str, pids))})")
    print(f"idle sockets            {opened} (hello sent, welcome received)")
    print(f"server RSS              {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
    print(f"per idle socket         {(after - before) / max(opened, 1):.1f} KiB")
    loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run several Daphne processes on one address, and start again any that dies.

    .venv/bin/python scripts/serve.py --processes 2 --host 127.0.0.1 --port 8000

Each process gets its own listening socket on the same address with SO_REUSEPORT, so the
kernel spreads new connections evenly over the processes, without a load balancer in front
(on one machine; across machines, put one in front). The processes share everything else
through the Redis channel layer and PostgreSQL, so REDIS_URL (and DATABASE_URL) must be set:
a visitor whose socket reconnects to another process resumes there.

A process that exits is started again after a second (a crash costs its sockets a reconnect,
never a reply: replies are recovered by the others). SIGTERM or SIGINT stops them all.
The pid of every process is written to --pid-file as JSON, {"supervisor": pid, "workers": [...]},
so a benchmark (bench/chaos.py) can kill one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class Worker:
    def __init__(self, index: int, args: argparse.Namespace) -> None:
        self.index = index
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.exited_at: float | None = None

    def start(self) -> None:
        # A fresh socket for each start: the old one closed with the dead process.
        self.sock = listening_socket(self.args.host, self.args.port)
        fd = self.sock.fileno()
        command = [
            sys.executable,
            "-m",
            "autoglm_site.daphne_server",
            "--fd",
            str(fd),
            *self.args.daphne_args,
            "autoglm_site.asgi:application",
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, pass_fds=(fd,))
        self.sock.close()  # the child holds it now
        self.exited_at = None

    def poll(self) -> None:
        if self.process is None:
            return
        code = self.process.poll()
        if code is None:
            return
        now = time.monotonic()
        if self.exited_at is None:
            self.exited_at = now
            print(
                f"serve: worker {self.index} (pid {self.process.pid}) exited with {code}",
                flush=True,
            )
        if now - self.exited_at >= self.args.restart_delay:
            self.start()
            assert self.process is not None
            print(f"serve: worker {self.index} started again (pid {self.process.pid})", flush=True)


def write_pids(path: Path | None, workers: list[Worker]) -> None:
    if path is None:
        return
    pids = [w.process.pid for w in workers if w.process is not None and w.process.poll() is None]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"supervisor": os.getpid(), "workers": pids}))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--restart-delay", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--pid-file", type=Path)
    parser.add_argument("daphne_args", nargs="*", help="more daphne options, after --")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.processes > 1 and not os.environ.get("REDIS_URL"):
        parser.error("several processes share sockets' conversations through Redis: set REDIS_URL")

    workers = [Worker(index, args) for index in range(args.processes)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.start()
    print(f"serve: {args.processes} Daphne processes on {args.host}:{args.port}", flush=True)
    while not stopping:
        for worker in workers:
            worker.poll()
        write_pids(args.pid_file, workers)
        time.sleep(0.2)
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.terminate()
    deadline = time.monotonic() + 10
    for worker in workers:
        if worker.process is None:
            continue
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
    if args.pid_file is not None:
        args.pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

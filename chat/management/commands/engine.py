"""`manage.py engine start|stop|status`: the embedded engine process (the local CPU model)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.llm.base import LLMError
from chat.llm.local import LocalBackend, engine_stop


class Command(BaseCommand):
    help = "Start (with its self-check), stop or show the local engine process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "stop":
            stopped = engine_stop()
            self.stdout.write("Engine stopped." if stopped else "The engine was not running.")
            return
        backend = LocalBackend()
        try:
            if action == "start":
                info = backend.start()
            else:
                running = backend.supervisor().running()
                if running is None:
                    self.stdout.write("The engine is not running.")
                    return
                info = running
        except LLMError as exc:
            raise CommandError(f"{exc.code}: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(f"engine pid {info.pid} on 127.0.0.1:{info.port}: {info.build}")
        )

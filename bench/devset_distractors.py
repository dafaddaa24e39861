#!/usr/bin/env python
"""Cross-language retrieval on the dev set with 10,000 real distractor articles in other languages.

The dev set's English articles (as `score.py` imports them) plus help pages nobody here wrote
in seven other languages: LibreOffice's own help (Debian's `libreoffice-help-{de,fr,es,ja,
zh-cn,ru,ko}` 7.4, MPL-2.0; each language has the same 2,561 pages). The pages are fetched with
`apt-get download` (no installation) into a cache directory; nothing of them enters the
repository. Then `score.py --keep-index` asks its usual cross-language questions of that index,
where each question competes with the distractors written in its own language:

  .venv/bin/python bench/devset_distractors.py --count 10000        # ~15 min on 2 cores

Uses its own embedded database (autoglm_devset_distractors); prints score.py's table.
"""

from __future__ import annotations

import argparse
import html.parser
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVSET = ROOT.parent / "shared" / "eval" / "devset"
PACKAGES = {"de": "de", "fr": "fr", "es": "es", "ja": "ja", "zh-cn": "zh-hans", "ru": "ru"}
PACKAGES["ko"] = "ko"
HELP_DIRS = {"zh-cn": "zh-CN"}
BODY_CHARS = 4000


class _Page(html.parser.HTMLParser):
    """The title and the text of a LibreOffice help page's DisplayArea (no menus, no footer)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.parts: list[str] = []
        self._in_title = False
        self._depth = 0  # <div> nesting inside DisplayArea; 0 = outside

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag == "div":
            if self._depth:
                self._depth += 1
            elif dict(attrs).get("id") == "DisplayArea":
                self._depth = 1
        if self._depth and tag in {"p", "h1", "h2", "h3", "li", "tr", "br"}:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._depth:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        return "\n\n".join(line for line in lines if line)


def _fetch(cache: Path) -> Path:
    """The unpacked help packages under CACHE (downloaded once)."""
    root = cache / "root"
    if (root / "usr/share/libreoffice/help").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    names = [f"libreoffice-help-{code}" for code in PACKAGES]
    subprocess.run(["apt-get", "download", *names], cwd=cache, check=True)
    for deb in cache.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _distractors(root: Path, count: int, seed: int) -> list[dict]:
    pages = []
    for code, lang in PACKAGES.items():
        folder = root / "usr/share/libreoffice/help" / HELP_DIRS.get(code, code) / "text"
        for path in sorted(folder.rglob("*.html")):
            pages.append((lang, path))
    random.Random(seed).shuffle(pages)
    rows = []
    for lang, path in pages:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        body = page.text()
        if len(body) < 200 or not page.title.strip():
            continue
        rel = path.relative_to(root).as_posix()
        rows.append(
            {
                "id": f"lo:{rel}",
                "lang": lang,
                "title": page.title.strip()[:250],
                "body": body[:BODY_CHARS],
            }
        )
        if len(rows) >= count:
            break
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000, help="distractor articles")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--db-name", default="autoglm_devset_distractors")
    ap.add_argument("--cache", default=str(Path.home() / ".cache/autoglm/libreoffice-help"))
    ap.add_argument("--keep-index", action="store_true", help="reuse the imported index")
    args = ap.parse_args()
    env = dict(os.environ, AUTOGLM_EMBEDDED_DB_NAME=args.db_name)
    python = sys.executable

    if not args.keep_index:
        distractors = _distractors(_fetch(Path(args.cache)), args.count, args.seed)
        by_lang: dict[str, int] = {}
        for row in distractors:
            by_lang[row["lang"]] = by_lang.get(row["lang"], 0) + 1
        print(f"distractors: {len(distractors)} {dict(sorted(by_lang.items()))}", flush=True)
        with open(DEVSET / "articles.jsonl", encoding="utf-8") as articles:
            english = [
                {"id": a["article_key"], "lang": "en", "title": a["title"], "body": a["body"]}
                for a in map(json.loads, articles)
                if a["lang"] == "en"
            ]
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for row in english + distractors:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        for cmd in (["migrate", "--noinput"], ["kb_reset", "--yes"], ["kb_import", f.name]):
            subprocess.run(
                [python, "manage.py", *cmd],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        os.unlink(f.name)
    return subprocess.run(
        [
            python,
            str(DEVSET / "score.py"),
            "--keep-index",
            "--db-name",
            args.db_name,
            "--python",
            python,
        ],
        cwd=ROOT,
    ).returncode


if __name__ == "__main__":
    sys.exit(main())

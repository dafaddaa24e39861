#!/usr/bin/env python
"""Harder variants of the dev-set retrieval score, through the product's own kb_search.

  python3 ../shared/eval/devset/score.py            # imports the English-only KB first
  .venv/bin/python bench/devset_variants.py         # then this, on the same database

Variants of the cross-language questions (40 per language in zh ja ko es de fr ru, chosen as
score.py chooses them):
- plain: the published question;
- product name: the product's name left in Latin letters inside the question, as visitors
  write it ("F-Droid" or "GNOME" before the question, unless it already names it): every
  article of that product contains the name, so a keyword side that weighs it would drown the
  meaning. The variant must not score below plain.
--declared-names first declares the two names in the glossary (do not translate), as an admin
would; search then keeps them out of the question (KNOWLEDGE_DECLARED_NAMES).
Prints recall@1/@5 and MRR@10 per variant and language (scored on article_key).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_LANG = {"zh": "zh-hans", "zh-TW": "zh-hant", "pt-BR": "pt-br"}
PRODUCT_NAME = {"fdroid": "F-Droid", "gnome": "GNOME"}


def _chosen(devset: Path, langs: list[str], per_lang: int, seed: int) -> list[dict]:
    queries = [
        json.loads(line)
        for line in (devset / "queries.jsonl").read_text("utf-8").split("\n")
        if line
    ]
    rng = random.Random(seed)
    by_lang: dict[str, list[dict]] = {}
    for q in queries:
        if q["kind"] == "cross-language" and q["target_lang"] == "en" and q["lang"] in langs:
            by_lang.setdefault(q["lang"], []).append(q)
    chosen = []
    for lang in sorted(by_lang):
        items = by_lang[lang]
        rng.shuffle(items)
        chosen += items[:per_lang]
    return chosen


def _with_product_name(q: dict) -> str:
    name = PRODUCT_NAME[q["article_key"].split(":")[0]]
    return q["query"] if name.lower() in q["query"].lower() else f"{name} {q['query']}"


def _score(args: argparse.Namespace, chosen: list[dict], texts: list[str]) -> dict[str, list]:
    work = Path(tempfile.mkdtemp(prefix="variants-"))
    with open(work / "q.jsonl", "w", encoding="utf-8") as f:
        for q, text in zip(chosen, texts, strict=True):
            lang = PRODUCT_LANG.get(q["lang"], q["lang"])
            f.write(json.dumps({"query": text, "lang": lang}, ensure_ascii=False) + "\n")
    env = dict(os.environ, AUTOGLM_EMBEDDED_DB_NAME=args.db_name)
    out = subprocess.run(
        [
            args.python,
            "manage.py",
            "kb_search",
            "--batch",
            str(work / "q.jsonl"),
            "--limit",
            "10",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stats: dict[str, list] = {}
    for q, line in zip(chosen, [x for x in out.splitlines() if x.strip()], strict=True):
        ranked: list[str] = []
        for hit in json.loads(line):
            key = str(hit["id"]).split("@")[0].split("~")[0]
            if key not in ranked:
                ranked.append(key)
        rank = next((i + 1 for i, k in enumerate(ranked) if k == q["article_key"]), None)
        s = stats.setdefault(q["lang"], [0, 0, 0, 0.0])
        s[0] += 1
        s[1] += rank == 1
        s[2] += rank is not None and rank <= 5
        s[3] += 1 / rank if rank is not None and rank <= 10 else 0.0
    return stats


def _declare_names(args: argparse.Namespace) -> None:
    names = sorted(PRODUCT_NAME.values())
    code = (
        "from chat.models import GlossaryTerm\n"
        f"names = {names!r}\n"
        "GlossaryTerm.objects.filter(language='', term__in=names).delete()\n"
        + (
            "for name in names:\n"
            "    GlossaryTerm.objects.create(language='', term=name, do_not_translate=True)\n"
            if args.declared_names
            else ""
        )
    )
    env = dict(os.environ, AUTOGLM_EMBEDDED_DB_NAME=args.db_name)
    subprocess.run(
        [args.python, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    print(f"declared names: {', '.join(names) if args.declared_names else 'none'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", type=Path, default=ROOT.parent / "shared" / "eval" / "devset")
    ap.add_argument("--langs", nargs="+", default=["zh", "ja", "ko", "es", "de", "fr", "ru"])
    ap.add_argument("--per-lang", type=int, default=40)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--db-name", default="autoglm_devset", help="score.py's database")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument(
        "--declared-names",
        action="store_true",
        help="declare F-Droid and GNOME as the glossary's do-not-translate terms first (as an "
        "admin would); without it they are removed, so each run says which it measured",
    )
    args = ap.parse_args()
    _declare_names(args)
    chosen = _chosen(args.devset, args.langs, args.per_lang, args.seed)
    variants = {
        "plain": [q["query"] for q in chosen],
        "product name": [_with_product_name(q) for q in chosen],
    }
    print(f"{'variant':13} {'lang':5} {'n':>4} {'R@1':>6} {'R@5':>6} {'MRR@10':>7}")
    for name, texts in variants.items():
        stats = _score(args, chosen, texts)
        for lang in sorted(stats):
            n, r1, r5, mrr = stats[lang]
            print(f"{name:13} {lang:5} {n:4d} {r1 / n:6.3f} {r5 / n:6.3f} {mrr / n:7.3f}")
        total = [sum(v[i] for v in stats.values()) for i in range(4)]
        n, r1, r5, mrr = total
        print(f"{name:13} {'all':5} {n:4d} {r1 / n:6.3f} {r5 / n:6.3f} {mrr / n:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

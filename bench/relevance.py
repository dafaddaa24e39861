#!/usr/bin/env python
"""The relevance decision (which retrieved articles reach the model and the citations),
measured on the dev set with questions the knowledge base cannot answer.

  .venv/bin/python bench/relevance.py                # import, search, report (a few minutes)
  .venv/bin/python bench/relevance.py --keep-index   # the same index again (seconds)
  .venv/bin/python bench/relevance.py --keep-index --sweep   # other thresholds, same searches

The knowledge base is the dev set's English articles minus a held-out share of them (seeded),
in a database of its own (AUTOGLM_EMBEDDED_DB_NAME, default autoglm_relevance). The questions
are the published ones in the 12 interface languages (English asked of English, the others
across languages), up to --per-lang answerable ones and a quarter as many whose article is
held out. Each is searched as the chat searches it (knowledge.search.chunk_search, in the
reply language, LLM_PROMPT_KNOWLEDGE_LIMIT hits) and scored as bench/answers.py scores
citations:
- citation precision: of the articles marked relevant for answerable questions, the share
  that is the question's own;
- right article: answerable questions whose own article is marked relevant;
- no-knowledge: held-out questions with nothing marked relevant (the honest reply follows).
--sweep re-marks the same searches under other settings (knowledge.search.relevance_marks)
and prints the grid, best first by the lowest of the three rates' distances to their targets.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AUTOGLM_EMBEDDED_DB_NAME", "autoglm_relevance")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")

from bench.answers import LANGUAGES as _ANSWER_LANGUAGES  # noqa: E402

# Product language -> the dev set's code for its questions (as bench/answers.py asks them).
LANGUAGES = {code: dev for code, (dev, _judge) in _ANSWER_LANGUAGES.items()}
TARGETS = {"precision": 0.8, "right": 0.9, "no_knowledge": 0.8}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _split(devset: Path, held_share: float, seed: int) -> set[str]:
    articles = _jsonl(devset / "articles.jsonl")
    keys = sorted({a["article_key"] for a in articles if a["lang"] == "en"})
    rng = random.Random(seed)
    return set(rng.sample(keys, round(len(keys) * held_share)))


def _questions(devset: Path, hidden: set[str], per_lang: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    by_lang: dict[str, list[dict[str, Any]]] = {}
    for q in _jsonl(devset / "queries.jsonl"):
        if q["lang"] == "en" and q["kind"] == "same-language":
            by_lang.setdefault("en", []).append(q)
        elif q["kind"] == "cross-language" and q["target_lang"] == "en":
            by_lang.setdefault(q["lang"], []).append(q)
    chosen: list[dict[str, Any]] = []
    for code, dev in LANGUAGES.items():
        items = by_lang.get(dev, [])
        rng.shuffle(items)
        answerable = [q for q in items if q["article_key"] not in hidden][:per_lang]
        held = [q for q in items if q["article_key"] in hidden][: max(1, per_lang // 4)]
        chosen += [dict(q, product_lang=code, answerable=True) for q in answerable]
        chosen += [dict(q, product_lang=code, answerable=False) for q in held]
    return chosen


def _import(devset: Path, hidden: set[str]) -> None:
    from django.core.management import call_command

    work = Path(tempfile.mkdtemp(prefix="relevance-"))
    with open(work / "kb.jsonl", "w", encoding="utf-8") as out:
        for a in _jsonl(devset / "articles.jsonl"):
            if a["lang"] == "en" and a["article_key"] not in hidden:
                row = {"id": a["article_key"], "lang": "en", "title": a["title"]}
                row.update(body=a["body"], url=a["url"])
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    call_command("migrate", "--noinput", verbosity=0)
    call_command("kb_reset", "--yes", verbosity=0)
    call_command("kb_import", str(work / "kb.jsonl"), verbosity=0)


def _key(article_id: str) -> str:
    return str(article_id).split("@")[0].split("~")[0]


def _search(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each question with what search found: (article key, similarity) in ranked order,
    the primary embedder's or not, and the product's own marks for the first hits."""
    from django.conf import settings

    from knowledge import embeddings
    from knowledge.search import chunk_search

    limit = int(settings.LLM_PROMPT_KNOWLEDGE_LIMIT)
    rows = []
    for q in questions:
        hits = chunk_search(query=q["query"], language=q["product_lang"], limit=10)
        rows.append(
            {
                "question": q,
                "found": [(_key(h.article_id), h.similarity) for h in hits],
                "marked": [_key(h.article_id) for h in hits[:limit] if h.relevant],
                "leading": embeddings.covers(q["product_lang"]),
            }
        )
    return rows


def _rates(rows: list[dict[str, Any]], marked: list[list[str]]) -> dict[str, Any]:
    cited = own = right = held_ok = answerable = held = 0
    for row, keys in zip(rows, marked, strict=True):
        q = row["question"]
        if q["answerable"]:
            answerable += 1
            cited += len(keys)
            own += keys.count(q["article_key"])
            right += q["article_key"] in keys
        else:
            held += 1
            held_ok += not keys
    nan = float("nan")
    return {
        "precision": own / cited if cited else nan,
        "right": right / answerable if answerable else nan,
        "no_knowledge": held_ok / held if held else nan,
        "answerable": answerable,
        "held": held,
    }


def _report(rows: list[dict[str, Any]], marked: list[list[str]]) -> None:
    print(f"{'lang':8} {'n':>4} {'held':>4} {'cite P':>6} {'right':>6} {'no-kb':>6} {'cites':>5}")
    for code in LANGUAGES:
        pairs = [
            (r, m)
            for r, m in zip(rows, marked, strict=True)
            if r["question"]["product_lang"] == code
        ]
        if not pairs:
            continue
        sub_rows, sub_marked = [p[0] for p in pairs], [p[1] for p in pairs]
        rates = _rates(sub_rows, sub_marked)
        cites = sum(len(m) for r, m in pairs if r["question"]["answerable"])
        print(
            f"{code:8} {rates['answerable']:4d} {rates['held']:4d} {rates['precision']:6.3f} "
            f"{rates['right']:6.3f} {rates['no_knowledge']:6.3f} "
            f"{cites / max(rates['answerable'], 1):5.2f}"
        )
    rates = _rates(rows, marked)
    print(
        f"all: {rates['answerable']} answerable, {rates['held']} held out; citation precision "
        f"{rates['precision']:.3f}, right article {rates['right']:.3f}, no-knowledge correct "
        f"{rates['no_knowledge']:.3f}"
    )


def _marks_under(rows: list[dict[str, Any]], limit: int, **values: float) -> list[list[str]]:
    """Every row re-marked with KNOWLEDGE_RELEVANT_<NAME> set to each of VALUES."""
    from django.test import override_settings

    from knowledge.search import relevance_marks

    names = {f"KNOWLEDGE_RELEVANT_{name.upper()}": value for name, value in values.items()}
    with override_settings(**names):
        marked = []
        for row in rows:
            marks = relevance_marks([sim for _key, sim in row["found"]], leading=row["leading"])
            shown = zip(row["found"][:limit], marks, strict=False)  # the first LIMIT hits
            marked.append([key for (key, _sim), mark in shown if mark])
        return marked


def _sweep(rows: list[dict[str, Any]], limit: int) -> None:
    grid = {
        "similarity": [0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
        "lead_weight": [0.0, 0.25, 0.5, 0.75, 1.0],
        "margin": [0.03, 0.05, 0.1],
    }
    results = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo, strict=True))
        rates = _rates(rows, _marks_under(rows, limit, **values))
        worst = min(rates[k] - t for k, t in TARGETS.items())
        results.append((worst, values, rates))
    results.sort(key=lambda item: -item[0])
    print("sweep (best first: the lowest of precision-0.8, right-0.9, no-kb-0.8):")
    for worst, values, rates in results[:15]:
        settings_text = " ".join(f"{k}={v}" for k, v in values.items())
        print(
            f"  {settings_text:45} P {rates['precision']:.3f} right {rates['right']:.3f} "
            f"no-kb {rates['no_knowledge']:.3f} (worst {worst:+.3f})"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", type=Path, default=ROOT.parent / "shared" / "eval" / "devset")
    ap.add_argument("--held-out", type=float, default=0.2, help="share of articles held out")
    ap.add_argument("--per-lang", type=int, default=60, help="answerable questions per language")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep-index", action="store_true", help="search the last run's index")
    ap.add_argument("--sweep", action="store_true", help="also try other thresholds")
    ap.add_argument("--out", type=Path, help="write each question's search as JSON lines")
    args = ap.parse_args()

    import django

    if not os.environ.get("DATABASE_URL"):
        from autoglm_site.embedded import ensure_database

        ensure_database()  # the packaged PostgreSQL, and this bench's database in it
    django.setup()
    from django.conf import settings

    hidden = _split(args.devset, args.held_out, args.seed)
    marker = ROOT / ".data" / f"{os.environ['AUTOGLM_EMBEDDED_DB_NAME']}.split"
    split = f"seed={args.seed} held_out={args.held_out}"
    if args.keep_index:
        if not marker.exists() or marker.read_text() != split:
            sys.exit(f"--keep-index: the index was not built with {split}; run without it")
    else:
        _import(args.devset, hidden)
        marker.write_text(split)
    questions = _questions(args.devset, hidden, args.per_lang, args.seed)
    rows = _search(questions)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(
        f"held out {len(hidden)} of the English articles (seed {args.seed}); "
        f"{settings.LLM_PROMPT_KNOWLEDGE_LIMIT} hits per question"
    )
    _report(rows, [row["marked"] for row in rows])
    if args.sweep:
        _sweep(rows, int(settings.LLM_PROMPT_KNOWLEDGE_LIMIT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

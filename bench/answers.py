#!/usr/bin/env python
"""Answer quality end to end: dev-set questions in the 12 interface languages, asked over the
real WebSocket of a server running the packaged model, against an English-only knowledge base.

  .venv/bin/python bench/answers.py                      # 2 answerable + 1 held-out per language
  .venv/bin/python bench/answers.py --per-lang 4 --held-out 2 --keep-index
  .venv/bin/python bench/answers.py --report /tmp/answers.jsonl   # judge and score a run again

It imports the dev set's English articles into a database of its own (autoglm_answers) except
a held-out set, starts Daphne on --port with the embedded defaults (the local engine), and asks
each question in a new conversation. Held-out questions are ones the knowledge base cannot
answer (their article is not imported): the right reply cites nothing and says so.

Per language it prints:
- lang ok: replies whose language, judged by langdetect (not the product's own detector), is
  the question's (one correction: langdetect's "ko" for text without Hangul, which it says of
  short Traditional Chinese, is replaced by its next guess);
- lingua ok: the same, judged by a second identifier, lingua (lingua-language-detector, all
  its 75 languages; it knows Chinese but not its two scripts, so a reply it calls Chinese is
  Simplified or Traditional by hanzidentifier's character lists, either when all its
  characters are written alike in both). Neither judge is the product's code; both are
  reported;
- mixed: replies with letters of a script the language is not written in (Latin excepted:
  product names, links);
- cite P / cite R: citation precision (cited articles that are the expected one) and recall
  (answerable questions whose expected article is cited), on answerable questions;
- no-kb ok: held-out questions answered with no citation and the honest no-knowledge reply;
- claims: held-out questions whose reply was written by the model instead (it may state facts
  no excerpt supports: the unsupported-claim rate, as far as a script can tell);
- TTFT p50: send to first delta, in ms.
The dev set is ../shared/eval/devset (see its SOURCE.md); nothing of it is copied into the
product. A fake backend cannot measure this: it needs the packaged model (make model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

# The product's languages -> the dev set's codes and langdetect's codes.
LANGUAGES = {
    "en": ("en", "en"),
    "zh-hans": ("zh", "zh-cn"),
    "zh-hant": ("zh-TW", "zh-tw"),
    "ar": ("ar", "ar"),
    "ja": ("ja", "ja"),
    "ko": ("ko", "ko"),
    "es": ("es", "es"),
    "de": ("de", "de"),
    "fr": ("fr", "fr"),
    "ru": ("ru", "ru"),
    "pt-br": ("pt-BR", "pt"),
    "he": ("he", "he"),
}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _questions(
    devset: Path, per_lang: int, held_out: int, seed: int
) -> tuple[list[dict[str, Any]], set[str]]:
    queries = _jsonl(devset / "queries.jsonl")
    rng = random.Random(seed)
    by_lang: dict[str, list[dict[str, Any]]] = {}
    for q in queries:
        english = q["lang"] == "en" and q["kind"] == "same-language"
        if english or (q["kind"] == "cross-language" and q["target_lang"] == "en"):
            by_lang.setdefault(q["lang"], []).append(q)
    for items in by_lang.values():
        rng.shuffle(items)
    # Held-out articles: taken from each language's own questions first (Arabic and Hebrew have
    # only a handful), so that every language has questions the knowledge base cannot answer.
    hidden: set[str] = set()
    for _code, (dev, _judge) in LANGUAGES.items():
        for q in by_lang.get(dev, [])[:held_out]:
            hidden.add(q["article_key"])
    chosen: list[dict[str, Any]] = []
    for code, (dev, _judge) in LANGUAGES.items():
        items = by_lang.get(dev, [])
        answerable = [q for q in items if q["article_key"] not in hidden][:per_lang]
        unanswerable = [q for q in items if q["article_key"] in hidden][:held_out]
        chosen += [dict(q, product_lang=code, answerable=True) for q in answerable]
        chosen += [dict(q, product_lang=code, answerable=False) for q in unanswerable]
    return chosen, hidden


def _prepare(args: argparse.Namespace, env: dict[str, str], hidden: set[str]) -> dict[str, str]:
    articles = _jsonl(args.devset / "articles.jsonl")
    english = [a for a in articles if a["lang"] == "en"]
    url_to_key = {a["url"]: a["article_key"] for a in english}
    # The server's own words (the no-knowledge reply, the extractive answer's lines) come from
    # the compiled catalogues: without them every language would be judged on English text.
    subprocess.run(
        [args.python, "manage.py", "compilemessages", "--ignore=.venv"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if args.keep_index:
        return url_to_key
    work = Path(tempfile.mkdtemp(prefix="answers-"))
    with open(work / "kb.jsonl", "w", encoding="utf-8") as out:
        for a in english:
            if a["article_key"] not in hidden:
                row = {"id": a["article_key"], "lang": "en", "title": a["title"]}
                out.write(json.dumps(dict(row, body=a["body"], url=a["url"]), ensure_ascii=False))
                out.write("\n")
    for command in (
        ["migrate", "--noinput"],
        ["kb_reset", "--yes"],
        ["kb_import", str(work / "kb.jsonl")],
    ):
        subprocess.run(
            [args.python, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return url_to_key


def _wait_ready(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server on port {port} did not start")


async def _ask(url: str, origin: str, question: dict[str, Any]) -> dict[str, Any]:
    async with connect(url, origin=origin, max_size=2**22) as ws:  # type: ignore[arg-type]
        hello = {"type": "hello", "token": None, "locale": question["product_lang"]}
        await ws.send(json.dumps(hello))
        while json.loads(await ws.recv()).get("type") != "welcome":
            pass
        sent = time.monotonic()
        await ws.send(
            json.dumps(
                {"type": "message", "client_id": str(uuid.uuid4()), "text": question["query"]}
            )
        )
        first: float | None = None
        text = ""
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=600))
            if frame.get("type") == "delta":
                if first is None:
                    first = time.monotonic()
                # From its offset, as the widget does: a rewrite (offset 0) replaces the text.
                text = text[: int(frame.get("offset", len(text)))] + frame.get("text", "")
            elif frame.get("type") == "done":
                return {
                    "text": text,
                    "citations": frame.get("citations", []),
                    "status": frame.get("status"),
                    "finish_reason": frame.get("finish_reason"),
                    "ttft_ms": (first - sent) * 1000 if first else None,
                }
            elif frame.get("type") == "error":
                return {
                    "text": "",
                    "citations": [],
                    "status": "error",
                    "ttft_ms": None,
                    "error": frame,
                }


def _judge_language(text: str) -> str:
    import regex
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    try:
        ranked = [str(guess.lang) for guess in detect_langs(text)]
    except LangDetectException:
        return "?"
    # langdetect calls short Traditional Chinese Korean; with no Hangul in it, it is not.
    if not regex.search(r"\p{Hangul}", text):
        ranked = [code for code in ranked if code != "ko"] or ["?"]
    return ranked[0]


_lingua: Any = None


def _judge_lingua(text: str) -> str:
    """The reply's language by lingua, as langdetect's code; Chinese is zh-cn or zh-tw by
    hanzidentifier (CC-CEDICT's character lists), zh-both when every character is written
    alike in the two scripts, zh-mixed when it mixes them."""
    global _lingua
    import hanzidentifier
    from lingua import LanguageDetectorBuilder

    if _lingua is None:
        _lingua = LanguageDetectorBuilder.from_all_languages().build()
    found = _lingua.detect_language_of(text)
    if found is None:
        return "?"
    code = found.iso_code_639_1.name.lower()
    if code != "zh":
        return code
    return {
        hanzidentifier.SIMPLIFIED: "zh-cn",
        hanzidentifier.TRADITIONAL: "zh-tw",
        hanzidentifier.BOTH: "zh-both",
    }.get(hanzidentifier.identify(text), "zh-mixed")


def _lingua_ok(judged: str, expected: str) -> bool:
    return judged == expected or (judged == "zh-both" and expected.startswith("zh-"))


def _mixed(text: str, language: str) -> bool:
    from autoglm_site.languages import LANGUAGE_SCRIPTS, SCRIPTS

    allowed = {*LANGUAGE_SCRIPTS.get(language, ()), "latin"}
    return any(pattern.search(text) for script, pattern in SCRIPTS.items() if script not in allowed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", type=Path, default=ROOT.parent / "shared" / "eval" / "devset")
    ap.add_argument("--per-lang", type=int, default=2, help="answerable questions per language")
    ap.add_argument("--held-out", type=int, default=1, help="unanswerable questions per language")
    ap.add_argument("--langs", nargs="+", default=list(LANGUAGES))
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--db-name", default="autoglm_answers")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--keep-index", action="store_true", help="reuse the imported knowledge base")
    ap.add_argument("--out", type=Path, help="write every reply as JSONL here")
    ap.add_argument("--report", type=Path, help="judge and score the replies of an --out file")
    args = ap.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
    import django

    django.setup()
    if args.report:
        _report(_judged(_jsonl(args.report)))
        return 0

    questions, hidden = _questions(args.devset, args.per_lang, args.held_out, args.seed)
    questions = [q for q in questions if q["product_lang"] in args.langs]
    from bench.limits import LIFTED

    env = dict(os.environ, AUTOGLM_EMBEDDED_DB_NAME=args.db_name, ALLOWED_HOSTS="127.0.0.1")
    env = {**LIFTED, **env}
    origin = f"http://127.0.0.1:{args.port}"
    env.setdefault("CHAT_ALLOWED_ORIGINS", origin)
    url_to_key = _prepare(args, env, hidden)
    subprocess.run(
        [args.python, "manage.py", "llm_check"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    server = subprocess.Popen(
        [
            args.python,
            "-m",
            "autoglm_site.daphne_server",
            "-b",
            "127.0.0.1",
            "-p",
            str(args.port),
            "autoglm_site.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: list[dict[str, Any]] = []
    try:
        _wait_ready(args.port, 120)
        ws_url = f"ws://127.0.0.1:{args.port}/ws/chat/"
        for number, question in enumerate(questions, start=1):
            answer = asyncio.run(_ask(ws_url, origin, question))
            cited = [
                url_to_key.get(c.get("url", ""), c.get("url", "")) for c in answer["citations"]
            ]
            row = _judged([dict(question=question, answer=answer, cited=cited)])[0]
            results.append(row)
            print(
                f"[{number}/{len(questions)}] {question['product_lang']} "
                f"{'A' if question['answerable'] else 'H'} judged={row['judged']}"
                f"/{row['judged_lingua']} cited={len(cited)} "
                f"ttft={answer['ttft_ms'] or 0:.0f} ms",
                file=sys.stderr,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            for row in results:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    _report(results)
    return 0


def _judged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ROWS with each reply's language as both judges see it."""
    for row in rows:
        text = row["answer"]["text"]
        row["judged"] = _judge_language(text) if text else "?"
        row["judged_lingua"] = _judge_lingua(text) if text else "?"
    return rows


def _no_knowledge_text(language: str) -> str:
    from django.utils import translation
    from django.utils.translation import gettext

    with translation.override(language):
        return gettext(
            "I could not find an answer to this in our help centre. Please contact our "
            "support team, and a person will help you."
        )


def _report(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'lang':8} {'n':>3} {'lang ok':>7} {'lingua':>6} {'mixed':>5} {'cite P':>6} "
        f"{'cite R':>6} {'no-kb ok':>8} {'claims':>6} {'TTFT p50':>9}"
    )
    print(header)
    totals: dict[str, list[float]] = {
        key: [] for key in ("lang", "lingua", "mixed", "p", "r", "nokb", "claim")
    }
    cited_all = right_all = 0
    for language in LANGUAGES:
        rows = [r for r in results if r["question"]["product_lang"] == language]
        if not rows:
            continue
        judge = LANGUAGES[language][1]
        lang_ok = [r["judged"] == judge for r in rows]
        lingua_ok = [_lingua_ok(r["judged_lingua"], judge) for r in rows]
        mixed = [_mixed(r["answer"]["text"], language) for r in rows]
        answerable = [r for r in rows if r["question"]["answerable"]]
        held = [r for r in rows if not r["question"]["answerable"]]
        cited = sum(len(r["cited"]) for r in answerable)
        right = sum(r["cited"].count(r["question"]["article_key"]) for r in answerable)
        cited_all += cited
        right_all += right
        recall = [r["question"]["article_key"] in r["cited"] for r in answerable]
        honest = _no_knowledge_text(language)
        nokb = [not r["cited"] and r["answer"]["text"].strip() == honest for r in held]
        claims = [r["answer"]["text"].strip() != honest for r in held]
        ttfts = [r["answer"]["ttft_ms"] for r in rows if r["answer"]["ttft_ms"] is not None]
        totals["lang"] += lang_ok
        totals["lingua"] += lingua_ok
        totals["mixed"] += mixed
        totals["r"] += recall
        totals["nokb"] += nokb
        totals["claim"] += claims

        def rate(values: list[bool]) -> str:
            return f"{sum(values)}/{len(values)}" if values else "-"

        print(
            f"{language:8} {len(rows):3d} {rate(lang_ok):>7} {rate(lingua_ok):>6} "
            f"{rate(mixed):>5} "
            f"{(right / cited if cited else float('nan')):6.2f} {rate(recall):>6} "
            f"{rate(nokb):>8} {rate(claims):>6} "
            f"{(statistics.median(ttfts) if ttfts else float('nan')):9.0f}"
        )
    n = len(totals["lang"])

    def share(key: str) -> str:
        values = totals[key]
        return f"{sum(values) / len(values):.3f}" if values else "-"

    print(
        f"all: {n} replies; language {share('lang')} (langdetect), {share('lingua')} (lingua), "
        f"mixed {share('mixed')}, "
        f"citation precision {right_all / cited_all if cited_all else float('nan'):.3f}, "
        f"right article cited {share('r')}, no-knowledge correct {share('nokb')}, "
        f"unsupported (model-written) on held-out {share('claim')}"
    )


if __name__ == "__main__":
    sys.exit(main())

# ruff: noqa: E501 - multilingual sample sentences are kept on one line each
"""Knowledge-base benchmark: index time, incremental sync, search latency, recall@5.

Runs against its own database in the packaged PostgreSQL (or DATABASE_URL), which it empties:

    AUTOGLM_EMBEDDED_DB_NAME=autoglm_kbbench .venv/bin/python bench/kb.py \
        --articles 300 --filler 10000

--articles N synthetic help articles in 4 languages (en, zh-hans, es, ar) are really chunked,
tokenised and embedded (this measures index time and chunks/s). --filler M more articles are
written with real text and tokens but with embeddings copied from the real ones plus noise,
so search latency is measured at M+N articles without spending hours embedding on 2 cores;
those vectors are labelled as such in the output. Recall@5 uses the Northwind demo articles
(knowledge/fixtures) and bench/kb_questions.jsonl (same-language and cross-language
questions), with all the synthetic articles present as distractors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
os.environ.setdefault("AUTOGLM_EMBEDDED_DB_NAME", "autoglm_kbbench")

TOPICS = {
    "en": [
        (
            "Printer driver {n}",
            "Install driver version {n} for the office printer model {m}. Restart the print spooler after installing.",
        ),
        (
            "Travel policy {n}",
            "Employees book trips through the portal; region {m} has a daily meal allowance of {n} euros.",
        ),
        (
            "Warehouse shift {n}",
            "Shift {n} starts at {m}:00. Scan your badge at gate {m} and collect your handheld scanner.",
        ),
        (
            "Recipe card {n}",
            "Bake the bread at {m}0 degrees for {n} minutes and let it rest before slicing.",
        ),
    ],
    "zh-hans": [
        ("打印机驱动 {n}", "为办公室打印机型号 {m} 安装驱动版本 {n}。安装后请重启打印服务。"),
        ("差旅政策 {n}", "员工通过门户预订行程；区域 {m} 的每日餐补为 {n} 元。"),
        ("仓库班次 {n}", "第 {n} 班于 {m} 点开始。请在 {m} 号门刷卡并领取手持扫描器。"),
    ],
    "es": [
        (
            "Controlador de impresora {n}",
            "Instale la versión {n} del controlador para la impresora {m}. Reinicie la cola de impresión.",
        ),
        (
            "Política de viajes {n}",
            "Los empleados reservan viajes en el portal; la región {m} tiene una dieta diaria de {n} euros.",
        ),
        (
            "Turno de almacén {n}",
            "El turno {n} empieza a las {m}:00. Pase su tarjeta en la puerta {m}.",
        ),
    ],
    "ar": [
        (
            "برنامج تشغيل الطابعة {n}",
            "ثبّت الإصدار {n} من برنامج التشغيل للطابعة {m}. أعد تشغيل خدمة الطباعة بعد التثبيت.",
        ),
        (
            "سياسة السفر {n}",
            "يحجز الموظفون الرحلات عبر البوابة؛ بدل الوجبات اليومي في المنطقة {m} هو {n} يورو.",
        ),
    ],
}


def synthetic(count: int, offset: int, rng: random.Random) -> list[dict[str, str]]:
    languages = list(TOPICS)
    lines = []
    for i in range(count):
        language = languages[i % len(languages)]
        title, body = rng.choice(TOPICS[language])
        n, m = offset + i, rng.randint(2, 99)
        paragraphs = [body.format(n=n, m=m) for _ in range(rng.randint(1, 3))]
        lines.append(
            {
                "id": f"syn-{offset + i}",
                "lang": language,
                "title": title.format(n=n),
                "body": "\n\n".join(paragraphs),
            }
        )
    return lines


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=300, help="articles really embedded")
    parser.add_argument("--filler", type=int, default=10_000, help="articles with copied vectors")
    parser.add_argument("--queries", type=int, default=300, help="searches timed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="keep the base built by an earlier run; measure recall and search latency only",
    )
    args = parser.parse_args()

    from autoglm_site.embedded import ensure_database

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import numpy as np

    from knowledge import embeddings
    from knowledge.models import Article, Chunk
    from knowledge.search import chunk_search
    from knowledge.services import articles_import, knowledge_reset
    from knowledge.text import tokenize

    rng = random.Random(args.seed)
    if args.search_only:
        print(f"base kept: {Chunk.objects.count()} chunks")
        _search_figures(args, chunk_search, Chunk.objects.count())
        return
    knowledge_reset()
    embeddings.get_model()
    embeddings.embed_query("warm up")
    print(f"embedders {embeddings.MODEL_NAME}; os.cpu_count()={os.cpu_count()}")

    # 1. Full index of N really-embedded articles (chunking + tokenising + embedding + writes).
    real = synthetic(args.articles, 0, rng)
    start = time.perf_counter()
    result = articles_import(lines=[json.dumps(line, ensure_ascii=False) for line in real])
    elapsed = time.perf_counter() - start
    chunks = result.index.chunks_embedded
    print(
        f"full index: {args.articles} articles, {chunks} chunks in {elapsed:.1f} s "
        f"= {chunks / elapsed:.1f} chunks/s, {args.articles / elapsed:.1f} articles/s"
    )
    per_chunk = elapsed / max(chunks, 1)

    # 2. Demo articles (recall targets), really embedded.
    demo = (ROOT / "knowledge" / "fixtures" / "demo_articles.jsonl").read_text(encoding="utf-8")
    articles_import(lines=demo.splitlines())

    # 3. Filler: real text and tokens, vectors copied from real chunks plus noise (labelled).
    if args.filler:
        pool = np.array(
            list(Chunk.objects.values_list("embedding", flat=True)[:500]), dtype=np.float32
        )
        title_pool = np.array(
            list(
                Chunk.objects.exclude(title_embedding=None).values_list(
                    "title_embedding", flat=True
                )[:500]
            ),
            dtype=np.float32,
        )
        filler = synthetic(args.filler, 1_000_000, rng)
        start = time.perf_counter()
        batch_articles = []
        for line in filler:
            language = line["lang"]
            batch_articles.append(
                Article(
                    external_id=line["id"],
                    status=Article.Status.PUBLISHED,
                    **{
                        f"title_{language.replace('-', '_')}": line["title"],
                        f"body_{language.replace('-', '_')}": line["body"],
                    },
                )
            )
        created = Article.objects.bulk_create(batch_articles, batch_size=1000)
        filler_chunks = []
        for article, line in zip(created, filler, strict=True):
            noise = np.random.default_rng(article.pk)
            vector = pool[rng.randrange(len(pool))] + noise.normal(0, 0.02, pool.shape[1])
            vector /= np.linalg.norm(vector)
            title = title_pool[rng.randrange(len(title_pool))] + noise.normal(
                0, 0.02, title_pool.shape[1]
            )
            title /= np.linalg.norm(title)
            text = f"{line['title']}\n{line['body']}"
            filler_chunks.append(
                Chunk(
                    article=article,
                    language=line["lang"],
                    position=0,
                    text=line["body"],
                    tokens=" ".join(tokenize(text, language=line["lang"])),
                    content_hash=f"filler-{article.pk}",
                    embedding=vector.tolist(),
                    title_embedding=title.tolist(),
                )
            )
        Chunk.objects.bulk_create(filler_chunks, batch_size=1000)
        print(
            f"filler: {args.filler} articles / {len(filler_chunks)} chunks written with copied+noise "
            f"vectors in {time.perf_counter() - start:.1f} s (NOT embedded)"
        )
    total_articles = Article.objects.count()
    total_chunks = Chunk.objects.count()
    print(f"base: {total_articles} articles, {total_chunks} chunks")
    print(
        f"extrapolated full index of {total_articles} articles at the measured rate: "
        f"~{per_chunk * total_chunks / 60:.0f} min (EXTRAPOLATION from step 1, not measured)"
    )

    # 4. Incremental sync after editing one article.
    edited = real[len(real) // 2]
    edited = dict(edited, body=edited["body"] + "\n\nUpdated: the policy changed this week.")
    start = time.perf_counter()
    inc = articles_import(
        lines=[json.dumps(line, ensure_ascii=False) for line in [*real[:-1], edited]]
    )
    elapsed = time.perf_counter() - start
    print(
        f"incremental re-import of {args.articles} articles with 1 edited: {elapsed:.2f} s, "
        f"{inc.updated} article updated, {inc.index.chunks_embedded} chunks re-embedded, "
        f"{inc.index.chunks_deleted} deleted"
    )

    _search_figures(args, chunk_search, total_chunks)


def _search_figures(args: argparse.Namespace, chunk_search: Any, total_chunks: int) -> None:
    # 5. Recall@5 on the demo question set.
    questions = [
        json.loads(line)
        for line in (ROOT / "bench" / "kb_questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    found: dict[str, list[int]] = {"same": [], "cross": []}
    for question in questions:
        hits = chunk_search(query=question["query"], language=question["lang"], limit=5)
        found[question["kind"]].append(int(question["expect"] in [hit.article_id for hit in hits]))
    for kind, values in found.items():
        print(
            f"recall@5 {kind}-language: {sum(values)}/{len(values)} = {sum(values) / len(values):.2f}"
        )

    # 6. Search latency (end to end: detect/tokenise, embed the query, 2 SQL queries, fusion;
    # and the secondary's query and HNSW lookup on the searches that ask a second opinion,
    # counted here).
    from knowledge import search

    asked = 0
    secondary_choice = search._secondary_choice

    def counted(query: str, article_ids: list[int]) -> int | None:
        nonlocal asked
        asked += 1
        return secondary_choice(query, article_ids)

    search._secondary_choice = counted  # type: ignore[assignment]
    latencies = []
    for i in range(args.queries):
        question = questions[i % len(questions)]
        start = time.perf_counter()
        chunk_search(query=question["query"], language=question["lang"], limit=5)
        latencies.append((time.perf_counter() - start) * 1000)
    print(
        f"search latency over {args.queries} queries at {total_chunks} chunks: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms; "
        f"{asked} asked a second opinion"
    )


if __name__ == "__main__":
    main()

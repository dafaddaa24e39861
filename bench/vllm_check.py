"""A 10-turn conversation through the product against a real vLLM: prefix-cache hits and TTFT.

Run by `make vllm-check` (scripts/vllm_check.sh starts vLLM's CPU build on loopback). For each
prompt layout (the product's and the naive one) it plays bench/prefix_reuse.py's questions
through chat.prompts and chat.llm.openai_compat, and reads vLLM's own counters from /metrics
around every turn: the turn's prefix-cache hit rate is hits / queries (tokens) for that turn.

    .venv/bin/python bench/vllm_check.py --base-url http://127.0.0.1:8011/v1 --model smollm2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402

from bench.prefix_reuse import QUESTIONS, retrieve  # noqa: E402
from chat.llm.base import CompletionRequest, Sampling  # noqa: E402
from chat.llm.openai_compat import OpenAICompatBackend, Timeouts  # noqa: E402
from chat.models import Message  # noqa: E402
from chat.prompts import KnowledgeSnippet, naive_prompt_build, prompt_build  # noqa: E402

_METRIC = re.compile(
    r"^(vllm:prefix_cache_(?:hits|queries))(?:_total)?(?:\{[^}]*\})?\s+([0-9.eE+]+)"
)


async def counters(client: httpx.AsyncClient, metrics_url: str) -> dict[str, float]:
    text = (await client.get(metrics_url)).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(2))
    return values


async def run_layout(backend: OpenAICompatBackend, metrics_url: str, layout: str) -> None:
    history: list[Message] = []
    stored: dict[int, list[KnowledgeSnippet]] = {}
    print(f"\n### {layout}\n")
    print("| turn | prompt tokens | cached prompt tokens | vLLM prefix-cache hit rate | TTFT ms |")
    print("|---:|---:|---:|---:|---:|")
    async with httpx.AsyncClient(timeout=10) as client:
        for turn, question in enumerate(QUESTIONS, start=1):
            history.append(Message(pk=2 * turn - 1, role=Message.Role.USER, text=question))
            knowledge = retrieve(question)
            if layout == "naive":
                messages = naive_prompt_build(
                    language="en", history=history, knowledge=knowledge, turn_number=turn
                )
            else:
                messages = prompt_build(
                    language="en", history=history, knowledge=knowledge, past_knowledge=stored
                )
            stored[2 * turn - 1] = knowledge
            before = await counters(client, metrics_url)
            text = ""
            last = None
            request = CompletionRequest(
                messages=messages, sampling=Sampling(temperature=0.0, max_tokens=48, seed=1)
            )
            async for chunk in backend.stream(request):
                text += chunk.text
                if chunk.usage is not None:
                    last = chunk
            after = await counters(client, metrics_url)
            queries = after.get("vllm:prefix_cache_queries", 0) - before.get(
                "vllm:prefix_cache_queries", 0
            )
            hits = after.get("vllm:prefix_cache_hits", 0) - before.get("vllm:prefix_cache_hits", 0)
            usage = last.usage if last else None
            rate = f"{hits / queries:.3f}" if queries else "-"
            ttft = f"{last.backend_ttft_ms:.0f}" if last and last.backend_ttft_ms else "-"
            print(
                f"| {turn} | {usage.prompt_tokens if usage else '-'} | "
                f"{usage.cached_prompt_tokens if usage else '-'} | {rate} | {ttft} |"
            )
            history.append(Message(pk=2 * turn, role=Message.Role.ASSISTANT, text=text.strip()))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default="")
    args = parser.parse_args()
    backend = OpenAICompatBackend(
        args.base_url,
        model=args.model,
        api_key=args.api_key,
        timeouts=Timeouts(connect=5, first_token=120, between_tokens=60, total=600),
    )
    metrics_url = args.base_url.rstrip("/").removesuffix("/v1") + "/metrics"
    for layout in ("product", "naive"):
        await run_layout(backend, metrics_url, layout)


if __name__ == "__main__":
    asyncio.run(main())

"""A 10-turn conversation through the product against a real vLLM: prefix-cache hits and TTFT.

Run by `make vllm-check` (scripts/vllm_check.sh starts vLLM's CPU build on loopback). For each
prompt layout (the product's and the naive one) it empties vLLM's prefix cache, plays
bench/prefix_reuse.py's questions through chat.prompts and chat.llm.openai_compat, and reads
vLLM's own counters from /metrics around every turn:

- hit rate: vllm:prefix_cache_hits / vllm:prefix_cache_queries (tokens) for that turn;
- cached: usage.prompt_tokens_details.cached_tokens as the product receives it;
- TTFT: measured by the openai_compat backend (request sent → first text), and vLLM's own
  vllm:time_to_first_token_seconds for that request.

vLLM caches whole KV blocks only, so a hit is a multiple of the block size (printed first).

    .venv/bin/python bench/vllm_check.py --base-url http://127.0.0.1:8011/v1 --model smollm2
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402

from bench.prefix_reuse import QUESTIONS, retrieve  # noqa: E402
from chat.llm.base import CompletionRequest, Sampling, Usage  # noqa: E402
from chat.llm.openai_compat import OpenAICompatBackend, Timeouts  # noqa: E402
from chat.models import Message  # noqa: E402
from chat.prompts import KnowledgeSnippet, naive_prompt_build, prompt_build  # noqa: E402

QUERIES = "vllm:prefix_cache_queries"
HITS = "vllm:prefix_cache_hits"
TTFT_SUM = "vllm:time_to_first_token_seconds_sum"
TTFT_COUNT = "vllm:time_to_first_token_seconds_count"

# Counters are exposed with a _total suffix (prometheus_client); one series per engine.
_SAMPLE = re.compile(
    r"^(vllm:prefix_cache_(?:hits|queries)|vllm:time_to_first_token_seconds_(?:sum|count))"
    r"(?:_total)?(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$"
)
_CACHE_INFO = re.compile(r"^vllm:cache_config_info\{([^}]*)\}")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_metrics(text: str) -> dict[str, float]:
    """The prefix-cache and TTFT series of a /metrics page, summed over engines."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(2))
    return values


def cache_config(text: str) -> dict[str, str]:
    """The labels of vllm:cache_config_info (block_size, enable_prefix_caching, ...)."""
    for line in text.splitlines():
        match = _CACHE_INFO.match(line)
        if match:
            return dict(_LABEL.findall(match.group(1)))
    return {}


@dataclass
class Row:
    turn: int
    prompt_tokens: int
    cached_tokens: int | None
    queries: float
    hits: float
    ttft_ms: float | None
    server_ttft_ms: float | None

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.queries if self.queries else None


class Metrics:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url

    async def text(self) -> str:
        response = await self.client.get(self.url)
        response.raise_for_status()
        return response.text

    async def read(self) -> dict[str, float]:
        return parse_metrics(await self.text())

    async def after(
        self, before: dict[str, float], prompt_tokens: int, settle_s: float
    ) -> dict[str, float]:
        """The counters once this request is in them (the engine publishes them a little
        after the stream ends): its prompt tokens queried and one more TTFT observation."""
        deadline = time.monotonic() + settle_s
        while True:
            now = await self.read()
            queried = now.get(QUERIES, 0.0) - before.get(QUERIES, 0.0)
            observed = now.get(TTFT_COUNT, 0.0) - before.get(TTFT_COUNT, 0.0)
            if (queried >= prompt_tokens and observed >= 1) or time.monotonic() > deadline:
                return now
            await asyncio.sleep(0.05)


async def reset_cache(client: httpx.AsyncClient, root: str) -> bool:
    """Empty vLLM's prefix cache (POST /reset_prefix_cache: only with VLLM_SERVER_DEV_MODE=1)."""
    try:
        response = await client.post(f"{root}/reset_prefix_cache")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("success") is True


async def run_layout(
    backend: OpenAICompatBackend, metrics: Metrics, layout: str, max_tokens: int, settle_s: float
) -> list[Row]:
    history: list[Message] = []
    stored: dict[int, list[KnowledgeSnippet]] = {}
    rows: list[Row] = []
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
        request = CompletionRequest(
            messages=messages, sampling=Sampling(temperature=0.0, max_tokens=max_tokens, seed=1)
        )
        before = await metrics.read()
        text = ""
        usage: Usage | None = None
        ttft_ms: float | None = None
        async for chunk in backend.stream(request):
            text += chunk.text
            if chunk.usage is not None:
                usage = chunk.usage
                ttft_ms = chunk.backend_ttft_ms
        if usage is None or not usage.prompt_tokens:
            raise SystemExit(f"turn {turn}: vLLM reported no usage (stream_options.include_usage)")
        after = await metrics.after(before, usage.prompt_tokens, settle_s)
        observed = after.get(TTFT_COUNT, 0.0) - before.get(TTFT_COUNT, 0.0)
        server_ttft = after.get(TTFT_SUM, 0.0) - before.get(TTFT_SUM, 0.0)
        rows.append(
            Row(
                turn=turn,
                prompt_tokens=usage.prompt_tokens,
                cached_tokens=usage.cached_prompt_tokens,
                queries=after.get(QUERIES, 0.0) - before.get(QUERIES, 0.0),
                hits=after.get(HITS, 0.0) - before.get(HITS, 0.0),
                ttft_ms=ttft_ms,
                server_ttft_ms=server_ttft * 1000 / observed if observed == 1 else None,
            )
        )
        history.append(Message(pk=2 * turn, role=Message.Role.ASSISTANT, text=text.strip()))
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(layout: str, rows: list[Row]) -> str:
    lines = [
        f"### {layout}",
        "",
        "| turn | prompt tokens | cached (usage) | vLLM hits / queries | hit rate | "
        "TTFT ms (openai_compat) | TTFT ms (vLLM) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rate = "-" if row.hit_rate is None else f"{row.hit_rate:.3f}"
        cached = "-" if row.cached_tokens is None else str(row.cached_tokens)
        lines.append(
            f"| {row.turn} | {row.prompt_tokens} | {cached} | {row.hits:.0f} / "
            f"{row.queries:.0f} | {rate} | {_ms(row.ttft_ms)} | {_ms(row.server_ttft_ms)} |"
        )
    later = rows[1:]
    hits = sum(row.hits for row in later)
    queries = sum(row.queries for row in later)
    summary = f"turns 2-{rows[-1].turn}: hit rate {hits / queries:.3f} ({hits:.0f} / {queries:.0f})"
    first, last = rows[1].ttft_ms, rows[-1].ttft_ms
    if first and last:
        summary += f"; TTFT turn {rows[-1].turn} / turn 2 = {last / first:.2f}"
    lines += ["", summary]
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the server's /v1 URL")
    parser.add_argument("--model", required=True, help="its served model name")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--layouts", nargs="+", default=["product", "naive"])
    parser.add_argument(
        "--no-reset", action="store_true", help="keep the prefix cache between layouts"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait for /metrics")
    args = parser.parse_args()
    # Per-request INFO lines (httpx, "reply stopped at max_tokens") would break up the tables.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("chat.llm.openai_compat").setLevel(logging.WARNING)

    root = args.base_url.rstrip("/").removesuffix("/v1")
    backend = OpenAICompatBackend(
        args.base_url,
        model=args.model,
        api_key=args.api_key,
        timeouts=Timeouts(connect=5, first_token=300, between_tokens=120, total=900),
    )
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    async with httpx.AsyncClient(timeout=30, headers=headers, trust_env=False) as client:
        metrics = Metrics(client, f"{root}/metrics")
        page = await metrics.text()
        config = cache_config(page)
        found = parse_metrics(page)
        if QUERIES not in found or HITS not in found:
            print(f"{root}/metrics has no {QUERIES} / {HITS} counters", file=sys.stderr)
            return 1
        if config.get("enable_prefix_caching") == "False":
            print("vLLM runs without prefix caching (--enable-prefix-caching)", file=sys.stderr)
            return 1
        version = (await client.get(f"{root}/version")).json().get("version", "?")
        print(
            f"vLLM {version}, model {args.model}, block size {config.get('block_size', '?')}, "
            f"prefix caching {config.get('enable_prefix_caching', '?')}, max_tokens "
            f"{args.max_tokens}, temperature 0, load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        results: dict[str, list[Row]] = {}
        for layout in args.layouts:
            if not args.no_reset and not await reset_cache(client, root):
                print(
                    "could not empty the prefix cache (start vLLM with VLLM_SERVER_DEV_MODE=1 "
                    "or pass --no-reset)",
                    file=sys.stderr,
                )
                return 1
            rows = await run_layout(backend, metrics, layout, args.max_tokens, args.settle)
            results[layout] = rows
            print()
            print(table(layout, rows))
            sys.stdout.flush()
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    product = results.get("product")
    if product and not any(row.hits for row in product[1:]):
        print("the product's layout got no prefix-cache hit from turn 2 on", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

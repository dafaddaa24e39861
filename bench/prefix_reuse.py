"""Prefix reuse and time to first token over a scripted 10-turn conversation on the local model.

Plays the same ten questions, with retrieval from a small fixed knowledge base, through the
product's prompt builder (chat.prompts.prompt_build) and the local backend (llama.cpp in its
engine process, reached over loopback like vLLM), for three layouts, each with a fresh engine:

- product: knowledge with the newest user turn, stored with it and re-rendered identically
  in later turns (chat.prompts.TurnKnowledge), history verbatim;
- product-unstored: the same, but earlier turns lose their knowledge (history as typed only);
- naive: knowledge and a turn counter at the top of the system prompt, history re-labelled.

Per turn it prints: prompt tokens (the model's own tokenizer, chat template applied), the reuse
ratio (leading tokens shared with the previous turn's prompt + reply, over prompt tokens, as
defined in issue 3), the retention (the same shared tokens over the previous prompt + reply:
how much of what the engine holds is reused), llama.cpp's own count of prompt tokens it did not
recompute, and the time to first token measured by the client (HTTP to the engine included).

    .venv/bin/python bench/prefix_reuse.py [--model PATH] [--max-tokens 48] [--layouts ...]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")

import django  # noqa: E402
import httpx  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from chat.llm.base import CompletionRequest, Sampling  # noqa: E402
from chat.llm.local import LocalBackend, ModelFile, model_file  # noqa: E402
from chat.models import Message  # noqa: E402
from chat.prompts import KnowledgeSnippet, naive_prompt_build, prompt_build  # noqa: E402

ARTICLES = [
    KnowledgeSnippet(
        "Reset your password",
        "https://help.example.com/account/reset-password",
        "Open Settings, choose Security and press Reset password. We email a link that is valid "
        "for 30 minutes. If the email does not arrive, check the spam folder or ask support to "
        "verify the address on your account.",
    ),
    KnowledgeSnippet(
        "Two-factor authentication",
        "https://help.example.com/account/2fa",
        "Two-factor authentication adds a six-digit code from an authenticator app to every "
        "sign-in. Turn it on in Settings, Security. Keep the ten recovery codes somewhere safe: "
        "each works once if you lose your phone.",
    ),
    KnowledgeSnippet(
        "Storage plans and prices",
        "https://help.example.com/billing/plans",
        "Free accounts have 5 GB. Plus has 200 GB for 3 euros a month, Pro has 2 TB for 10 "
        "euros a month. Annual billing saves two months. Upgrades apply at once; the price "
        "difference is charged pro rata.",
    ),
    KnowledgeSnippet(
        "Invoices and receipts",
        "https://help.example.com/billing/invoices",
        "Invoices are issued on the first day of each billing period and can be downloaded as "
        "PDF from Billing, History. Add a VAT number and a company address in Billing, Details "
        "before the next invoice is issued.",
    ),
    KnowledgeSnippet(
        "Refund policy",
        "https://help.example.com/billing/refunds",
        "Annual plans can be refunded in full within 14 days of purchase. Monthly plans are not "
        "refunded, but a cancelled plan stays active until the end of the paid month.",
    ),
    KnowledgeSnippet(
        "Sharing files and folders",
        "https://help.example.com/files/sharing",
        "Share a file or folder with a link or with named people. Links can expire and can "
        "require a password on Plus and Pro. Named people can be viewers or editors.",
    ),
    KnowledgeSnippet(
        "Restoring deleted files",
        "https://help.example.com/files/restore",
        "Deleted files stay in the Trash for 30 days on Free and 180 days on Plus and Pro. "
        "Restore them from Trash; after that period they are deleted for good.",
    ),
    KnowledgeSnippet(
        "Desktop sync app",
        "https://help.example.com/apps/desktop-sync",
        "The desktop app keeps a folder in sync on Windows, macOS and Linux. Pause sync from the "
        "tray icon. Selective sync chooses which folders are kept on the computer.",
    ),
    KnowledgeSnippet(
        "Closing your account",
        "https://help.example.com/account/close",
        "Close your account in Settings, Account, Close account. Download your files first: "
        "they are deleted 30 days after closing. An active paid plan is cancelled at once.",
    ),
]

QUESTIONS = [
    "How do I reset my password?",
    "The reset email never arrived. What should I do?",
    "Can I turn on two-factor authentication as well?",
    "What storage plans do you have and what do they cost?",
    "If I upgrade to Pro today, how am I charged?",
    "Where can I download invoices with my company VAT number?",
    "Can I get a refund on an annual plan?",
    "I deleted a folder by mistake last week. Can I get it back?",
    "How do I share a folder with a password-protected link?",
    "If I close my account, what happens to my files?",
]

_WORD = re.compile(r"[a-z0-9]+")


def retrieve(question: str, limit: int = 3) -> list[KnowledgeSnippet]:
    """Word-overlap retrieval over the fixed articles: deterministic, no database needed."""
    words = set(_WORD.findall(question.lower()))

    def score(article: KnowledgeSnippet) -> int:
        return len(words & set(_WORD.findall(f"{article.title} {article.text}".lower())))

    return sorted(ARTICLES, key=score, reverse=True)[:limit]


def shared_prefix(a: list[int], b: list[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


async def run_layout(backend: LocalBackend, layout: str, max_tokens: int) -> list[dict[str, float]]:
    # A fresh engine per layout: nothing carried over from the last one.
    await asyncio.to_thread(backend.supervisor().stop)
    info = await asyncio.to_thread(backend.start)
    http = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{info.port}",
        headers={"Authorization": f"Bearer {info.api_key}"},
        timeout=30,
    )

    async def engine_tokens(messages: list[object] | None = None) -> dict[str, list[int]]:
        body = {"messages": messages} if messages is not None else {}
        response = await http.post("/tokens", json=body)
        response.raise_for_status()
        result: dict[str, list[int]] = response.json()
        return result

    history: list[Message] = []
    stored: dict[int, list[KnowledgeSnippet]] = {}
    previous: list[int] | None = None
    rows: list[dict[str, float]] = []
    for turn, question in enumerate(QUESTIONS, start=1):
        history.append(Message(pk=2 * turn - 1, role=Message.Role.USER, text=question))
        knowledge = retrieve(question)
        if layout == "naive":
            messages = naive_prompt_build(
                language="en", history=history, knowledge=knowledge, turn_number=turn
            )
        else:
            messages = prompt_build(
                language="en",
                history=history,
                knowledge=knowledge,
                past_knowledge=stored if layout == "product" else {},
                count_tokens=backend.token_counter(),
            )
        stored[2 * turn - 1] = knowledge
        request = CompletionRequest(
            messages=messages, sampling=Sampling(temperature=0.0, max_tokens=max_tokens, seed=1)
        )
        turns = [{"role": m.role, "content": m.content} for m in messages]
        prompt_tokens = (await engine_tokens(turns))["prompt"]
        started = time.monotonic()
        text = ""
        usage = None
        ttft = None
        async for chunk in backend.stream(request):
            text += chunk.text
            if chunk.usage is not None:
                usage = chunk.usage
                ttft = chunk.backend_ttft_ms
        wall = (time.monotonic() - started) * 1000
        held = (await engine_tokens())["context"]  # prompt + reply
        shared = shared_prefix(prompt_tokens, previous) if previous is not None else 0
        rows.append(
            {
                "turn": turn,
                "prompt": len(prompt_tokens),
                "turns_kept": len(messages) - 1,
                "reuse": shared / len(prompt_tokens) if previous is not None else float("nan"),
                "retention": shared / len(previous) if previous else float("nan"),
                "cached": float(usage.cached_prompt_tokens or 0) if usage else float("nan"),
                "ttft_ms": ttft if ttft is not None else float("nan"),
                "wall_ms": wall,
            }
        )
        previous = held
        history.append(Message(pk=2 * turn, role=Message.Role.ASSISTANT, text=text.strip()))
    await http.aclose()
    return rows


def table(layout: str, rows: list[dict[str, float]]) -> str:
    lines = [
        f"### {layout}",
        "",
        "| turn | prompt tokens | turns kept | reuse (shared / prompt) | retention (shared / "
        "previous prompt + reply) | llama.cpp cached prompt tokens | TTFT ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        reuse = "-" if row["reuse"] != row["reuse"] else f"{row['reuse']:.3f}"
        retention = "-" if row["retention"] != row["retention"] else f"{row['retention']:.3f}"
        lines.append(
            f"| {row['turn']:.0f} | {row['prompt']:.0f} | {row['turns_kept']:.0f} | {reuse} | "
            f"{retention} | {row['cached']:.0f} | {row['ttft_ms']:.0f} |"
        )
    ttft2, ttft10 = rows[1]["ttft_ms"], rows[-1]["ttft_ms"]
    reuse_from_2 = [row["reuse"] for row in rows[1:]]
    lines.append("")
    lines.append(
        f"TTFT turn 10 / turn 2 = {ttft10 / ttft2:.2f}; reuse from turn 2: min "
        f"{min(reuse_from_2):.3f}, mean {sum(reuse_from_2) / len(reuse_from_2):.3f}"
    )
    return "\n".join(lines)


async def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: the packaged default model)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--layouts", nargs="+", default=["product", "product-unstored", "naive"])
    args = parser.parse_args()
    model = (
        ModelFile(path=Path(args.model), sha256="", packaged_default=False)
        if args.model
        else model_file()
    )
    backend = LocalBackend(model, state_dir=Path(settings.DATA_DIR) / "bench-engine")
    print(
        f"model {model.path.name}, context {settings.LLM_LOCAL_CONTEXT_TOKENS}, budget "
        f"{settings.CHAT_CONTEXT_BUDGET_TOKENS} tokens, {os.cpu_count()} cores, "
        f"max_tokens {args.max_tokens}, load average {os.getloadavg()[0]:.2f}"
    )
    for layout in args.layouts:
        rows = await run_layout(backend, layout, args.max_tokens)
        print()
        print(table(layout, rows))
        sys.stdout.flush()
    await asyncio.to_thread(backend.supervisor().stop)


if __name__ == "__main__":
    asyncio.run(main())

"""Prompt and decode speed of the installed llama.cpp build (compare portable and native builds).

    .venv/bin/python bench/engine_speed.py [--model FILE.gguf] [--threads 2]

Loads the model in this process (a benchmark, not the product's path), computes a fixed prompt
of about 230 tokens, then 40 tokens greedily, and prints llama.cpp's build line, prompt tokens/s
(to the first piece) and decode tokens/s (after it).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT_MODEL = (
    Path(__file__).resolve().parent.parent / ".data/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
)
TEXT = (
    "Open Settings, choose Security and press Reset password. We email a link that is valid for "
    "30 minutes. "
) * 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import llama_cpp
    from llama_cpp import Llama

    print(llama_cpp.llama_print_system_info().decode().strip())
    print(f"load average {os.getloadavg()[0]:.2f}, {args.threads} threads, {args.model.name}")
    llama = Llama(
        model_path=str(args.model),
        n_ctx=4096,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    prompt_tokens = len(llama.tokenize(TEXT.encode()))
    started = time.monotonic()
    first: float | None = None
    pieces = 0
    for _event in llama.create_completion(prompt=TEXT, max_tokens=40, temperature=0.0, stream=True):
        pieces += 1
        if first is None:
            first = time.monotonic()
    ended = time.monotonic()
    assert first is not None
    print(
        f"prompt {prompt_tokens} tokens: {prompt_tokens / (first - started):.1f} tokens/s; "
        f"decode {pieces - 1} tokens: {(pieces - 1) / (ended - first):.1f} tokens/s"
    )
    llama.close()


if __name__ == "__main__":
    main()

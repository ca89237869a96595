"""How far a cheaper served model strays from float32: bf16 (``TACIT_PRECISION=auto``) and int8
(``TACIT_SERVE_QUANTIZE=int8``) against float32, on a trained checkpoint.

Prints, on the canary set and on held-out HH-RLHF pairs (chosen and rejected rendered in the checkpoint's
layout): the largest and the mean reward difference, the share of pairs whose order flips, and each
model's pairwise accuracy and scoring speed, all measured in one run. The canary difference is what the
hot swap's ``CANARY_TOLERANCE`` must allow.

    python bench/quantize.py CHECKPOINT [--pairs 150]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS
from tacit.model.hardware import cpu_has_native_bf16
from tacit.model.scoring import RewardScorer, canary_rewards
from tacit.trainer.evaluate import load_hh_pairs


def scored(scorer: RewardScorer, chosen: list[str], rejected: list[str]) -> tuple[list[float], float]:
    started = time.perf_counter()
    rewards = scorer.score_texts(chosen + rejected).rewards
    return rewards, len(rewards) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a trained checkpoint, e.g. a `make demo` model")
    parser.add_argument("--pairs", type=int, default=150)
    args = parser.parse_args()

    torch.set_num_threads(1)  # as `tacit serve` runs on this 2-core machine
    exact = TacitSettings(precision="float32")
    variants = {"int8": RewardScorer.load(args.checkpoint, exact, quantize="int8")}
    if cpu_has_native_bf16():
        variants["bf16"] = RewardScorer.load(args.checkpoint, TacitSettings(precision="auto"))
    reference = RewardScorer.load(args.checkpoint, exact)
    pairs = load_hh_pairs(HELDOUT_PAIRS)[: args.pairs]
    chosen = [reference.render(p.history, p.query, p.chosen) for p in pairs]
    rejected = [reference.render(p.history, p.query, p.rejected) for p in pairs]
    base, base_rate = scored(reference, chosen, rejected)
    base_canary = canary_rewards(reference)
    n = len(pairs)

    def accuracy(rewards: list[float]) -> float:
        return sum(a > b for a, b in zip(rewards[:n], rewards[n:])) / n

    print(f"{n} held-out pairs; float32: pairwise accuracy {accuracy(base):.3f}, {base_rate:.1f} texts/s")
    for name, scorer in variants.items():
        rewards, rate = scored(scorer, chosen, rejected)
        differences = [abs(a - b) for a, b in zip(rewards, base)]
        canary = max(abs(a - b) for a, b in zip(canary_rewards(scorer), base_canary))
        flips = sum((a > b) != (c > d) for a, b, c, d in zip(rewards[:n], rewards[n:], base[:n], base[n:])) / n
        print(
            f"{name}: reward difference max {max(differences):.3f}, mean {statistics.mean(differences):.4f}; "
            f"canary max {canary:.3f}; pair order flipped {flips:.1%}; pairwise accuracy "
            f"{accuracy(rewards):.3f}; {rate:.1f} texts/s ({rate / base_rate:.2f}x float32)"
        )


if __name__ == "__main__":
    main()

"""What implicit-feedback mining adds on real conversations, and what it costs next to labeling.

    python bench/mining.py [--threshold 0.55]

The bundled sample's follow-ups (HH-RLHF and OpenAssistant), rated by the rules labeler and refined, then
mined with every conversation complete, as `tacit relabel` does. Prints the refined positives (levels 4-5)
before and after mining, the items left waiting (a worker finalises them unchanged when the conversation is
idle), and the seconds spent mining against labeling and refining, both measured in this run.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from tacit.core.settings import TacitSettings
from tacit.data import SAMPLE_CONVERSATIONS
from tacit.labels.datasets import log_candidates
from tacit.labels.rules import RulesLabeler
from tacit.refine.mining import Miner
from tacit.refine.pipeline import with_refinements


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threshold", type=float, default=TacitSettings().mining_threshold)
    args = parser.parse_args()
    candidates = list(log_candidates(SAMPLE_CONVERSATIONS, "tacit"))
    started = time.perf_counter()
    pairs = with_refinements(candidates, RulesLabeler().label(candidates))
    labeled = time.perf_counter()
    miner = Miner.from_settings(TacitSettings(mining_threshold=args.threshold))
    miner.encoder  # noqa: B018  (loaded before the clock starts: a worker loads it once)
    loaded = time.perf_counter()
    mined, _ = miner.mine_batch(pairs)
    finished = time.perf_counter()

    def positives(rows) -> int:
        return sum(label.stage == "refined" and label.level >= 4 for _, label in rows[len(rows) // 2:])

    stages = Counter(label.stage for _, label in mined[len(mined) // 2:])
    added = sum(label.reason.startswith("mined:") for _, label in mined)
    print(f"{len(candidates):,} follow-ups, rules labeler, threshold {args.threshold}")
    print(f"refined positives   before {positives(pairs):,}   after {positives(mined):,}   (+{added:,} mined)")
    print(f"derived stages after mining: {dict(stages)}")
    print(f"labeling + refining {labeled - started:6.2f} s")
    print(f"mining              {finished - loaded:6.2f} s   ratio {(finished - loaded) / (labeled - started):.2f}x")


if __name__ == "__main__":
    main()

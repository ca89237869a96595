"""Scoring and training speed of ``TACIT_PRECISION=auto`` against float32, measured in one run.

    python bench/precision.py [--texts 96] [--steps 5]

Uses the bundled MiniLM and real chat texts (the held-out HH-RLHF pairs rendered in the compact layout).
On hardware without native bf16, ``auto`` is float32 and the ratio is 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS
from tacit.model.hardware import autocast, compute_dtype, default_device
from tacit.model.layouts import render
from tacit.model.scoring import RewardScorer
from tacit.trainer.evaluate import load_hh_pairs
from tacit.trainer.model import load_reward_model, ordinal_loss, save_reward_model


def chat_texts(count: int) -> list[str]:
    pairs = load_hh_pairs(HELDOUT_PAIRS)[:count]
    return [render(p.history, p.query, p.chosen) for p in pairs]


def scoring_rate(checkpoint: Path, settings: TacitSettings, texts: list[str]) -> tuple[float, list[float]]:
    scorer = RewardScorer.load(checkpoint, settings)
    scorer.score_texts(texts[:8])  # warm-up
    started = time.perf_counter()
    rewards = scorer.score_texts(texts).rewards
    return len(texts) / (time.perf_counter() - started), rewards


def training_step_seconds(settings: TacitSettings, texts: list[str], steps: int) -> float:
    base = settings.resolved_base_model()
    tokenizer = AutoTokenizer.from_pretrained(base, truncation_side="left")
    model = load_reward_model(base, num_classes=4).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    device = default_device()
    model.to(device)
    generator = torch.Generator().manual_seed(0)

    def step(index: int) -> None:
        batch = texts[(index * 16) % len(texts):][:16]
        inputs = tokenizer(batch, truncation=True, max_length=256, padding=True, return_tensors="pt").to(device)
        with autocast(device, settings.precision):
            logits = model(**inputs).logits
        ordinal_loss(logits, torch.randint(0, 4, (len(batch),), generator=generator).to(device)).backward()
        optimizer.step()
        optimizer.zero_grad()

    step(0)  # warm-up
    started = time.perf_counter()
    for index in range(1, steps + 1):
        step(index)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=96, help="texts to score")
    parser.add_argument("--steps", type=int, default=5, help="training steps to time")
    args = parser.parse_args()

    exact, auto = TacitSettings(precision="float32"), TacitSettings(precision="auto")
    device = default_device()
    print(f"device {device}, auto computes in {compute_dtype(device, 'auto')}")
    texts = chat_texts(args.texts)
    with tempfile.TemporaryDirectory() as checkpoint:
        base = exact.resolved_base_model()
        model = load_reward_model(base, num_classes=4)
        save_reward_model(model, AutoTokenizer.from_pretrained(base), Path(checkpoint), levels=(1, 2, 4, 5),
                          layout="compact", max_length=256)
        float32_rate, float32_rewards = scoring_rate(Path(checkpoint), exact, texts)
        auto_rate, auto_rewards = scoring_rate(Path(checkpoint), auto, texts)
    drift = max(abs(a - b) for a, b in zip(float32_rewards, auto_rewards, strict=True))
    print(f"scoring  float32 {float32_rate:7.1f} texts/s   auto {auto_rate:7.1f} texts/s   "
          f"ratio {auto_rate / float32_rate:.2f}x   max reward difference {drift:.4f}")
    float32_step = training_step_seconds(exact, texts, args.steps)
    auto_step = training_step_seconds(auto, texts, args.steps)
    print(f"training float32 {float32_step:7.2f} s/step    auto {auto_step:7.2f} s/step    "
          f"ratio {float32_step / auto_step:.2f}x")


if __name__ == "__main__":
    main()

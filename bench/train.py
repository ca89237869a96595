"""Training throughput: our loop against padding every text to max_length (as WildReward does) and
against the Hugging Face ``Trainer``, on the same model, data and settings, measured in one run.

    python bench/train.py [--steps 20] [--batch-size 16] [--max-length 256]

The figure is non-padding tokens per second: padding is work the hardware does for nothing, so counting
it would reward exactly the waste being measured. The data is real chat (the bundled held-out HH-RLHF
pairs, both replies, in the compact layout), whose lengths are as uneven as live traffic.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

from tacit.core.examples import RewardExample, label_scheme
from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS
from tacit.model.hardware import compute_dtype, default_device
from tacit.trainer.evaluate import load_hh_pairs
from tacit.trainer.model import load_reward_model, ordinal_loss
from tacit.trainer.train import TrainConfig, _loader, fit, ordinal_batch_loss


class CountingLoader:
    """Passes batches through and counts their real (attention-mask) tokens."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.tokens = loader, 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.loader:
            self.tokens += int(batch["attention_mask"].sum())
            yield batch


def chat_examples() -> list[RewardExample]:
    pairs = load_hh_pairs(HELDOUT_PAIRS)
    return [
        RewardExample("bench", f"c{i}", f"u{i}", p.history, p.query, reply, level)
        for i, p in enumerate(pairs)
        for reply, level in ((p.chosen, 5), (p.rejected, 1))
    ]


def our_loop(base: Path, loader: CountingLoader, config: TrainConfig) -> float:
    model = load_reward_model(base, num_classes=4).to(default_device())
    with tempfile.TemporaryDirectory() as state:
        started = time.perf_counter()
        fit(model, loader, config, default_device(), ordinal_batch_loss(), Path(state) / "state.pt")
    return loader.tokens / (time.perf_counter() - started)


class OrdinalTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        classes, targets = inputs.pop("labels"), inputs.pop("targets")
        outputs = model(**inputs)
        loss = ordinal_loss(outputs.logits, classes, targets=targets)
        return (loss, outputs) if return_outputs else loss


def hf_trainer(base: Path, tokenizer, items: list[dict], config: TrainConfig) -> float:
    collator = DataCollatorWithPadding(tokenizer)
    counted = 0

    def collate(features: list[dict]) -> dict[str, torch.Tensor]:
        nonlocal counted
        batch = collator(features)
        counted += int(batch["attention_mask"].sum())
        return batch

    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output, max_steps=config.steps, per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate, warmup_steps=math.ceil(config.warmup_ratio * config.steps),
            weight_decay=config.weight_decay,
            max_grad_norm=1.0, train_sampling_strategy="group_by_length", seed=config.seed, report_to=[],
            save_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available(), bf16=compute_dtype(default_device(), config.precision) == torch.bfloat16,
        )
        model = load_reward_model(base, num_classes=4)
        trainer = OrdinalTrainer(model=model, args=arguments, train_dataset=items, data_collator=collate)
        started = time.perf_counter()
        trainer.train()
    return counted / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)

    base = TacitSettings().resolved_base_model()
    tokenizer = AutoTokenizer.from_pretrained(base, truncation_side="left")
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, max_length=args.max_length)
    examples = chat_examples()
    scheme = label_scheme("wildfb")
    ours = _loader(tokenizer, examples, scheme, config, shuffle=True)
    padded = DataLoader(
        ours.dataset, batch_size=config.batch_size, sampler=RandomSampler(ours.dataset),
        collate_fn=DataCollatorWithPadding(tokenizer, padding="max_length", max_length=config.max_length),
    )
    lengths = [len(item["input_ids"]) for item in ours.dataset]
    print(f"{len(examples)} chat texts, tokens per text: median {sorted(lengths)[len(lengths) // 2]}, "
          f"max {max(lengths)} (max_length {config.max_length}); {config.steps} steps of {config.batch_size}, "
          f"device {default_device()}, precision {config.precision}")

    rates = {
        "pad to max_length (WildReward)": our_loop(base, CountingLoader(padded), config),
        "HF Trainer (dynamic padding, length-grouped)": hf_trainer(base, tokenizer, ours.dataset, config),
        "tacit loop (dynamic padding, length-grouped)": our_loop(base, CountingLoader(ours), config),
    }
    baseline = rates["pad to max_length (WildReward)"]
    for name, rate in rates.items():
        print(f"{name:46s} {rate:9.0f} non-padding tokens/s  {rate / baseline:5.2f}x pad-to-max")


if __name__ == "__main__":
    main()

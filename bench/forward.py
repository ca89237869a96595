"""What one forward pass of the served MiniLM costs on this CPU, by sequence length, batch and threads.

The floor under every serving latency: no batching policy answers a request faster than the model reads
its longest text. Prints the median milliseconds of one call (``--repeats`` calls after a warm-up) in
float32, bf16 (where the CPU computes it natively) and int8 (``TACIT_SERVE_QUANTIZE=int8``), and the
speed-up of each over float32 measured in the same run.

    python bench/forward.py [--lengths 32 128 256 512] [--batches 1 16] [--threads 1 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging

from tacit.core.settings import TacitSettings
from tacit.model.hardware import cpu_has_native_bf16
from tacit.model.scoring import quantize_int8


def models() -> dict[str, torch.nn.Module]:
    base = TacitSettings().resolved_base_model()
    fp32 = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3).eval()
    variants = {"float32": fp32}
    if cpu_has_native_bf16():
        variants["bf16"] = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=3, dtype=torch.bfloat16
        ).eval()
    variants["int8"] = quantize_int8(AutoModelForSequenceClassification.from_pretrained(base, num_labels=3).eval())
    return variants


@torch.inference_mode()
def milliseconds(model: torch.nn.Module, batch: int, length: int, repeats: int) -> float:
    inputs = {
        "input_ids": torch.randint(1000, 20000, (batch, length)),
        "attention_mask": torch.ones(batch, length, dtype=torch.long),
    }
    model(**inputs)  # warm-up: oneDNN picks its kernels for this shape
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(**inputs)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    logging.set_verbosity_error()  # not the report of the fresh classifier head, three times
    variants = models()
    print(f"MiniLM forward pass, median of {args.repeats} calls, load average {os.getloadavg()[0]:.1f}, "
          f"attention {variants['float32'].config._attn_implementation}")
    print(f"{'threads':>7} {'batch':>5} {'tokens':>6} " + " ".join(f"{name:>12}" for name in variants))
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batches:
            for length in args.lengths:
                times = {name: milliseconds(model, batch, length, args.repeats) for name, model in variants.items()}
                cells = [f"{times['float32']:9.1f} ms"] + [
                    f"{ms:6.1f} ({times['float32'] / ms:.1f}x)" for name, ms in times.items() if name != "float32"
                ]
                print(f"{threads:>7} {batch:>5} {length:>6} " + " ".join(f"{cell:>12}" for cell in cells))


if __name__ == "__main__":
    main()

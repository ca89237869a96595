"""Reward-model quality on the demo's data: the table behind the trainer's defaults (docs: benchmarks).

    python bench/quality.py [--shared ../shared/data] [--steps 100] [--seeds 3] [--out bench-results/quality]

Labels the bundled chat logs with the default labeler, trains every recipe below on them with the trainer's
own code over several seeds, and scores each model on held-out HH-RLHF (four test files) and PandaLM pairs
that share no conversation with the training data, next to "the longer reply wins" and a Bradley-Terry model
trained on as many explicit HH-RLHF pairs with the same budget, all in one run (`tacit eval quality`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from typer.testing import CliRunner

from tacit.cli import app

RECIPES = (
    "wildfb:label_scheme=wildfb",  # WildFB: neutral follow-ups dropped, four levels
    "five:label_scheme=five",  # all five levels, neutral kept
    "five-exchange:label_scheme=five,layout=exchange",  # query and reply only
    "five-reply:label_scheme=five,layout=reply",  # the reply alone
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).parents[1].parent / "shared" / "data")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sizes", default="all", help="learning curve, e.g. 1000,3000,all")
    parser.add_argument("--recipe", action="append", help="instead of the recipes above (NAME:SETTING=VALUE,...)")
    parser.add_argument("--max-pairs", type=int, default=200)
    parser.add_argument("--no-bradley-terry", action="store_true", help="skip the Bradley-Terry reference")
    parser.add_argument("--out", type=Path, default=Path("bench-results/quality"))
    args = parser.parse_args()

    pairs = [*sorted((args.shared / "hh-rlhf").glob("*_test.jsonl.gz")), args.shared / "pandalm" / "testset-v1.json"]
    missing = [path for path in pairs if not path.exists()] or ([] if pairs[:-1] else [args.shared / "hh-rlhf"])
    if missing:
        parser.error(f"missing benchmark data: {', '.join(map(str, missing))} (pass --shared)")
    command = ["eval", "quality", "--steps", str(args.steps), "--seeds", str(args.seeds), "--sizes", args.sizes,
               "--max-pairs", str(args.max_pairs), "--out", str(args.out)]
    if args.no_bradley_terry:
        command.append("--no-bradley-terry")
    for path in pairs:
        command += ["--pairs", str(path)]
    for recipe in args.recipe or RECIPES:
        command += ["--variant", recipe]
    result = CliRunner().invoke(app, command, catch_exceptions=False)
    print(result.output, end="")
    raise SystemExit(result.exit_code)


if __name__ == "__main__":
    main()

"""Signal heads against OpenAssistant's humans: trained models, each scored on trees it never saw.

    python bench/heads.py [--trees ../shared/data/oasst/en_100_tree.jsonl] [--folds 4] [--steps 20] [--seed 0]

The OpenAssistant trees are split by tree into ``--folds`` folds; for each fold, three reward models are
trained on the other trees with the trainer's own code (the bundled MiniLM, CPU) and scored on the fold:

- ``follow-up``: the ordinal head on the follow-up labels alone (``TACIT_FEEDBACK_FUSION=false``), the baseline;
- ``fused``: the ordinal head on the follow-up labels fused with the thumbs and reactions on each reply;
- ``heads``: the fused ordinal head plus the ``thumbs_up`` and ``continue`` heads on the same backbone
  (``TACIT_TRAIN_HEADS=thumbs_up,continue``); the replies nobody answered are ``continue`` examples only.

Every head of every model is measured, on held-out trees only:

- ``thumbs AUC``: ROC-AUC of the head's score against each volunteer's thumb (+1 positive, -1 negative) on
  the held-out assistant messages (the models read text only, never the thumbs they are measured on);
- ``ranks``: agreement with the human ranks of held-out sibling replies, over every two differently ranked
  siblings (a tie counts half);
- ``pairs``: pairwise accuracy on the quality benchmark's held-out preference pairs (``--max-pairs``).

Mean ± standard deviation over folds, and each head's difference from the baseline (the follow-up model's
reward), fold by fold, as mean ± standard deviation. With 100 trees, read differences within about two
standard deviations as noise.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

from signals import DEFAULT, Reply, auc_against_thumbs, rank_agreement, read_replies

from tacit.core.domain import SIGNAL, Message, Role, SignalEvent
from tacit.core.examples import RewardExample, ended_reply
from tacit.core.fusion import fuse
from tacit.core.heads import SIGNAL_HEADS, thumbs_up_target
from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS
from tacit.model.layouts import render
from tacit.model.scoring import RewardScorer
from tacit.trainer.evaluate import PreferencePair, load_pairs
from tacit.trainer.train import TrainConfig, train_reward_model

MODELS = ("follow-up", "fused", "heads")
MEASURES = ("thumbs AUC", "ranks", "pairs")
BASELINE = ("follow-up", "satisfaction")


@dataclass(frozen=True)
class Fold:
    """One held-out measurement: per (model, head), per measure."""

    figures: dict[tuple[str, str], dict[str, float]]


def signals_of(reply: Reply) -> list[SignalEvent]:
    """A reply's thumbs and reactions as the signal events `tacit replay` sends for them."""
    def event(fields: dict) -> SignalEvent:
        return SIGNAL.validate_python({"tenant": "bench", "conversation_id": reply.tree, "message_turn":
                                       len(reply.above), **fields})

    return [*(event({"signal": "thumbs", "up": up}) for up in reply.thumbs),
            *(event({"signal": "reaction", "name": name}) for name in reply.reactions)]


def examples_of(reply: Reply, model: str) -> list[RewardExample]:
    """What the trainer reads of one reply: an example per follow-up label (fused for all but the baseline,
    with head targets for ``heads``), or, for ``heads``, a continue-only example when nobody answered."""
    if not reply.levels:
        ended = ended_reply("bench", reply.tree, [*reply.above, Message(Role.ASSISTANT, reply.text, len(reply.above))])
        return [ended] if model == "heads" and ended is not None else []
    signals = signals_of(reply)
    base = RewardExample("bench", reply.tree, None, *prompt(reply), reply.text, 0, response_turn=len(reply.above))
    examples = []
    for level in reply.levels:
        target = level if model == "follow-up" else fuse(level, signals).level
        examples.append(replace(base, level=target))
    if model == "heads":
        thumbs = thumbs_up_target(signals)
        examples = [replace(example, thumbs_up=thumbs, continued=True) for example in examples]
    return examples


def prompt(reply: Reply) -> tuple[tuple[Message, ...], str]:
    """(history, query) of a reply: its prompter message is the query (every OpenAssistant reply has one)."""
    return reply.above[:-1], reply.above[-1].content


def train(model: str, replies: Sequence[Reply], config: TrainConfig, base: Path, out: Path) -> Path:
    examples = list(chain.from_iterable(examples_of(reply, model) for reply in replies))
    heads = SIGNAL_HEADS if model == "heads" else ()
    train_reward_model(examples, replace(config, heads=heads), base, out)
    return out


def measure(scorer: RewardScorer, held: Sequence[Reply], pairs: Sequence[PreferencePair]) -> dict[str, dict]:
    """Per head of the checkpoint: thumbs AUC and rank agreement on ``held``, accuracy on ``pairs``."""
    layout = scorer.spec.layout
    on_replies = scorer.score_texts([render(*prompt(r), r.text, layout) for r in held]).by_head()
    chosen = scorer.score_texts([render(p.history, p.query, p.chosen, layout) for p in pairs]).by_head()
    rejected = scorer.score_texts([render(p.history, p.query, p.rejected, layout) for p in pairs]).by_head()
    figures = {}
    for head, values in on_replies.items():
        by_id = dict(zip((r.node_id for r in held), values, strict=True))
        score: dict[str, Callable] = {head: lambda reply, up, by_id=by_id: by_id[reply.node_id]}
        figures[head] = {
            "thumbs AUC": auc_against_thumbs([r for r in held if r.thumbs], score)[head],
            "ranks": rank_agreement(list(held), score)[head][0],
            "pairs": statistics.fmean(c > r for c, r in zip(chosen[head], rejected[head], strict=True)),
        }
    return figures


def run_fold(replies: Sequence[Reply], held_trees: set[str], config: TrainConfig, settings: TacitSettings,
             pairs: Sequence[PreferencePair]) -> Fold:
    training = [r for r in replies if r.tree not in held_trees]
    held = [r for r in replies if r.tree in held_trees]
    figures = {}
    for model in MODELS:
        with tempfile.TemporaryDirectory() as out:
            checkpoint = train(model, training, config, settings.resolved_base_model(), Path(out))
            scorer = RewardScorer.load(checkpoint, settings)
            for head, found in measure(scorer, held, pairs).items():
                figures[(model, head)] = found
        print(f"  {model}: " + "; ".join(f"{head} " + ", ".join(f"{k} {v:.3f}" for k, v in f.items())
                                         for (m, head), f in figures.items() if m == model), flush=True)
    return Fold(figures)


def folds_of(replies: Sequence[Reply], count: int, seed: int) -> list[set[str]]:
    trees = sorted({reply.tree for reply in replies})
    random.Random(seed).shuffle(trees)
    return [set(trees[i::count]) for i in range(count)]


def spread(values: Sequence[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {deviation:.3f}"


def report(folds: Sequence[Fold]) -> None:
    keys = list(folds[0].figures)
    print(f"\nmean ± std over {len(folds)} folds (held-out trees); Δ: difference from {'/'.join(BASELINE)} "
          "fold by fold")
    print(f"{'model':10s} {'head':13s} " + " ".join(f"{m:>15s} {'Δ':>16s}" for m in MEASURES))
    for key in keys:
        cells = []
        for measure_name in MEASURES:
            values = [fold.figures[key][measure_name] for fold in folds]
            gaps = [fold.figures[key][measure_name] - fold.figures[BASELINE][measure_name] for fold in folds]
            cells.append(f"{spread(values):>15s} {'+' if statistics.fmean(gaps) >= 0 else ''}{spread(gaps):>15s}")
        print(f"{key[0]:10s} {key[1]:13s} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=Path, default=DEFAULT)
    parser.add_argument("--labeler", default="rules")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--max-pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = TacitSettings(precision="float32", max_length=args.max_length)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                         holdout_fraction=0.0, seed=args.seed, precision="float32")
    replies = read_replies(args.trees, args.labeler)
    pairs = load_pairs(HELDOUT_PAIRS)[: args.max_pairs]
    print(f"{len(replies)} assistant messages in {len({r.tree for r in replies})} trees, labeler {args.labeler}; "
          f"{args.steps} steps of {args.batch_size}, max length {args.max_length}; {len(pairs)} held-out pairs")
    folds = []
    for index, held in enumerate(folds_of(replies, args.folds, args.seed)):
        print(f"fold {index + 1}/{args.folds}: {len(held)} held-out trees", flush=True)
        folds.append(run_fold(replies, held, config, settings, pairs))
    report(folds)


if __name__ == "__main__":
    sys.exit(main())

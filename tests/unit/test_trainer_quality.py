"""The quality benchmark: its data, its references and the command, on a tiny random BERT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tacit.cli import app
from tacit.core.cli import Wiring
from tacit.core.domain import Message, Role
from tacit.core.examples import RewardExample
from tacit.core.settings import TacitSettings
from tacit.labels.rules import RulesLabeler
from tacit.model.layouts import render
from tacit.model.scoring import RewardScorer
from tacit.trainer.evaluate import PreferencePair
from tacit.trainer.quality import (
    BRADLEY_TERRY,
    LONGER_WINS,
    Measurement,
    examples_from_log,
    longer_wins,
    summary_rows,
    train_bradley_terry,
    unseen,
    user_texts,
)
from tacit.trainer.train import TrainConfig

REPLY = "Here is a careful answer with enough words to be a real reply to the question."
QUERY = "Could you please explain how this works in detail?"


def conversation(index: int, followup: str) -> dict:
    return {"conversation_id": f"c{index}", "user_id": f"u{index % 7}", "messages": [
        {"role": "user", "content": f"{QUERY} Topic number {index}."},
        {"role": "assistant", "content": REPLY},
        {"role": "user", "content": followup},
        {"role": "assistant", "content": REPLY},
    ]}


FOLLOWUPS = ("Thanks, that solved it!", "That's wrong, you misread the question.", "What about Python?",
             "No, that is not what I asked.", "Perfect, thank you so much!")


@pytest.fixture
def chat_log(tmp_path: Path) -> Path:
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(conversation(i, FOLLOWUPS[i % 5])) for i in range(80)))
    return path


def example(query: str, history: tuple[Message, ...] = ()) -> RewardExample:
    return RewardExample("t", "c", "u", history, query, "reply", 3)


def test_log_follow_ups_are_labeled_and_refined_as_the_worker_stores_them(chat_log: Path) -> None:
    examples = examples_from_log(chat_log, RulesLabeler())

    assert len(examples) == 80
    assert {e.level for e in examples if "Topic number 5." in e.query} == {5}
    assert {e.level for e in examples if "Topic number 1." in e.query} <= {1, 2}
    assert {e.user_id for e in examples} == {f"u{i}" for i in range(7)}


def test_pairs_sharing_a_user_message_with_training_are_left_out() -> None:
    seen = user_texts([example("How do I bake bread?", (Message(Role.USER, "Hi  there", 0),))])
    pairs = [
        PreferencePair((), "how do I bake   bread?", "a", "b"),  # same query, other spacing and case
        PreferencePair((Message(Role.USER, "hi there", 0), Message(Role.ASSISTANT, "Hello", 1)), "New?", "a", "b"),
        PreferencePair((), "Something never trained on", "a", "b"),
    ]

    assert unseen(pairs, seen) == pairs[2:]


def test_longer_wins_counts_ties_half() -> None:
    pairs = [PreferencePair((), "q", "longer", "short"), PreferencePair((), "q", "s", "longer"),
             PreferencePair((), "q", "same", "size")]

    assert longer_wins(pairs) == pytest.approx(0.5)


def test_bradley_terry_reference_learns_to_rank_the_chosen_reply(tiny_backbone: Path, tmp_path: Path) -> None:
    pairs = [PreferencePair((), f"question {i}", "great detailed helpful answer", "no") for i in range(64)]
    config = TrainConfig(steps=30, batch_size=16, learning_rate=1e-3, max_length=32, precision="float32")

    train_bradley_terry(pairs, config, tiny_backbone, tmp_path)

    scorer = RewardScorer.load(tmp_path, TacitSettings(precision="float32"))
    chosen, rejected = scorer.score_texts([render((), "question 99", reply, "compact") for reply in
                                           ("great detailed helpful answer", "no")]).rewards
    assert chosen > rejected
    assert scorer.spec.levels == (1, 5)


def test_summary_gives_mean_and_spread_over_seeds() -> None:
    measurements = [Measurement("five", 100 + seed, seed, {"hh": value}, 10.0, 0.1) for seed, value in
                    enumerate((0.5, 0.7))]  # a user split gives each seed a slightly different count
    measurements.append(Measurement(LONGER_WINS, 0, 0, {"hh": 0.6}))

    five, longer = summary_rows(measurements)

    assert five["hh"] == pytest.approx((0.6, 0.1414), abs=1e-4)
    assert five["seeds"] == 2 and five["examples"] == 100 and five["holdout_ece"] == pytest.approx((0.1, 0.0))
    assert longer["hh"] == (0.6, 0.0) and longer["holdout_ece"] is None


def test_eval_quality_trains_every_variant_seed_and_reference(chat_log: Path, tiny_backbone: Path,
                                                             tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"prompt": f"Question {i} about baking?", "chosen": "A long, helpful "
                                           "answer about baking.", "rejected": "No."}) for i in range(40)))
    settings = TacitSettings(base_model=tiny_backbone, max_length=32, train_batch_size=8, precision="float32")
    out = tmp_path / "quality"

    result = CliRunner().invoke(
        app, ["eval", "quality", "--data", str(chat_log), "--labeler", "rules", "--pairs", str(pairs),
              "--variant", "wildfb:label_scheme=wildfb", "--variant", "five:label_scheme=five,layout=reply",
              "--seeds", "2", "--steps", "2", "--max-pairs", "20", "--out", str(out)],
        obj=Wiring(settings), catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    measured = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    assert [(m["model"], m["seed"]) for m in measured] == [
        (LONGER_WINS, 0), ("wildfb", 0), ("wildfb", 1), ("five", 0), ("five", 1), (BRADLEY_TERRY, 0),
        (BRADLEY_TERRY, 1)]
    assert measured[0]["accuracy"] == {"pairs": 1.0}
    bradley_terry = measured[-1]
    assert bradley_terry["size"] == 20  # as many pairs as wildfb's examples, capped by the 20 left over
    assert "| five |" in (out / "summary.md").read_text()


@pytest.mark.parametrize("variant", ["five:steps=many", "five:seed=3", "five:colour=red", ":label_scheme=five"])
def test_malformed_variants_are_refused_with_the_reason(variant: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "quality", "--variant", variant, "--out", str(tmp_path)])

    assert result.exit_code == 2
    assert "Invalid value" in result.output or "not a training setting" in result.output


def test_narrow_layouts_show_less_of_the_conversation() -> None:
    history = (Message(Role.USER, "earlier", 0), Message(Role.ASSISTANT, "before", 1))

    assert render(history, "q", "r", "exchange") == "User: q\nAssistant: r"
    assert render(history, "q", "r", "reply") == "Assistant: r"
    assert "earlier" in render(history, "q", "r", "compact")


def test_pairwise_loss_prefers_the_chosen_first_half() -> None:
    from tacit.trainer.quality import pairwise_loss

    class Fixed(torch.nn.Module):
        def forward(self, scores: torch.Tensor):
            return type("Out", (), {"logits": scores})()

    right = pairwise_loss(Fixed(), {"scores": torch.tensor([[2.0], [-2.0]])})
    wrong = pairwise_loss(Fixed(), {"scores": torch.tensor([[-2.0], [2.0]])})
    assert right < 0.2 < wrong


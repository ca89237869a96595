"""Signal heads: their targets, the masked multi-head loss, training and checkpoints with heads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tacit.core.domain import SIGNAL, Message, Role, SignalEvent
from tacit.core.errors import TacitError
from tacit.core.examples import RewardExample, ended_reply, head_target, label_scheme, with_head_targets
from tacit.core.heads import CONTINUE, SATISFACTION, THUMBS_UP, signal_heads, thumbs_up_target
from tacit.core.settings import TacitSettings
from tacit.model.ordinal import classification_layer, rewards_from_logits
from tacit.model.scoring import RewardScorer
from tacit.trainer.evaluate import evaluate_checkpoint
from tacit.trainer.model import (
    init_thresholds,
    load_reward_model,
    ordinal_loss,
    save_reward_model,
    signal_head_loss,
)
from tacit.trainer.train import TrainConfig, _loader, ordinal_batch_loss, split_examples, train_reward_model

HEADS = (THUMBS_UP, CONTINUE)
TINY = TrainConfig(steps=4, batch_size=8, max_length=64, holdout_fraction=0.2, precision="float32", heads=HEADS)


def signal(kind: str, **fields) -> SignalEvent:
    return SIGNAL.validate_python({"tenant": "acme", "conversation_id": "c1", "message_turn": 1, "signal": kind,
                                   **fields})


# ------------------------------------------------------------------------------------------------ targets


@pytest.mark.parametrize(("signals", "target"), [
    ([], None),
    ([signal("thumbs", up=True)], 1.0),
    ([signal("thumbs", up=False)], 0.0),
    ([signal("thumbs", up=True), signal("thumbs", up=False)], None),  # they cancel out
    ([signal("rating", score=9, scale=10)], 1.0),
    ([signal("reaction", name="-1"), signal("reaction", name="+1"), signal("reaction", name="-1")], 0.0),
    ([signal("regenerate")], None),  # not a verdict on the reply: the fused level hears it
    ([signal("copy")], None),  # weight 0, as in fusion
])
def test_thumbs_target_is_the_sign_of_the_verdict_signals(signals: list[SignalEvent], target: float | None) -> None:
    assert thumbs_up_target(signals) == target


def conversation(*roles: Role) -> list[Message]:
    return [Message(role, f"{role.value} {turn}", turn) for turn, role in enumerate(roles)]


def test_an_unanswered_last_reply_is_a_continue_example_only() -> None:
    messages = conversation(Role.USER, Role.ASSISTANT, Role.USER, Role.ASSISTANT)

    example = ended_reply("acme", "c1", messages, "u1")

    assert (example.query, example.response, example.response_turn) == ("user 2", "assistant 3", 3)
    assert example.history == tuple(messages[:2])
    assert example.level is None and example.thumbs_up is None
    assert head_target(example, CONTINUE) == 0.0
    assert head_target(example, THUMBS_UP) is None
    assert not label_scheme("five").keeps(example)


def test_a_conversation_the_user_spoke_last_in_has_no_ended_reply() -> None:
    assert ended_reply("acme", "c1", conversation(Role.USER, Role.ASSISTANT, Role.USER)) is None
    assert ended_reply("acme", "c1", []) is None


def test_follow_up_labeled_replies_were_continued_and_take_their_thumbs() -> None:
    rated = [RewardExample("acme", "c1", "u1", (), "q", "r", 3, response_turn=1),
             RewardExample("acme", "c1", "u1", (), "q2", "r2", 4, response_turn=3)]

    targeted = with_head_targets(rated, {("acme", "c1", 1): [signal("thumbs", up=False)]})

    assert [(e.continued, e.thumbs_up) for e in targeted] == [(True, 0.0), (True, None)]
    assert [head_target(e, CONTINUE) for e in targeted] == [1.0, 1.0]


def test_heads_are_named_once_in_their_order_and_checked() -> None:
    assert signal_heads(["continue", "thumbs_up", "continue"]) == HEADS
    with pytest.raises(ValueError, match="thumbs_up, continue"):
        signal_heads(["thumbs"])
    assert TacitSettings(train_heads="continue, thumbs_up").train_heads == HEADS
    with pytest.raises(ValueError):
        TrainConfig(heads=("continue", "thumbs_up"))


# ---------------------------------------------------------------------------------------------- the loss


def test_each_head_learns_only_from_examples_with_its_target() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0], [-4.0, 7.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])

    loss = signal_head_loss(logits, targets, mask)
    loss.backward()

    first = F.binary_cross_entropy_with_logits(logits[:2, 0], targets[:2, 0])
    second = F.binary_cross_entropy_with_logits(logits[1:2, 1], targets[1:2, 1])
    torch.testing.assert_close(loss, first + second)
    assert logits.grad[2].abs().sum() == 0 and logits.grad[0, 1] == 0  # no target, no gradient
    assert signal_head_loss(logits, targets, torch.zeros_like(mask)) == 0


def test_the_ordinal_loss_leaves_out_unrated_examples() -> None:
    logits = torch.tensor([[3.0, -2.0], [-5.0, 9.0]])
    classes = torch.tensor([1, 0])

    masked = ordinal_loss(logits, classes, mask=torch.tensor([1.0, 0.0]))

    torch.testing.assert_close(masked, ordinal_loss(logits[:1], classes[:1]))


def unanswered(i: int) -> RewardExample:
    return RewardExample("acme", f"e{i}", f"u{i % 12}", (), f"Question {i}?", "Anything else?", None, continued=False)


def rated(count: int) -> list[RewardExample]:
    """Helpful replies are liked and refusals are not, so every head has something to learn."""
    return [RewardExample("acme", f"c{i}", f"u{i % 12}", (), f"Question {i}?",
                          "Here is a detailed answer." if i % 2 else "I cannot help with that.", 5 if i % 2 else 1,
                          thumbs_up=float(i % 2) if i % 3 else None, continued=True) for i in range(count)]


def test_batches_carry_a_mask_per_head_and_for_the_level(tiny_backbone: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    examples = [*rated(3), unanswered(0)]

    batch = next(iter(_loader(tokenizer, examples, label_scheme("five"), TINY, shuffle=False)))

    assert batch["rated"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert batch["head_mask"].tolist() == [[0.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]]
    assert batch["head_targets"].tolist() == [[0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    plain = next(iter(_loader(tokenizer, rated(3), label_scheme("five"), replace(TINY, heads=()), shuffle=False)))
    assert set(plain) == {"input_ids", "token_type_ids", "attention_mask", "labels", "targets"}


def test_unanswered_replies_train_only_with_heads() -> None:
    examples = [*rated(40), *(unanswered(i) for i in range(10))]

    with_heads = [example for part in split_examples(examples, TINY) for example in part]
    without = [example for part in split_examples(examples, replace(TINY, heads=())) for example in part]

    assert sum(e.level is None for e in with_heads) == 10
    assert all(e.level is not None for e in without) and len(without) == 40


def test_signal_head_biases_start_at_their_prior(tiny_backbone: Path) -> None:
    model = load_reward_model(tiny_backbone, num_classes=3, signal_heads=2)

    init_thresholds(model, [0, 0, 2, 1], [[1.0, 1.0, 1.0], [0.0]])

    bias = classification_layer(model)[1].bias
    expected = torch.logit(torch.tensor([3 / 6, 2 / 6, 4 / 5, 1 / 3]))
    torch.testing.assert_close(bias, expected)


# ------------------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def trained(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory):
    examples = [*rated(48), *(unanswered(i) for i in range(16))]
    return train_reward_model(examples, TINY, tiny_backbone, tmp_path_factory.mktemp("heads"))


def test_a_checkpoint_records_its_heads_and_serves_each(trained, tiny_backbone: Path) -> None:
    scorer = RewardScorer.load(trained.output_dir, TacitSettings(precision="float32"))
    texts = ["Question 1?\nHere is a detailed answer.", "I cannot help with that."]

    scores = scorer.score_texts(texts)

    assert scorer.spec.heads == HEADS and scorer.spec.levels == (1, 2, 3, 4, 5)
    assert list(scores.by_head()) == [SATISFACTION, THUMBS_UP, CONTINUE]
    plain = AutoModelForSequenceClassification.from_pretrained(trained.output_dir).eval()
    assert plain.config.tacit["heads"] == list(HEADS)
    assert list(plain.config.id2label.values())[-2:] == list(HEADS)
    with torch.no_grad():
        logits = plain(**scorer.tokenizer(texts, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(torch.tensor(scores.rewards), rewards_from_logits(logits[:, :4]), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(scores.by_head()[CONTINUE]), torch.sigmoid(logits[:, 5]),
                               atol=1e-5, rtol=0)
    weight = classification_layer(plain)[1].weight
    assert torch.equal(weight[:4], weight[:1].expand(4, -1))  # CORAL thresholds; the heads are free rows
    assert not torch.equal(weight[4], weight[0])


def test_continuing_a_model_needs_the_same_heads(trained, tmp_path: Path) -> None:
    examples = [*rated(48), *(unanswered(i) for i in range(16))]

    with pytest.raises(TacitError, match=r"signal heads \['thumbs_up', 'continue'\], this run asks for \[\]"):
        train_reward_model(examples, replace(TINY, heads=()), trained.output_dir, tmp_path, incremental=True)


def test_each_signal_head_is_evaluated_on_the_holdout(trained) -> None:
    scorer = RewardScorer.load(trained.output_dir, TacitSettings(precision="float32"))

    metrics = evaluate_checkpoint(scorer, trained.holdout, {})

    assert {e.continued for e in trained.holdout} == {True, False}
    assert 0 <= metrics["holdout_continue_roc_auc"] <= 1
    assert "holdout_accuracy" in metrics


def test_an_ordinal_only_checkpoint_loads_as_before(tiny_backbone: Path, tmp_path: Path) -> None:
    model = load_reward_model(tiny_backbone, num_classes=4)
    save_reward_model(model, AutoTokenizer.from_pretrained(tiny_backbone), tmp_path, levels=(1, 2, 4, 5),
                      layout="compact", max_length=64)

    scorer = RewardScorer.load(tmp_path, TacitSettings(precision="float32"))

    assert "heads" not in AutoModelForSequenceClassification.from_pretrained(tmp_path).config.tacit
    assert scorer.spec.heads == ()
    scores = scorer.score_texts(["thanks"])
    assert scores.heads == [{}] and scores.by_head() == {SATISFACTION: scores.rewards}


def test_the_batch_loss_adds_the_heads_to_the_ordinal_loss(tiny_backbone: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    batch = next(iter(_loader(tokenizer, [*rated(3), unanswered(0)], label_scheme("five"), TINY, shuffle=False)))
    model = load_reward_model(tiny_backbone, num_classes=5, signal_heads=2).eval()
    with torch.no_grad():
        logits = model(**{k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}).logits

        loss = ordinal_batch_loss()(model, dict(batch))

    expected = (ordinal_loss(logits[:3, :4], batch["labels"][:3])
                + signal_head_loss(logits[:, 4:], batch["head_targets"], batch["head_mask"]))
    torch.testing.assert_close(loss, expected)

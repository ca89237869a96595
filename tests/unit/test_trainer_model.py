"""The reward model on a tiny random BERT: heads, saved checkpoint, training loop, local scoring."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BatchEncoding,
    Qwen3Config,
    Qwen3Model,
    pipeline,
)

from tacit.core.domain import Message, Role
from tacit.core.examples import RewardExample, label_scheme
from tacit.core.settings import TacitSettings
from tacit.model.ordinal import classification_layer, rewards_from_logits
from tacit.model.scoring import RewardScorer, canary_rewards
from tacit.serving.model import ServedModel
from tacit.serving.swap import check_canary
from tacit.trainer import train as train_module
from tacit.trainer.evaluate import PreferencePair, evaluate_checkpoint
from tacit.trainer.model import (
    balanced_class_weights,
    init_thresholds,
    load_reward_model,
    ordinal_loss,
    ordinal_targets,
    predicted_classes,
    save_reward_model,
)
from tacit.trainer.train import (
    TRAINING_STATE,
    TooFewExamples,
    TrainConfig,
    _backward,
    _loader,
    ordinal_batch_loss,
    train_reward_model,
)

TEXTS = ["User: hi\nAssistant: Hello!", "User: fix my code\nAssistant: " + "Here is the fix. " * 30, "thanks"]


def encode(directory: Path, texts: list[str]) -> dict[str, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")


# ----------------------------------------------------------------------------------------------- the heads


def test_coral_thresholds_move_together(tiny_backbone: Path) -> None:
    """One shared weight: the gap between consecutive threshold logits is the same for every input, so
    with thresholds started in order no input is ever 'above 2 but not above 1'."""
    model = load_reward_model(tiny_backbone, num_classes=4, head="coral").eval()
    init_thresholds(model, [0, 1, 1, 2, 3, 3, 3])
    with torch.no_grad():
        logits = model(**encode(tiny_backbone, TEXTS)).logits

    gaps = logits[:, :-1] - logits[:, 1:]
    assert torch.allclose(gaps, gaps[:1].expand_as(gaps), atol=1e-6)
    assert (torch.sigmoid(logits).diff(dim=-1) <= 0).all()


def test_independent_thresholds_do_not(tiny_backbone: Path) -> None:
    model = load_reward_model(tiny_backbone, num_classes=4, head="independent").eval()
    with torch.no_grad():
        logits = model(**encode(tiny_backbone, TEXTS)).logits

    gaps = logits[:, :-1] - logits[:, 1:]
    assert not torch.allclose(gaps, gaps[:1].expand_as(gaps), atol=1e-6)


def test_thresholds_start_at_the_training_prior(tiny_backbone: Path) -> None:
    model = load_reward_model(tiny_backbone, num_classes=3, head="coral")
    init_thresholds(model, [0, 0, 1, 2, 2, 2])  # P(y>0) = 4/6, P(y>1) = 3/6 before smoothing

    _, layer = classification_layer(model)
    assert torch.sigmoid(layer.bias).tolist() == pytest.approx([5 / 8, 4 / 8])


def test_coral_refuses_a_head_without_bias(tmp_path: Path, tokenizer_dir: Path) -> None:
    config = Qwen3Config(
        vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16,
    )
    Qwen3Model(config).save_pretrained(tmp_path)

    with pytest.raises(ValueError, match="head='independent'"):
        load_reward_model(tmp_path, num_classes=4, head="coral")


def test_targets_loss_and_prediction() -> None:
    classes = torch.tensor([0, 1, 3])

    assert ordinal_targets(classes, 3).tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 1]]
    confident = torch.tensor([[-20.0, -20.0, -20.0], [20.0, -20.0, -20.0], [20.0, 20.0, 20.0]])
    assert ordinal_loss(confident, classes) < 1e-6
    assert predicted_classes(confident).tolist() == [0, 1, 3]


# ------------------------------------------------------------------------------------------- the checkpoint


@pytest.mark.parametrize("head", ["coral", "independent"])
def test_saved_checkpoint_gives_identical_rewards_with_plain_transformers(
    tiny_backbone: Path, tmp_path: Path, head: str
) -> None:
    model = load_reward_model(tiny_backbone, num_classes=4, head=head).eval()
    _, layer = classification_layer(model)
    with torch.no_grad():  # a head that differs from its initialisation, as after training
        layer.bias.copy_(torch.tensor([1.5, 0.2, -1.0]))
        for parameter in layer.parameters():
            parameter.add_(torch.randn_like(parameter))
    inputs = encode(tiny_backbone, TEXTS)
    with torch.no_grad():
        trained = rewards_from_logits(model(**inputs).logits)

    save_reward_model(
        model, AutoTokenizer.from_pretrained(tiny_backbone), tmp_path, levels=(1, 2, 4, 5), layout="compact",
        max_length=64,
    )
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        rewards = rewards_from_logits(reloaded(**inputs).logits)

    torch.testing.assert_close(rewards, trained, rtol=0, atol=1e-6)
    assert reloaded.config.tacit == {
        "layout": "compact", "levels": [1, 2, 4, 5], "head": head, "max_length": 64
    }
    assert reloaded.config.id2label == {0: "level>1", 1: "level>2", 2: "level>4"}
    weight = classification_layer(reloaded)[1].weight
    assert torch.equal(weight, weight[:1].expand_as(weight)) == (head == "coral")


def test_pipeline_reads_the_thresholds_as_sigmoids_not_a_softmax(tiny_backbone: Path, tmp_path: Path) -> None:
    model = load_reward_model(tiny_backbone, num_classes=4, head="coral").eval()
    save_reward_model(model, AutoTokenizer.from_pretrained(tiny_backbone), tmp_path, levels=(1, 2, 4, 5),
                      layout="compact", max_length=64)
    scores = pipeline("text-classification", model=str(tmp_path), top_k=None)([TEXTS[0]])[0]
    with torch.no_grad():
        logits = model(**encode(tiny_backbone, TEXTS[:1])).logits[0]
    by_label = {score["label"]: score["score"] for score in scores}
    expected = dict(zip(("level>1", "level>2", "level>4"), torch.sigmoid(logits).tolist(), strict=True))
    assert by_label == pytest.approx(expected, abs=1e-5)


# ------------------------------------------------------------------------------------ training and scoring


def examples(count: int) -> list[RewardExample]:
    """Satisfied replies are helpful and unsatisfied ones refuse, so there is something to learn."""
    levels = [1, 2, 3, 4, 5]
    return [
        RewardExample(
            tenant="acme",
            conversation_id=f"c{i}",
            user_id=f"u{i % 12}",
            history=(Message(Role.USER, "hello", 0), Message(Role.ASSISTANT, "Hi! What can I do?", 1)),
            query=f"Question number {i}?",
            response="Here is a detailed answer." if levels[i % 5] > 3 else "I cannot help with that.",
            level=levels[i % 5],
        )
        for i in range(count)
    ]


# float32: exact, repeatable numbers on any machine (``auto`` trains in bf16 where the hardware has it).
TINY = TrainConfig(steps=6, batch_size=8, max_length=64, holdout_fraction=0.2, precision="float32",
                   label_scheme="wildfb")


@pytest.fixture(scope="module")
def trained(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory):
    return train_reward_model(examples(60), TINY, tiny_backbone, tmp_path_factory.mktemp("trained"))


def test_training_reports_metrics_returns_the_holdout_and_saves(trained) -> None:
    metrics = trained.metrics

    assert metrics["train_examples"] + metrics["holdout_examples"] == 48  # 12 neutral dropped by wildfb
    assert metrics["holdout_examples"] == len(trained.holdout) > 0
    assert {"train_loss", "steps"} <= set(metrics)
    assert (trained.output_dir / "config.json").exists()


def test_saved_checkpoint_is_evaluated_as_served(trained) -> None:
    scorer = RewardScorer.load(trained.output_dir, TacitSettings(precision="float32"))
    pairs = [PreferencePair((), f"Question {i}?", "Here is a detailed answer.", "I cannot help.") for i in range(10)]

    metrics = evaluate_checkpoint(scorer, trained.holdout, {"toy": pairs})

    for name in ("accuracy", "mae", "qwk", "ece", "roc_auc"):
        assert f"holdout_{name}" in metrics
    assert sum(row["count"] for row in metrics["holdout_reliability"]) == len(trained.holdout)
    assert 0.0 <= metrics["pairwise_toy"] <= 1.0
    assert sum(row["pairs"] for row in metrics["margin_curve_toy"]) == 10
    # What the scoring service checks a loaded version against: the same artifact passes, bit for bit here.
    check_canary(ServedModel(scorer, 1, metrics))
    assert metrics["canary_rewards"] == canary_rewards(scorer)


def test_accumulated_micro_batches_give_the_gradient_of_the_whole_batch(tiny_backbone: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    batch = next(iter(_loader(tokenizer, examples(60)[:8], label_scheme("five"), TINY, shuffle=False)))
    model = load_reward_model(tiny_backbone, num_classes=5).eval()  # eval: no dropout, same forward twice
    device = torch.device("cpu")

    whole = _backward(model, BatchEncoding(dict(batch)), TINY, device, 1, ordinal_batch_loss())
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    halves = sum(_backward(model, BatchEncoding({k: v[rows] for k, v in batch.items()}), TINY, device, 2,
                           ordinal_batch_loss())
                 for rows in (slice(0, 4), slice(4, 8)))

    assert halves == pytest.approx(whole, abs=1e-6)
    for accumulated, full in zip((p.grad for p in model.parameters()), expected):
        torch.testing.assert_close(accumulated, full, atol=1e-6, rtol=1e-4)


def test_training_is_deterministic(trained, tiny_backbone: Path, tmp_path: Path) -> None:
    again = train_reward_model(examples(60), TINY, tiny_backbone, tmp_path)

    assert again.metrics == trained.metrics


def test_too_few_examples_says_how_many_and_what_to_do(tiny_backbone: Path, tmp_path: Path) -> None:
    with pytest.raises(TooFewExamples, match=r"Only 8 of 10 .* Replay more chat logs"):
        train_reward_model(examples(10), TINY, tiny_backbone, tmp_path)


def test_one_level_only_is_not_enough(tiny_backbone: Path, tmp_path: Path) -> None:
    one_level = [example for example in examples(200) if example.level == 5]

    with pytest.raises(TooFewExamples, match="All 40 usable examples are level 5"):
        train_reward_model(one_level, TINY, tiny_backbone, tmp_path)


def test_config_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="coral, independent"):
        TrainConfig(head="ordinal")


def test_training_batches_group_similar_lengths(tokenizer_dir: Path) -> None:
    """Random batches of chat texts pad nearly every batch to the longest text; grouped ones barely pad."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    lengths = [5 + (i * 37) % 200 for i in range(256)]
    varied = [RewardExample("t", f"c{i}", f"u{i}", (), "q", "word " * n, 5 if i % 2 else 1)
              for i, n in enumerate(lengths)]
    config = TrainConfig(batch_size=16, max_length=256)
    batches = list(_loader(tokenizer, varied, label_scheme("wildfb"), config, shuffle=True))
    padded = sum(batch["input_ids"].numel() for batch in batches)
    real = sum(int(batch["attention_mask"].sum()) for batch in batches)
    assert sorted(int(i) for batch in batches for i in batch["labels"]) == sorted(
        label_scheme("wildfb").to_class(e.level) for e in varied)
    assert real / padded > 0.75  # a plain shuffle of these lengths gives 0.54


def test_interrupted_training_resumes_to_the_same_model(
    trained, tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = replace(TINY, save_every=2)
    calls = 0
    backward = train_module._backward

    def crash_at_step_five(*args, **kwargs) -> float:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise KeyboardInterrupt
        return backward(*args, **kwargs)

    monkeypatch.setattr(train_module, "_backward", crash_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        train_reward_model(examples(60), config, tiny_backbone, tmp_path)
    assert (tmp_path / f"{TRAINING_STATE}-0.pt").exists()
    monkeypatch.setattr(train_module, "_backward", backward)

    resumed = train_reward_model(examples(60), config, tiny_backbone, tmp_path)

    assert resumed.metrics == trained.metrics  # same losses, step for step, as the uninterrupted run
    assert not list(tmp_path.glob(f"{TRAINING_STATE}*"))
    original = AutoModelForSequenceClassification.from_pretrained(trained.output_dir)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    for (name, weight), other in zip(original.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(weight, other, msg=name)


def test_class_weights_balance_classes_in_the_loss() -> None:
    weights = balanced_class_weights([0, 0, 0, 1, 3, 3], num_classes=4)
    logits, classes = torch.zeros(6, 3), torch.tensor([0, 0, 0, 1, 3, 3])

    torch.testing.assert_close(weights, torch.tensor([2 / 3, 2.0, 0.0, 1.0]))
    assert ordinal_loss(logits, classes, weights) == pytest.approx(ordinal_loss(logits, classes).item())
    skewed = torch.tensor([[-5.0, -5.0, -5.0]] * 6)  # confident "class 0": right for 3 of 6 examples
    assert ordinal_loss(skewed, classes, weights) > ordinal_loss(skewed, classes)


def test_soft_targets_follow_the_labelers_probabilities() -> None:
    rated = RewardExample("t", "c", "u", (), "q", "r", 2, probabilities=(0.1, 0.6, 0.3, 0.0, 0.0))

    assert label_scheme("five").above(rated, soft=True) == pytest.approx([0.9, 0.3, 0.0, 0.0])
    assert label_scheme("five").above(rated, soft=False) == [1.0, 0.0, 0.0, 0.0]
    # wildfb has no neutral class: the probabilities of its four levels, renormalised
    assert label_scheme("wildfb").above(rated, soft=True) == pytest.approx([0.6 / 0.7, 0.0, 0.0])
    assert label_scheme("five").above(replace(rated, probabilities=None), soft=True) == [1.0, 0.0, 0.0, 0.0]


def test_soft_targets_reach_the_loss(tiny_backbone: Path, tmp_path: Path) -> None:
    soft = [replace(e, probabilities=(0.2, 0.2, 0.2, 0.2, 0.2)) for e in examples(60)]
    hard = train_reward_model(soft, replace(TINY, label_scheme="five"), tiny_backbone, tmp_path / "hard")
    learned = train_reward_model(soft, replace(TINY, label_scheme="five", soft_targets=True), tiny_backbone,
                                 tmp_path / "soft")

    assert learned.metrics["train_loss"] != pytest.approx(hard.metrics["train_loss"])

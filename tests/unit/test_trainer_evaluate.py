"""HH-RLHF parsing, pairwise accuracy with any score function, and the ordinal metrics."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from tacit.core.domain import Message, Role
from tacit.readers.transcripts import parse_hh_transcript
from tacit.trainer.evaluate import (
    PreferencePair,
    calibration,
    load_hh_pairs,
    load_pairs,
    margin_curve,
    ordinal_metrics,
    pair_from_record,
    pairwise_accuracy,
    quadratic_weighted_kappa,
    roc_auc,
)

# A real record: Anthropic HH-RLHF, helpful-base test split, line 2 (MIT licence).
HH_RECORD = {
    "chosen": (
        "\n\nHuman: How can I find out what types of butterflies are in my area?\n\nAssistant: Which "
        "location are you in?\n\nHuman: I am in Oregon.\n\nAssistant: There are about 175 species of "
        "butterflies in Oregon, of which 100 are long-distance migrants from southern California.  Also, "
        "some of the common butterflies in Oregon\n\nHuman: Great. What are some common species "
        "then?\n\nAssistant: About 150 species of butterflies live in Oregon, with about 100 species are "
        "moths, and about 20 species are common here year-round, and another 10 species are seen here "
        "year-round.  I suggest you keep an eye out for skippers, gossamer wings, and red admirals."
    ),
    "rejected": (
        "\n\nHuman: How can I find out what types of butterflies are in my area?\n\nAssistant: Which "
        "location are you in?\n\nHuman: I am in Oregon.\n\nAssistant: There are about 175 species of "
        "butterflies in Oregon, of which 100 are long-distance migrants from southern California.  Also, "
        "some of the common butterflies in Oregon\n\nHuman: Great. What are some common species "
        "then?\n\nAssistant: Are you interested in just the common butterflies?  There are a few common "
        "ones which will be easy to find.  Like the Monarch, Western Tiger Swallowtail and several other "
        "swallowtail butterflies.  The Monarch is known for being a very common and beautiful butterfly.  "
        "Are you interested in butterflies because you have children?"
    ),
}


def test_transcript_becomes_alternating_messages() -> None:
    messages = parse_hh_transcript(HH_RECORD["chosen"])

    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT] * 3
    assert messages[2] == Message(Role.USER, "I am in Oregon.", 2)
    assert messages[-1].content.startswith("About 150 species")


def test_record_becomes_history_query_and_both_replies() -> None:
    pair = pair_from_record(HH_RECORD)

    assert pair is not None
    assert [m.content for m in pair.history][:2] == [
        "How can I find out what types of butterflies are in my area?",
        "Which location are you in?",
    ]
    assert len(pair.history) == 4
    assert pair.query == "Great. What are some common species then?"
    assert pair.chosen.endswith("red admirals.")
    assert pair.rejected.endswith("because you have children?")


@pytest.mark.parametrize(
    "record",
    [
        {"chosen": HH_RECORD["chosen"], "rejected": HH_RECORD["chosen"]},  # nothing to prefer
        {"chosen": HH_RECORD["chosen"], "rejected": "\n\nHuman: Hi\n\nAssistant: Hello"},  # different prompts
        {"chosen": "\n\nHuman: Hi", "rejected": "\n\nHuman: Hey"},  # no reply at all
    ],
)
def test_malformed_records_are_left_out(record: dict) -> None:
    assert pair_from_record(record) is None


@pytest.mark.parametrize("name", ["pairs.jsonl", "pairs.jsonl.gz"])
def test_load_reads_plain_and_gzipped_jsonl(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    lines = json.dumps(HH_RECORD) + "\n" + json.dumps({"chosen": "x", "rejected": "y"}) + "\n"
    path.write_bytes(gzip.compress(lines.encode()) if name.endswith(".gz") else lines.encode())

    assert load_hh_pairs(path) == [pair_from_record(HH_RECORD)]


def test_pairwise_accuracy_batches_calls_and_counts_strict_wins() -> None:
    pairs = [PreferencePair((), f"q{i}", "good", "bad" if i % 4 else "good") for i in range(10)]
    calls = []

    def score(texts: list[str]) -> list[float]:
        calls.append(len(texts))
        return [1.0 if text.endswith("good") else 0.0 for text in texts]

    assert pairwise_accuracy(score, pairs, batch_size=4) == 0.7  # pairs 0, 4, 8 tie
    assert calls == [8, 8, 4]


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert roc_auc(torch.tensor([1.0]), torch.tensor([2.0])) == 0.0
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([2.0, 1.0])) == pytest.approx(0.875)


def probabilities(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_ordinal_metrics_on_known_probabilities() -> None:
    levels = probabilities([0.9, 0.1, 0, 0], [0.1, 0.8, 0.1, 0], [0, 0, 0.1, 0.9], [0, 0.1, 0.7, 0.2])
    classes = torch.tensor([0, 1, 3, 3])  # levels 1, 2, 5, 5 under wildfb; the last one is predicted 2

    metrics = ordinal_metrics(levels, classes, levels=(1, 2, 4, 5))

    assert metrics["accuracy"] == 0.75
    assert metrics["mae"] == 0.25
    assert metrics["roc_auc"] == 1.0
    assert 0.5 < metrics["qwk"] < 1.0
    assert sum(row["count"] for row in metrics["reliability"]) == 4


def test_ordinal_metrics_skip_auc_without_both_sides() -> None:
    metrics = ordinal_metrics(torch.full((2, 4), 0.25), torch.tensor([0, 1]), levels=(1, 2, 4, 5))

    assert "roc_auc" not in metrics


def test_quadratic_weighted_kappa_is_one_for_agreement_and_punishes_far_misses_more() -> None:
    actual = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])

    assert quadratic_weighted_kappa(actual, actual, 4) == pytest.approx(1.0)
    near = quadratic_weighted_kappa(torch.tensor([1, 1, 2, 3, 0, 1, 2, 2]), actual, 4)
    far = quadratic_weighted_kappa(torch.tensor([3, 1, 2, 3, 0, 1, 2, 0]), actual, 4)
    assert far < near < 1.0
    assert quadratic_weighted_kappa(torch.zeros(8, dtype=torch.long), actual, 4) == 0.0


def test_calibration_error_is_the_weighted_gap_between_confidence_and_accuracy() -> None:
    # Four items at confidence 0.9, three right (0.75): gap 0.15; two at 0.6, both right: gap 0.4.
    rows = [[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2
    classes = torch.tensor([0, 0, 0, 1, 0, 0])

    ece, table = calibration(probabilities(*rows), classes)

    assert ece == pytest.approx((4 * 0.15 + 2 * 0.4) / 6)
    assert [(row["low"], row["count"], row["accuracy"]) for row in table] == [(0.6, 2, 1.0), (0.9, 4, 0.75)]


def test_margin_curve_bins_pairs_from_small_to_large_margins() -> None:
    scores = [(1.0 + m, 1.0) if m > 0.25 else (1.0, 1.0 + m) for m in (0.05 * i for i in range(1, 11))]

    curve = margin_curve(scores)

    assert [row["pairs"] for row in curve] == [2] * 5
    assert [row["accuracy"] for row in curve] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert curve[0]["margin_low"] == pytest.approx(0.05) and curve[-1]["margin_high"] == pytest.approx(0.5)


PANDALM = [
    {"instruction": "Shorten this.", "input": "A long sentence.", "response1": "Short.", "response2": "Long.",
     "annotator1": 1, "annotator2": 1, "annotator3": 2},
    {"instruction": "Say hi.", "input": "", "response1": "hey", "response2": "Hello!",
     "annotator1": 2, "annotator2": 2, "annotator3": 2},
    {"instruction": "Tie.", "input": "", "response1": "a", "response2": "b",
     "annotator1": 0, "annotator2": 0, "annotator3": 1},
    {"instruction": "Split.", "input": "", "response1": "a", "response2": "b",
     "annotator1": 0, "annotator2": 1, "annotator3": 2},
    {"instruction": "Is water wet?", "input": "", "response1": True, "response2": "No.",
     "annotator1": 1, "annotator2": 1, "annotator3": 1},
]


def test_pandalm_majority_response_is_chosen_and_ties_and_non_texts_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "testset-v1.json"
    path.write_text(json.dumps(PANDALM))

    assert load_pairs(path) == [
        PreferencePair((), "Shorten this.\n\nA long sentence.", "Short.", "Long."),
        PreferencePair((), "Say hi.", "Hello!", "hey"),
    ]


def test_prompt_chosen_rejected_jsonl_plain_and_conversational(tmp_path: Path) -> None:
    path = tmp_path / "dpo.jsonl"
    records = [
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Capital of Italy?"}],
         "chosen": [{"role": "assistant", "content": "Rome."}],
         "rejected": [{"role": "assistant", "content": "Milan."}]},
    ]
    path.write_text("\n".join(json.dumps(record) for record in records))

    plain, conversational = load_pairs(path)

    assert plain == PreferencePair((), "Capital of France?", "Paris.", "Lyon.")
    assert [m.content for m in conversational.history] == ["Hi", "Hello!"]
    assert (conversational.query, conversational.chosen, conversational.rejected) == (
        "Capital of Italy?", "Rome.", "Milan.")


def test_hh_files_are_recognised(tmp_path: Path) -> None:
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps(HH_RECORD))

    assert load_pairs(path) == [pair_from_record(HH_RECORD)]


SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.mark.parametrize(
    ("relative", "at_least"),
    [("hh-rlhf/helpful-base_test.jsonl.gz", 2000), ("pandalm/testset-v1.json", 700)],
)
def test_shared_benchmark_files_load(relative: str, at_least: int) -> None:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")

    pairs = load_pairs(path)
    assert len(pairs) >= at_least
    assert all(isinstance(text, str) for pair in pairs for text in (pair.query, pair.chosen, pair.rejected))

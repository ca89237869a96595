"""HH-RLHF parsing, pairwise accuracy with any score function, and the ordinal metrics."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from tacit.domain import Message, Role
from trainer.evaluate import (
    PreferencePair,
    load_hh_pairs,
    ordinal_metrics,
    pair_from_record,
    pairwise_accuracy,
    parse_transcript,
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
    messages = parse_transcript(HH_RECORD["chosen"])

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


def test_ordinal_metrics_on_known_logits() -> None:
    logits = torch.tensor([[-5.0, -5.0, -5.0], [5.0, -5.0, -5.0], [5.0, 5.0, 5.0], [5.0, 5.0, -5.0]])
    classes = torch.tensor([0, 1, 3, 3])  # levels 1, 2, 5, 5 under wildfb

    metrics = ordinal_metrics(logits, classes, levels=(1, 2, 4, 5))

    assert metrics["accuracy"] == 0.75
    assert metrics["mae"] == 0.25
    assert metrics["roc_auc"] == 1.0


def test_ordinal_metrics_skip_auc_without_both_sides() -> None:
    metrics = ordinal_metrics(torch.zeros(2, 3), torch.tensor([0, 1]), levels=(1, 2, 4, 5))

    assert "roc_auc" not in metrics

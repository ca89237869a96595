"""The embedding labeler: the shipped classifier on clear follow-ups, fitting, the file format, the data."""

import gzip
import json

import pytest
import torch

from tacit.core.domain import FeedbackCandidate, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.labels import get_labeler
from tacit.labels.datasets import load_items, read_labeled
from tacit.labels.embedding import SHIPPED_HEAD, EmbeddingHead, EmbeddingLabeler
from tacit.labels.fitting import fit, fit_head
from tacit.labels.rules import RulesLabeler

REJECTION, CORRECTION, NEUTRAL, ENGAGED, SATISFIED = SatisfactionLevel


@pytest.fixture(scope="module")
def labeler() -> EmbeddingLabeler:
    return get_labeler("embedding", TacitSettings())


def candidate(followup: str, response: str = "You can sort a list with sorted(items).") -> FeedbackCandidate:
    return FeedbackCandidate(tenant="t", conversation_id="c", user_id=None, history=(),
                             query=Message(Role.USER, "How do I sort a list in Python?", 0),
                             response=Message(Role.ASSISTANT, response, 1), followup=Message(Role.USER, followup, 2))


def test_shipped_classifier_reads_clear_follow_ups(labeler):
    followups = ["Thank you so much, that solved it!", "What is the tallest mountain in Europe?"]
    labels = labeler.label([candidate(text) for text in followups])
    assert [label.level for label in labels] == [SATISFIED, NEUTRAL]
    for label in labels:
        assert label.labeler_id == "embedding" and label.labeler_version == f"1+{labeler.head.digest}"
        assert 0.2 < label.confidence <= 1 and label.reason.startswith(f"embedding: p({int(label.level)})=")


def test_labels_do_not_depend_on_the_batch(labeler):
    """Length-sorted batching with padding must not change an item's label."""
    texts = ["thanks!", "No, that's wrong: I asked for a descending sort. " * 8, "ok and what about tuples?"]
    together = labeler.label([candidate(text) for text in texts])
    alone = [labeler.label([candidate(text)])[0] for text in texts]
    assert [label.level for label in together] == [label.level for label in alone]
    assert [label.confidence for label in together] == pytest.approx([label.confidence for label in alone],
                                                                     abs=2e-2)


def test_empty_batch(labeler):
    assert labeler.label([]) == []


def test_fit_head_separates_separable_levels():
    torch.manual_seed(0)
    centers = torch.eye(5, 8) * 4
    levels = torch.arange(5).repeat(40)
    features = centers[levels] + torch.randn(200, 8) * 0.5
    head = fit_head(features, levels, fitted_on="synthetic")
    assert (head.probabilities(features).argmax(-1) == levels).float().mean() > 0.95


def test_head_file_round_trip(tmp_path):
    head = EmbeddingHead(torch.randn(5, 768), torch.randn(5), fitted_on="rules-1:sample.jsonl.gz")
    head.save(tmp_path / "head.safetensors")
    loaded = EmbeddingHead.load(tmp_path / "head.safetensors")
    assert torch.equal(loaded.weight, head.weight) and loaded.fitted_on == head.fitted_on
    assert loaded.digest == head.digest


def test_missing_or_mismatched_head_says_what_to_do(labeler, tmp_path):
    with pytest.raises(TacitError, match="tacit labelers fit"):
        EmbeddingHead.load(tmp_path / "nothing.safetensors")
    with pytest.raises(TacitError, match="refit it for this encoder"):
        EmbeddingLabeler(labeler.encoder, EmbeddingHead(torch.zeros(5, 10), torch.zeros(5), "x"))


def test_shipped_head_is_small():
    assert SHIPPED_HEAD.stat().st_size < 1_000_000


def write_jsonl(path, records):
    with gzip.open(path, "wt") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)


def test_labeled_jsonl(tmp_path):
    write_jsonl(tmp_path / "l.jsonl.gz", [
        {"history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
         "query": "sort?", "response": "sorted()", "followup": "thanks", "level": 5},
        {"response": "Hello!", "followup": "wrong", "level": 2},
    ])
    first, second = read_labeled(tmp_path / "l.jsonl.gz")
    assert first.level == SATISFIED and first.candidate.query.turn_index == 2
    assert (first.candidate.response.turn_index, first.candidate.followup.turn_index) == (3, 4)
    assert second.candidate.query is None and second.level == CORRECTION


def test_bad_labeled_line_names_file_and_line(tmp_path):
    write_jsonl(tmp_path / "bad.jsonl.gz", [{"response": "a", "followup": "b", "level": 5}, {"level": 9}])
    with pytest.raises(TacitError, match=r"bad.jsonl.gz:2: .*level 1-5"):
        read_labeled(tmp_path / "bad.jsonl.gz")


def test_conversation_log_is_labeled_by_the_teacher_and_fits(tmp_path, labeler):
    turns = ["How do I sort a list?", "Use sorted(items).", "Thanks, that worked!", "You're welcome.",
             "Now how do I reverse it?"]
    conversation = {"conversation_id": "c1", "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]}
    write_jsonl(tmp_path / "log.jsonl.gz", [conversation | {"conversation_id": f"c{i}"} for i in range(5)])
    items, source = load_items(tmp_path / "log.jsonl.gz", "tacit", RulesLabeler())
    assert source == "rules-1:log.jsonl.gz"
    assert [item.level for item in items[:2]] == [SATISFIED, NEUTRAL] and len(items) == 10
    head, report = fit(labeler.encoder, items, fitted_on=source)
    assert report.train_items == 8 and report.holdout_items == 2
    assert head.weight.shape == (5, 2 * labeler.encoder.dim)


def test_empty_source_is_an_error(tmp_path):
    write_jsonl(tmp_path / "none.jsonl.gz", [])
    with pytest.raises(TacitError, match="no labeled follow-ups"):
        load_items(tmp_path / "none.jsonl.gz", "labeled", RulesLabeler())


def test_labels_carry_the_five_probabilities_they_were_decided_from(labeler):
    label = labeler.label([candidate("Thank you so much, that solved it!")])[0]
    assert len(label.probabilities) == 5 and sum(label.probabilities) == pytest.approx(1.0)
    assert label.confidence == max(label.probabilities) == label.probabilities[int(label.level) - 1]

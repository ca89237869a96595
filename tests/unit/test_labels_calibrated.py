"""The calibrated labeler: the FeedbackQA mapping, the decision rule, calibration and its record, the registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tacit.cli import app
from tacit.core.domain import FeedbackCandidate, Label, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.labels import get_labeler
from tacit.labels.calibrated import (
    ISOTONIC,
    SHIPPED_CALIBRATED_HEAD,
    TEMPERATURE,
    CalibratedHead,
    CalibratedLabeler,
    Thresholds,
    decide,
)
from tacit.labels.calibrating import CalibratedFitConfig, best_threshold, fit_calibrated, weak_levels
from tacit.labels.evaluation import expected_calibration_error, measure
from tacit.labels.human_data import read_feedbackqa

FEEDBACKQA = Path(__file__).parents[2].parent / "shared" / "data" / "feedbackqa"


# --- FeedbackQA mapping -------------------------------------------------------------------------------------

def feedbackqa_record(ratings: list[str], feedback: list[str]) -> dict:
    """A record shaped like FeedbackQA's, with made-up text (its own text may not be copied)."""
    return {"question": "How long should I wait before a second test?",
            "passage": {"passage_id": 1, "source": "X", "uri": "u", "reference_type": "FAQ",
                        "reference": {"page_title": "t", "section_headers": ["h"],
                                      "section_content": "Wait two days, then test again."}},
            "rating": ratings, "feedback": feedback}


def test_feedbackqa_maps_each_rating_to_a_level(tmp_path: Path) -> None:
    records = [feedbackqa_record(["Bad", "Could be Improved"], ["Not about tests at all.", "Misses the timing."]),
               feedbackqa_record(["Acceptable", "Excellent"], ["Gives the timing only.", "Answers it directly."]),
               feedbackqa_record(["Excellent"], ["   "])]  # empty feedback: nothing to read
    (tmp_path / "A_feedback_test.json").write_text(json.dumps(records))
    items = read_feedbackqa(tmp_path / "A_feedback_test.json")
    assert [int(item.level) for item in items] == [1, 2, 3, 5]  # nothing maps to 4
    first = items[0].candidate
    assert first.query.content == "How long should I wait before a second test?"
    assert first.response.content == "Wait two days, then test again."
    assert first.followup.content == "Not about tests at all."
    assert first.response.role is Role.ASSISTANT and first.followup.role is Role.USER


def test_feedbackqa_reads_every_domain_file_of_a_folder(tmp_path: Path) -> None:
    for name in ("A_feedback_test.json", "B_feedback_valid.json"):
        (tmp_path / name).write_text(json.dumps([feedbackqa_record(["Bad"], ["No."])]))
    (tmp_path / "README.txt").write_text("not data")
    assert len(read_feedbackqa(tmp_path)) == 2


@pytest.mark.skipif(not FEEDBACKQA.is_dir(), reason=f"shared data not found at {FEEDBACKQA}")
def test_feedbackqa_shared_folder() -> None:
    levels = [int(item.level) for item in read_feedbackqa(FEEDBACKQA)]
    assert len(levels) > 9000
    assert set(levels) == {1, 2, 3, 5}
    assert 0.4 < sum(level <= 2 for level in levels) / len(levels) < 0.6


# --- the decision rule ----------------------------------------------------------------------------------------

def test_neutral_dominated_probabilities_still_say_dissatisfied() -> None:
    thresholds = Thresholds(dissatisfied=0.30, positive=0.40)
    rows = np.array([
        [0.10, 0.25, 0.60, 0.03, 0.02],  # argmax 3, but P(<=2) = 0.35 passes: the more probable of 1-2
        [0.05, 0.20, 0.70, 0.03, 0.02],  # P(<=2) = 0.25: neutral
        [0.02, 0.03, 0.50, 0.15, 0.30],  # P(>=4) = 0.45 passes: 5
        [0.20, 0.15, 0.10, 0.25, 0.30],  # both pass; the positive side's margin (0.15) beats 0.05
        [0.30, 0.10, 0.60, 0.00, 0.00],  # 1 is the more probable dissatisfied level
    ])
    assert decide(rows, thresholds).tolist() == [2, 3, 5, 5, 1]


def head_for(weight: np.ndarray, bias: np.ndarray, thresholds: Thresholds, method: str = TEMPERATURE,
             temperature: float = 1.0) -> CalibratedHead:
    from tacit.labels.calibrated import Calibration

    return CalibratedHead(weight, bias, Calibration(method, "synthetic", temperature=temperature), thresholds,
                          "synthetic")


class HashEncoder:
    """A stand-in sentence encoder: a fixed unit vector per text, so no model is loaded."""

    dim = 4

    def encode(self, texts: list[str], *, truncate_left: bool = False) -> torch.Tensor:
        vectors = [torch.tensor(list(hashlib.sha256(t.encode()).digest()[:self.dim]), dtype=torch.float32)
                   for t in texts]
        return torch.nn.functional.normalize(torch.stack(vectors) - 128, dim=-1)


def candidate(followup: str) -> FeedbackCandidate:
    return FeedbackCandidate(tenant="t", conversation_id="c", user_id=None, history=(),
                             query=Message(Role.USER, "q", 0), response=Message(Role.ASSISTANT, "r", 1),
                             followup=Message(Role.USER, followup, 2))


def test_label_confidence_is_the_probability_of_the_stored_level() -> None:
    # Constant logits: every item gets P = (0.1, 0.25, 0.6, 0.03, 0.02), neutral the most likely.
    probabilities = np.array([0.10, 0.25, 0.60, 0.03, 0.02])
    head = head_for(np.zeros((5, 8)), np.log(probabilities), Thresholds(0.30, 0.40))
    labeler = CalibratedLabeler(HashEncoder(), head)
    labels = labeler.label([candidate("hm"), candidate("ok")])
    assert np.array([label.probabilities for label in labels]) == pytest.approx(np.tile(probabilities, (2, 1)))
    assert [label.level for label in labels] == [SatisfactionLevel.ERROR_CORRECTION] * 2
    assert labels[0].confidence == pytest.approx(0.25)
    assert labels[0].reason == "calibrated: p(2)=0.25, p(<=2)=0.35"
    assert labels[0].labeler_id == "calibrated" and labeler.label([]) == []


def test_best_threshold_maximises_f1() -> None:
    truth = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1, 0.05])
    assert best_threshold(truth, scores, np.ones(8)) == pytest.approx(0.6)  # 3 of 3 at precision 0.75
    assert best_threshold(np.zeros(8, dtype=bool), scores, np.ones(8)) > 1  # never fires


# --- calibration, and its record in the version ----------------------------------------------------------------

def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features whose true level probabilities are a softmax of ``x @ w``, but scaled up 4x: a classifier
    fitted without regularisation on few items is then overconfident, which calibration must undo."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 6))
    logits = features @ rng.normal(size=(6, 5)) * 0.5 + np.array([-1.5, 0.0, 1.5, -1.0, -1.0])
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    levels = np.array([rng.choice(5, p=p) + 1 for p in probabilities])
    return features, levels


@pytest.mark.parametrize("method", [TEMPERATURE, ISOTONIC])
def test_calibrated_probabilities_match_frequencies(method: str) -> None:
    features, levels = overconfident(3000, seed=0)
    config = CalibratedFitConfig(calibration=method, regularization=1.0, weak_rules=False)
    head, report = fit_calibrated(features, levels, ["a"] * 2000 + ["b"] * 1000, "a+b", config)
    fresh, truth = overconfident(3000, seed=0)  # same generator: the seed fixes w and the biases
    risk = head.probabilities(fresh)[:, :2].sum(axis=1)
    assert expected_calibration_error(risk, truth <= 2) < 0.05
    assert head.probabilities(fresh).sum(axis=1) == pytest.approx(np.ones(len(fresh)))
    assert report.per_source == {"a": 2000, "b": 1000} and report.out_of_fold_auc > 0.7


@pytest.mark.parametrize("method", [TEMPERATURE, ISOTONIC])
def test_calibration_is_recorded_in_the_version_and_the_file(tmp_path: Path, method: str) -> None:
    features, levels = overconfident(600, seed=1)
    head, _ = fit_calibrated(features, levels, ["a"] * 600, "a", CalibratedFitConfig(calibration=method))
    assert head.version == f"1+{method}+{head.digest}"
    assert head.calibration.fitted_on == "5-fold out-of-fold predictions on a"
    head.save(tmp_path / "head.safetensors")
    loaded = CalibratedHead.load(tmp_path / "head.safetensors")
    assert loaded.version == head.version and loaded.calibration.method == method
    assert loaded.thresholds == head.thresholds and loaded.fitted_on == "a"
    assert loaded.probabilities(features) == pytest.approx(head.probabilities(features))
    refit = CalibratedHead(head.weight, head.bias, head.calibration, Thresholds(0.5, 0.5), head.fitted_on)
    assert refit.digest != head.digest  # new thresholds: a new version


def test_levels_without_items_get_no_probability() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(200, 3))
    levels = np.where(features[:, 0] > 0, 2, 3)  # two levels only, as in EURTAD and DBDC3
    head, _ = fit_calibrated(features, levels, ["a"] * 200, "a", CalibratedFitConfig(calibration=TEMPERATURE))
    probabilities = head.probabilities(features)
    assert probabilities[:, [0, 3, 4]].max() < 1e-6
    assert head.thresholds.positive > 1  # no positive item: the positive side never fires
    assert (decide(probabilities, head.thresholds) == levels).mean() > 0.9


def test_rules_fill_in_what_humans_are_silent_on() -> None:
    human = np.array([3, 3, 2, 2, 3])
    rules = np.array([5, 3, 1, 2, 4])
    assert weak_levels(human, rules).tolist() == [5, 3, 1, 2, 4]
    # A source that rates positives and rejections itself keeps its humans' levels.
    assert weak_levels(np.array([3, 1, 5]), np.array([5, 2, 3])).tolist() == [3, 1, 5]


# --- evaluation -----------------------------------------------------------------------------------------------

def test_expected_calibration_error_by_hand() -> None:
    probability = np.array([0.05, 0.05, 0.95, 0.95])
    assert expected_calibration_error(probability, np.array([0, 0, 1, 1])) == pytest.approx(0.05)
    assert expected_calibration_error(probability, np.array([0, 1, 1, 1])) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)


def test_measure_ranks_by_the_dissatisfied_probability() -> None:
    truth = [1, 2, 3, 3, 5]
    labels = [Label(SatisfactionLevel(3), 0.6, "", "x", "1")] * 5  # all neutral: the labels cannot rank
    probabilities = np.array([[0.5, 0.2, 0.3, 0, 0], [0.1, 0.3, 0.6, 0, 0], [0.1, 0.1, 0.8, 0, 0],
                              [0.0, 0.3, 0.7, 0, 0], [0.0, 0.0, 0.2, 0, 0.8]])
    report = measure(truth, labels, probabilities)
    assert report.auc_dissatisfied == 1.0  # P(<=2): 0.7, 0.4 for the unhappy, at most 0.3 for the rest
    assert report.auc == 0.5  # the label score (3 for all) cannot tell them apart
    assert report.auc_dissatisfied_vs_positive == 1.0
    assert report.dissatisfied.recall == 0.0 and report.ece_dissatisfied is not None
    assert measure(truth, labels).ece_dissatisfied is None  # no probabilities, no ECE of P(<=2)


# --- the registry and the CLI -----------------------------------------------------------------------------------

def test_registry_builds_the_shipped_calibrated_labeler() -> None:
    labeler = get_labeler("calibrated", TacitSettings())
    assert isinstance(labeler, CalibratedLabeler) and labeler.labeler_id == "calibrated"
    assert labeler.version == CalibratedHead.load(SHIPPED_CALIBRATED_HEAD).version
    labels = labeler.label(
        [candidate("No, that's wrong. I asked for the capital of Australia, not Austria."),
         candidate("What is the tallest mountain in Europe?")])
    probabilities = np.array([label.probabilities for label in labels])
    assert labels[1].level == SatisfactionLevel.NEUTRAL
    assert probabilities[0, :2].sum() > probabilities[1, :2].sum()  # the correction ranks as less satisfied
    for label, row in zip(labels, probabilities, strict=True):
        assert label.confidence == pytest.approx(row[int(label.level) - 1])
        assert label.labeler_version.startswith("1+isotonic+")


def test_unknown_labeler_lists_calibrated() -> None:
    with pytest.raises(TacitError, match="calibrated"):
        get_labeler("nope", TacitSettings())


def test_missing_head_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(TacitError, match="labelers fit --labeler calibrated"):
        CalibratedHead.load(tmp_path / "none.safetensors")


def test_cli_fits_a_calibrated_head(tmp_path: Path) -> None:
    rows = [{"query": "How do I sort a list?", "response": "Use sorted(items).", "followup": text, "level": level}
            for text, level in [("thanks, that worked", 5), ("that's wrong, it crashes", 2), ("and tuples?", 3),
                                ("no, I asked for descending", 2), ("what about dicts?", 3), ("perfect, thanks!", 5)]
            for _ in range(5)]
    data = tmp_path / "labeled.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "head.safetensors"
    result = CliRunner().invoke(app, ["labelers", "fit", "--labeler", "calibrated", "--data", str(data),
                                      "--format", "labeled", "--calibration", "temperature", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "thresholds P(<=2) >=" in result.output
    assert CalibratedHead.load(out).version.startswith("1+temperature+")

"""The promotion gate: promote without a champion, refuse a regression beyond the tolerance, say why."""

from __future__ import annotations

from tacit.trainer.gate import decide

CHAMPION = {"holdout_accuracy": 0.60, "holdout_qwk": 0.50, "holdout_ece": 0.05, "pairwise_hh": 0.62,
            "train_loss": 0.3}


def test_first_version_is_promoted() -> None:
    verdict = decide({"holdout_accuracy": 0.1}, None, tolerance=0.01)

    assert verdict.promote and verdict.reasons == ["no champion yet"]


def test_candidate_within_tolerance_is_promoted_with_a_reason_per_metric() -> None:
    candidate = {**CHAMPION, "holdout_qwk": 0.495, "pairwise_hh": 0.70}

    verdict = decide(candidate, CHAMPION, tolerance=0.01)

    assert verdict.promote
    assert len(verdict.reasons) == 4  # accuracy, qwk, pairwise_hh, ece; train_loss is not gated
    assert all(reason.endswith("ok") for reason in verdict.reasons)


def test_regression_beyond_tolerance_is_refused_and_named() -> None:
    verdict = decide({**CHAMPION, "pairwise_hh": 0.58}, CHAMPION, tolerance=0.01)

    assert not verdict.promote
    assert [r for r in verdict.reasons if "regressed" in r] == [
        "pairwise_hh: candidate 0.5800 vs champion 0.6200, regressed by 0.0400 > tolerance 0.01"
    ]


def test_worse_calibration_counts_as_a_regression() -> None:
    assert not decide({**CHAMPION, "holdout_ece": 0.09}, CHAMPION, tolerance=0.01).promote
    assert decide({**CHAMPION, "holdout_ece": 0.01}, CHAMPION, tolerance=0.01).promote


def test_a_metric_the_candidate_lacks_blocks_promotion() -> None:
    candidate = {key: value for key, value in CHAMPION.items() if key != "pairwise_hh"}

    verdict = decide(candidate, CHAMPION, tolerance=0.01)

    assert not verdict.promote
    assert "pairwise_hh: not measured for the candidate (champion 0.6200)" in verdict.reasons

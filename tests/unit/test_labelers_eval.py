"""Evaluation against human labels: the data-set mappings, the metrics and the CLI on a small file."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tacit.cli import app
from tacit.core.domain import Label, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.labels.evaluation import evaluate, format_report, read_items, score
from tacit.labels.human_data import read_dbdc3, read_eurtad
from tacit.labels.rules import RulesLabeler


def write_jsonl(path: Path, records: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
    return path


def eurtad(reactions: list[str], followup: str = "that's not what i asked") -> dict:
    return {"dataset": "SelfFeeding", "history": [{"utterance": "hi", "response": "hello there"}],
            "prior_user_utterance": "what is the capital of france", "system_response": "i like dogs",
            "user_feedback_utterance": followup,
            "annotations": [{"user_reaction": r, "user_correction": "C1", "error_type": "E1"} for r in reactions]}


def test_eurtad_majority_of_error_reactions_is_a_correction(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [eurtad(["UR3", "UR4", ""]), eurtad(["UR1", "UR1", "UR5"]),
                                              eurtad(["", "", ""]), {**eurtad(["UR3"] * 3), "system_response": None}])
    items = read_eurtad(path)
    assert [item.level for item in items] == [2, 3, 3]  # no response: nothing to rate
    first = items[0].candidate
    assert [m.role for m in first.history] == [Role.USER, Role.ASSISTANT]
    assert first.query.content == "what is the capital of france" and first.query.turn_index == 2
    assert (first.response.turn_index, first.followup.content) == (3, "that's not what i asked")


def test_dbdc3_majority_breakdown_is_a_correction(tmp_path: Path) -> None:
    history = [{"speaker": "S", "utterance": "Hello!"}, {"speaker": "U", "utterance": "Hi. Do you like tennis?"}]
    rows = [
        {"history": history, "system_utterance": "I am a fish.", "user_followup": "What?",
         "breakdown_counts": {"O": 2, "T": 8, "X": 20}},
        {"history": history, "system_utterance": "Yes, I do.", "user_followup": "Me too.",
         "breakdown_counts": {"O": 20, "T": 8, "X": 2}},
        {"history": history, "system_utterance": "Bye.", "user_followup": None,
         "breakdown_counts": {"O": 10, "T": 10, "X": 10}},
    ]
    items = read_dbdc3(write_jsonl(tmp_path / "d.jsonl.gz", rows))
    assert [item.level for item in items] == [2, 3]  # the turn without a follow-up has nothing to read
    assert items[0].candidate.query.content == "Hi. Do you like tennis?"
    assert [m.content for m in items[0].candidate.history] == ["Hello!"]


def labeled(followup: str, level: int) -> dict:
    return {"query": "How do I reverse a list in Python?", "response": "Use my_list.reverse().",
            "followup": followup, "level": level}


def test_metrics_against_rules(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "l.jsonl", [
        labeled("thanks, that worked!", 5), labeled("that's wrong, it returns None", 2),
        labeled("this is useless", 1), labeled("what about tuples?", 3), labeled("thank you", 2),
    ])
    report = evaluate(RulesLabeler(), read_items(path, "labeled"))
    assert report.items == 5
    assert report.confusion[1] == [0, 1, 0, 0, 1]  # one correction found, one "thank you" read as thanks
    assert report.per_level[5].precision == 0.5 and report.per_level[5].recall == 1.0
    assert report.per_level[1].recall == 1.0
    assert report.auc_task == "positive (4-5) vs negative (1-2)"
    assert report.auc == pytest.approx(5 / 6)  # above two negatives, tied with the third


def test_score_orders_by_level_then_confidence() -> None:
    def label(level: int, confidence: float) -> Label:
        return Label(SatisfactionLevel(level), confidence, "", "rules", "1")
    assert score(label(5, 0.9)) > score(label(4, 0.9)) > score(label(3, 0.5)) > score(label(2, 0.6)) > score(label(1, 0.9))


def test_unknown_format_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(TacitError, match="eurtad"):
        read_items(tmp_path / "x.jsonl", "csv")


def test_cli_prints_the_report(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [eurtad(["UR3", "UR4", ""]), eurtad(["", "", ""], "and in germany?")])
    result = CliRunner().invoke(app, ["labelers", "eval", "--labeler", "rules", "--data", str(path),
                                      "--format", "eurtad"])
    assert result.exit_code == 0, result.output
    assert "ROC-AUC, not negative (3) vs negative (1-2): 1.000" in result.output


def test_limit_samples_the_same_items_in_file_order(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "l.jsonl", [labeled(f"question {i}?", 3) for i in range(50)])
    sample = [item.candidate.followup.content for item in read_items(path, "labeled", limit=5)]
    assert len(set(sample)) == 5 and sample == sorted(sample, key=lambda text: int(text.split()[1][:-1]))
    assert sample != [f"question {i}?" for i in range(5)]  # spread over the file, not its head
    assert [item.candidate.followup.content for item in read_items(path, "labeled", limit=5)] == sample
    assert len(read_items(path, "labeled", limit=500)) == 50


def test_a_slow_labeler_s_rate_keeps_its_decimals(tmp_path: Path) -> None:
    report = evaluate(RulesLabeler(), read_items(write_jsonl(tmp_path / "l.jsonl", [labeled("thanks!", 5)]), "labeled"))
    assert format_report(replace(report, items_per_s=0.0249)).startswith("1 items, 0.0249 items/s")

"""The model card every registered version carries: what it learned from, how to read its output, how it did.

Written as ``README.md`` next to the weights, in the Hugging Face model-card format (YAML front matter, then
markdown), so that whoever finds the directory, on disk or pushed to a hub, can tell which labels trained
it and that its outputs are ordinal thresholds, not classes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tacit.core.artifacts import read_text, write_text
from tacit.core.settings import TacitSettings

CARD = "README.md"


@dataclass(frozen=True)
class Provenance:
    """What a version was trained on and what became of it."""

    version: int
    run_id: int
    base_model: str
    examples: int
    labelers: Mapping[str, int]  # "labeler_id version" -> labels selected
    status: str
    reasons: Sequence[str]


def write_model_card(uri: str, provenance: Provenance, metrics: Mapping[str, Any], settings: TacitSettings) -> str:
    """Write the card into the version at ``uri`` (a directory or object storage); returns the card's URI."""
    tacit = json.loads(read_text(uri, "config.json", settings))["tacit"]
    return write_text(uri, CARD, render(provenance, tacit, metrics), settings)


def render(provenance: Provenance, tacit: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    levels = list(tacit["levels"])
    sections = [
        _front_matter(provenance),
        f"# Tacit reward model, version {provenance.version}\n\n"
        f"An ordinal reward model trained by Tacit (training run {provenance.run_id}) on users' implicit "
        f"feedback: follow-up messages rated for how satisfied the user was with the assistant's reply. "
        f"Status: **{provenance.status}** ({'; '.join(provenance.reasons) or 'no reason recorded'}).",
        _data(provenance, levels),
        _reading(tacit, levels),
        _evaluation(metrics),
    ]
    return "\n\n".join(sections) + "\n"


def _front_matter(provenance: Provenance) -> str:
    return ("---\nlibrary_name: transformers\npipeline_tag: text-classification\n"
            f"base_model: {provenance.base_model}\ntags:\n- reward-model\n- ordinal-regression\n- tacit\n---")


def _data(provenance: Provenance, levels: Sequence[int]) -> str:
    rows = "\n".join(f"| {labeler} | {count} |" for labeler, count in sorted(provenance.labelers.items()))
    return ("## Data\n\n"
            f"{provenance.examples} examples, split by user for evaluation. Satisfaction levels used (1 rejection "
            f"... 5 satisfaction): {', '.join(map(str, levels))}. Labels by labeler and version:\n\n"
            f"| labeler version | labels |\n|---|---|\n{rows or '| (none recorded) | 0 |'}")


def _reading(tacit: Mapping[str, Any], levels: Sequence[int]) -> str:
    thresholds = ", ".join(f"P(level > {level})" for level in levels[:-1])
    return ("## Reading the output\n\n"
            f"The classification head has {len(levels) - 1} outputs, one logit per threshold ({thresholds}); "
            f"head `{tacit['head']}`. They are not classes: apply a sigmoid to each, never a softmax "
            "(`config.problem_type` is `multi_label_classification`, so `pipeline(\"text-classification\", "
            "top_k=None)` does). The reward is `1 + sum(sigmoid(logits))`, from 1 to the number of levels, "
            f"as in WildReward. Inputs use the `{tacit['layout']}` text layout (`tacit.model.layouts`), "
            f"at most {tacit['max_length']} tokens.{_signal_heads(tacit.get('heads', ()), len(levels) - 1)}")


def _signal_heads(heads: Sequence[str], thresholds: int) -> str:
    """The outputs after the thresholds, where the model has signal heads: the reward reads the first ones only."""
    if not heads:
        return ""
    named = ", ".join(f"`{head}`" for head in heads)
    return (f"\n\nAfter the thresholds come {len(heads)} signal heads ({named}), one logit each: a sigmoid gives "
            f"each one's probability. The reward sums the sigmoids of the first {thresholds} logits only.")


def _evaluation(metrics: Mapping[str, Any]) -> str:
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())
                     if isinstance(value, float))
    return ("## Evaluation\n\nOn held-out users and preference pairs (`pairwise_*`: share of pairs whose chosen "
            f"reply scores higher).\n\n| metric | value |\n|---|---|\n{rows}")

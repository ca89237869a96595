"""Every registered version's README: its data, how to read its output, how it did."""

from __future__ import annotations

import json
from pathlib import Path

from tacit.core.settings import TacitSettings
from tacit.trainer.model_card import Provenance, write_model_card

TACIT = {"layout": "wildreward", "levels": [1, 2, 4, 5], "head": "coral", "max_length": 512}


def test_card_names_the_data_the_reading_and_the_figures(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"tacit": TACIT}))
    provenance = Provenance(version=7, run_id=3, base_model="/models/minilm", examples=966,
                            labelers={"rules 1": 900, "calibrated 1+isotonic+ab12": 66}, status="promoted",
                            reasons=["no champion yet"])

    card = Path(write_model_card(str(tmp_path), provenance, {"holdout_qwk": 0.26, "pairwise_hh": 0.55, "steps": 300},
                                 TacitSettings()))
    text = card.read_text()

    assert card == tmp_path / "README.md"
    assert text.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification\n")
    assert "base_model: /models/minilm" in text and "# Tacit reward model, version 7" in text
    assert "**promoted** (no champion yet)" in text
    assert "| calibrated 1+isotonic+ab12 | 66 |" in text and "| rules 1 | 900 |" in text
    assert "P(level > 1), P(level > 2), P(level > 4)" in text and "`1 + sum(sigmoid(logits))`" in text
    assert "`wildreward` text layout" in text and "at most 512 tokens" in text
    assert "| holdout_qwk | 0.2600 |" in text and "| pairwise_hh | 0.5500 |" in text
    assert "| steps |" not in text  # counts are not evaluation figures

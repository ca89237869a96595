"""The promotion gate: a candidate replaces the champion only if it is not worse on the same data.

Both models are scored on the candidate's holdout and on the same preference benchmarks (see
``tacit.trainer.job``), so the comparison is like for like. Each gated metric may fall at most ``tolerance``
short of the champion's; every comparison becomes a reason, stored with the decision either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Metrics where higher is better; ``pairwise_*`` benchmark accuracies are gated too.
HIGHER_IS_BETTER = ("holdout_accuracy", "holdout_qwk", "holdout_roc_auc")
LOWER_IS_BETTER = ("holdout_mae", "holdout_ece")


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def decide(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, tolerance: float) -> Verdict:
    """Promote when there is no champion, or when no gated metric regresses beyond ``tolerance``."""
    if champion is None:
        return Verdict(True, ["no champion yet"])
    pairwise = sorted(name for name in champion if name.startswith("pairwise_"))
    reasons, regressed = [], False
    for name, sign in [(n, 1) for n in (*HIGHER_IS_BETTER, *pairwise)] + [(n, -1) for n in LOWER_IS_BETTER]:
        if name not in champion:
            continue
        if name not in candidate:
            reasons.append(f"{name}: not measured for the candidate (champion {champion[name]:.4f})")
            regressed = True
            continue
        shortfall = sign * (champion[name] - candidate[name])
        worse = shortfall > tolerance
        regressed |= worse
        verdict = f"regressed by {shortfall:.4f} > tolerance {tolerance}" if worse else "ok"
        reasons.append(f"{name}: candidate {candidate[name]:.4f} vs champion {champion[name]:.4f}, {verdict}")
    if not reasons:
        return Verdict(False, ["no metric the champion was measured on; nothing to compare"])
    return Verdict(not regressed, reasons)

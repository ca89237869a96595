"""Cross-dataset evaluation of the labelers on human judgments: fit on two human sets, test on the third.

    python bench/labels_cross.py [--data ../shared/data] [--cache /tmp/tacit-labels-cross.npz]
                                 [--calibration isotonic|temperature] [--no-balance] [--no-weak-rules]

For each choice of held-out set (EURTAD, DBDC3, FeedbackQA) the calibrated labeler is fitted on the other
two exactly as `tacit labelers fit --labeler calibrated` fits it (out-of-fold calibration and thresholds,
rules' weak labels where the humans are silent), then the rules, the shipped embedding classifier and the
new head are measured on the held-out set with `tacit.labels.evaluation.measure`: dissatisfied (1-2) vs
rest and vs positive (4-5) ROC-AUC, level <= 2 precision and recall of the stored levels, the best recall
at precision >= 0.30 of P(<=2), ECE, the 5x5 confusion. The MiniLM features of every item are computed
once and cached (``--cache``): they are the same for the embedding and the calibrated labeler.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve

from tacit.core.settings import TacitSettings
from tacit.labels.calibrated import ISOTONIC, labels_from
from tacit.labels.calibrating import CalibratedFitConfig, fit_calibrated
from tacit.labels.embedding import SHIPPED_HEAD, EmbeddingHead, candidate_features, load_encoder
from tacit.labels.evaluation import EvalReport, format_report, measure
from tacit.labels.human_data import read_dbdc3, read_eurtad, read_feedbackqa
from tacit.labels.rules import RulesLabeler

SETS = {
    "eurtad": (read_eurtad, "eurtad/derived/eurtad_feedback_events.jsonl"),
    "dbdc3": (read_dbdc3, "dbdc3/derived/dbdc3_system_turn_with_followup.jsonl.gz"),
    "feedbackqa": (read_feedbackqa, "feedbackqa"),
}
MIN_PRECISION = 0.30


def load(data: Path, cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per set: features ``x``, human levels ``y``, the rules' levels and confidences; cached in ``cache``."""
    if cache.is_file():
        stored = np.load(cache)
        return {name: {key: stored[f"{name}/{key}"] for key in ("x", "y", "rules", "rules_confidence")}
                for name in SETS}
    encoder, rules, out = load_encoder(TacitSettings()), RulesLabeler(), {}
    for name, (reader, relative) in SETS.items():
        started = time.perf_counter()
        items = reader(data / relative)
        candidates = [item.candidate for item in items]
        labels = rules.label(candidates)
        with torch.inference_mode():
            features = candidate_features(encoder, candidates).numpy()
        out[name] = {"x": features, "y": np.array([int(item.level) for item in items]),
                     "rules": np.array([int(label.level) for label in labels]),
                     "rules_confidence": np.array([label.confidence for label in labels])}
        print(f"{name}: {len(items)} items encoded in {time.perf_counter() - started:.0f} s")
    np.savez(cache, **{f"{name}/{key}": value for name, arrays in out.items() for key, value in arrays.items()})
    return out


def recall_at_precision(truth: np.ndarray, risk: np.ndarray) -> float:
    """The highest recall of levels <= 2 among thresholds on ``risk`` with precision >= MIN_PRECISION."""
    precision, recall, _ = precision_recall_curve(truth, risk)
    reachable = recall[precision >= MIN_PRECISION]
    return float(reachable.max()) if len(reachable) else 0.0


def rules_labels(arrays: dict[str, np.ndarray]) -> list:
    from tacit.core.domain import Label, SatisfactionLevel

    return [Label(SatisfactionLevel(int(level)), float(conf), "", "rules", "")
            for level, conf in zip(arrays["rules"], arrays["rules_confidence"], strict=True)]


def embedding_report(head: EmbeddingHead, arrays: dict[str, np.ndarray]) -> tuple[EvalReport, np.ndarray]:
    from tacit.core.domain import Label
    from tacit.labels.embedding import LEVELS

    probabilities = head.probabilities(torch.from_numpy(arrays["x"])).numpy()
    labels = [Label(LEVELS[int(i)], float(row[i]), "", "embedding", "") for i, row in
              zip(probabilities.argmax(axis=1), probabilities, strict=True)]
    return measure(arrays["y"], labels, probabilities), probabilities[:, :2].sum(axis=1)


def in_domain(sets: dict[str, dict[str, np.ndarray]], config: CalibratedFitConfig) -> None:
    """One head fitted on all three sets; each set's rows of its 5-fold out-of-fold predictions.

    The ranking figures are clean (no classifier saw the item it predicts); the calibration map and the
    thresholds were fitted on these same predictions, pooled over the three sets.
    """
    names = list(sets)
    head, report = fit_calibrated(
        np.vstack([sets[n]["x"] for n in names]), np.concatenate([sets[n]["y"] for n in names]),
        np.concatenate([[n] * len(sets[n]["y"]) for n in names]), "+".join(names), config,
        rules_levels=np.concatenate([sets[n]["rules"] for n in names]))
    start = 0
    for name in names:
        truth = sets[name]["y"]
        probabilities = report.out_of_fold[start:start + len(truth)]
        start += len(truth)
        result = measure(truth, labels_from(head, probabilities), probabilities)
        print(row("calibrated, all three (out-of-fold)", name, result,
                  recall_at_precision(truth <= 2, probabilities[:, :2].sum(axis=1))))


def row(labeler: str, held_out: str, report: EvalReport, best_recall: float) -> str:
    def f(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"
    low = report.dissatisfied
    return (f"| {held_out} | {labeler} | {report.items} | {f(report.auc_dissatisfied)} | "
            f"{f(report.auc_dissatisfied_vs_positive)} | {low.precision:.3f} / {low.recall:.3f} | "
            f"{best_recall:.3f} | {f(report.ece_dissatisfied)} | {report.ece_label:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tacit-labels-cross.npz"))
    parser.add_argument("--calibration", default=ISOTONIC)
    parser.add_argument("--regularization", type=float, default=CalibratedFitConfig.regularization)
    parser.add_argument("--no-balance", action="store_true")
    parser.add_argument("--no-weak-rules", action="store_true")
    parser.add_argument("--confusion", action="store_true", help="Print each full report too.")
    parser.add_argument("--in-domain", action="store_true",
                        help="Also fit on all three sets and report each set's out-of-fold predictions: what "
                             "the same method reaches when the target's own kind of data is in the fit.")
    args = parser.parse_args()
    config = CalibratedFitConfig(calibration=args.calibration, regularization=args.regularization,
                                 balance_sources=not args.no_balance, weak_rules=not args.no_weak_rules)
    sets = load(args.data, args.cache)
    shipped_embedding = EmbeddingHead.load(SHIPPED_HEAD)
    print(f"config: {config}")
    print("| held out | labeler | items | AUC <=2 vs rest | AUC <=2 vs >=4 | stored <=2 P / R | "
          "R at P>=0.30 | ECE P(<=2) | ECE label |")
    print("|---|---|---|---|---|---|---|---|---|")
    details = []
    for held_out, test in sets.items():
        train = [name for name in sets if name != held_out]
        head, fit_report = fit_calibrated(
            np.vstack([sets[n]["x"] for n in train]), np.concatenate([sets[n]["y"] for n in train]),
            np.concatenate([[n] * len(sets[n]["y"]) for n in train]), "+".join(train), config,
            rules_levels=np.concatenate([sets[n]["rules"] for n in train]))
        truth_low = test["y"] <= 2
        rules = measure(test["y"], rules_labels(test))
        print(row("rules", held_out, rules, recall_at_precision(truth_low, -np.array(
            [3 + (lab.level - 3) * lab.confidence for lab in rules_labels(test)]))))
        embedding, embedding_risk = embedding_report(shipped_embedding, test)
        print(row("embedding (shipped)", held_out, embedding, recall_at_precision(truth_low, embedding_risk)))
        probabilities = head.probabilities(test["x"])
        calibrated = measure(test["y"], labels_from(head, probabilities), probabilities)
        print(row(f"calibrated (fit on {'+'.join(train)})", held_out, calibrated,
                  recall_at_precision(truth_low, probabilities[:, :2].sum(axis=1))))
        details.append((held_out, head, fit_report, calibrated))
    if args.in_domain:
        in_domain(sets, config)
    for held_out, head, fit_report, calibrated in details:
        print(f"\nheld out {held_out}: fitted on {fit_report.per_source}, levels {fit_report.level_counts}, "
              f"{fit_report.weak_labels} weak labels from the rules; thresholds P(<=2) >= "
              f"{head.thresholds.dissatisfied:.3f}, P(>=4) >= {head.thresholds.positive:.3f}")
        if args.confusion:
            print(format_report(calibrated))


if __name__ == "__main__":
    main()

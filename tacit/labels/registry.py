"""The labeler registry: picks a labeler by name (TACIT_LABELER) and builds it from the settings."""

from __future__ import annotations

from collections.abc import Callable

from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings, get_settings
from tacit.labels.base import Labeler


def _rules(settings: TacitSettings) -> Labeler:
    from tacit.labels.rules import RulesLabeler

    return RulesLabeler()


def _embedding(settings: TacitSettings) -> Labeler:
    from tacit.labels.embedding import EmbeddingLabeler

    return EmbeddingLabeler.from_settings(settings)


def _calibrated(settings: TacitSettings) -> Labeler:
    from tacit.labels.calibrated import CalibratedLabeler

    return CalibratedLabeler.from_settings(settings)


def _llm(settings: TacitSettings) -> Labeler:
    from tacit.labels.llm import LLMLabeler

    return LLMLabeler.from_settings(settings)


def _cascade(settings: TacitSettings) -> Labeler:
    from tacit.labels.cascade import Cascade, LLMBudget

    # The calibrated labeler's confidence is a calibrated probability, so "unsure" means what it says.
    cheap = (get_labeler("rules", settings), get_labeler("calibrated", settings))
    budget = LLMBudget(settings.cascade_llm_fraction, settings.cascade_llm_per_minute)
    return Cascade(cheap, get_labeler("llm", settings), settings.cascade_threshold, budget)


# Factories import their module on call: a worker that runs the rules never pays for a model's imports.
_REGISTRY: dict[str, Callable[[TacitSettings], Labeler]] = {
    "rules": _rules, "embedding": _embedding, "llm": _llm, "cascade": _cascade, "calibrated": _calibrated,
}


def get_labeler(name: str, settings: TacitSettings | None = None) -> Labeler:
    """The labeler called ``name``, configured from ``settings`` (default: the process's settings)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise TacitError(f"Unknown labeler {name!r}; choose one of: {known} "
                         "(the worker's is TACIT_LABELER).") from None
    return factory(settings or get_settings())

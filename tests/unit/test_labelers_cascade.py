"""The cascade's routing: who decides, what goes to the LLM, and the LLM budget."""

from collections.abc import Sequence

import pytest

from tacit.core.domain import FeedbackCandidate, Label, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.labels import get_labeler
from tacit.labels.cascade import Cascade, LLMBudget

NEUTRAL, SATISFIED = SatisfactionLevel.NEUTRAL, SatisfactionLevel.SATISFACTION


def candidate(followup: str) -> FeedbackCandidate:
    return FeedbackCandidate(tenant="t", conversation_id="c", user_id=None, history=(), query=None,
                             response=Message(Role.ASSISTANT, "Here you go.", 0),
                             followup=Message(Role.USER, followup, 1))


class Fake:
    """Labels every follow-up with the (level, confidence) its table gives, else neutral at ``default``."""

    def __init__(self, labeler_id: str, table: dict[str, tuple[SatisfactionLevel, float]],
                 default: float = 0.5) -> None:
        self.labeler_id, self.version = labeler_id, "v"
        self.table, self.default = table, default
        self.seen: list[str] = []

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]:
        self.seen += [c.followup.content for c in candidates]
        return [self._label(c.followup.content) for c in candidates]

    def _label(self, text: str) -> Label:
        level, confidence = self.table.get(text, (NEUTRAL, self.default))
        return Label(level, confidence, f"{self.labeler_id} said so", self.labeler_id, self.version)


def cascade(rules: Fake, embedding: Fake, llm: Fake, fraction: float | None = None) -> Cascade:
    return Cascade((rules, embedding), llm, threshold=0.7, budget=LLMBudget(fraction, None))


def test_each_item_is_decided_by_the_first_confident_labeler():
    rules = Fake("rules", {"thanks": (SATISFIED, 0.8)})
    embedding = Fake("embedding", {"new question": (NEUTRAL, 0.95)})
    llm = Fake("llm", {"hmm": (SatisfactionLevel.ERROR_CORRECTION, 0.9)})
    labels = cascade(rules, embedding, llm).label([candidate(t) for t in ("thanks", "new question", "hmm")])
    assert [label.labeler_id for label in labels] == ["rules", "embedding", "llm"]
    assert [label.level for label in labels] == [SATISFIED, NEUTRAL, SatisfactionLevel.ERROR_CORRECTION]
    assert embedding.seen == ["new question", "hmm"] and llm.seen == ["hmm"]
    assert labels[0].reason == "cascade: rules said so"


def test_a_less_confident_later_label_does_not_replace_an_earlier_one():
    rules = Fake("rules", {"are you sure": (SatisfactionLevel.ERROR_CORRECTION, 0.6)})
    embedding = Fake("embedding", {}, default=0.4)
    llm = Fake("llm", {}, default=0.1)  # e.g. an unparseable judge answer
    [label] = cascade(rules, embedding, llm).label([candidate("are you sure")])
    assert (label.labeler_id, label.level) == ("rules", SatisfactionLevel.ERROR_CORRECTION)


def test_the_llm_gets_the_least_confident_items_within_the_share():
    embedding = Fake("embedding", {f"item {i}": (NEUTRAL, 0.1 * i) for i in range(10)})
    llm = Fake("llm", {}, default=0.9)
    labels = cascade(Fake("rules", {}), embedding, llm, fraction=0.2).label(
        [candidate(f"item {i}") for i in range(10)])
    assert llm.seen == ["item 0", "item 1"]
    assert [label.labeler_id for label in labels].count("llm") == 2
    assert labels[5].reason.startswith("cascade: unsure, LLM budget spent; ")
    assert labels[9].reason == "cascade: embedding said so"  # confident: never wanted the LLM


def test_share_is_kept_across_batches():
    budget = LLMBudget(fraction=0.1, per_minute=None)
    assert [budget.grant(items=10, wanted=5) for _ in range(3)] == [1, 1, 1]
    assert budget.grant(items=5, wanted=0) == 0
    assert budget.grant(items=5, wanted=5) == 1  # 40 seen, 3 sent: one more is due


def test_rate_refills_with_time_and_caps_bursts():
    now = [0.0]
    budget = LLMBudget(fraction=None, per_minute=60, clock=lambda: now[0])
    assert budget.grant(items=100, wanted=100) == 60
    assert budget.grant(items=100, wanted=100) == 0
    now[0] += 10
    assert budget.grant(items=100, wanted=100) == 10
    now[0] += 3600
    assert budget.grant(items=100, wanted=100) == 60


@pytest.mark.parametrize("fraction, per_minute, granted", [(None, None, 7), (0.5, None, 5), (0.5, 3, 3)])
def test_both_limits_apply_together(fraction, per_minute, granted):
    assert LLMBudget(fraction, per_minute, clock=lambda: 0.0).grant(items=10, wanted=7) == granted


def test_cascade_from_settings_needs_the_llm_configured():
    with pytest.raises(TacitError, match="TACIT_LLM_URL"):
        get_labeler("cascade", TacitSettings(llm_url=None, llm_model=None))


def test_cascade_from_settings_chains_rules_calibrated_llm():
    settings = TacitSettings(llm_url="http://127.0.0.1:9/v1", llm_model="judge", cascade_threshold=0.8,
                             cascade_llm_fraction=0.05, cascade_llm_per_minute=30)
    labeler = get_labeler("cascade", settings)
    assert [c.labeler_id for c in labeler.cheap] == ["rules", "calibrated"] and labeler.llm.labeler_id == "llm"
    assert (labeler.threshold, labeler.budget.fraction, labeler.budget.per_minute) == (0.8, 0.05, 30)

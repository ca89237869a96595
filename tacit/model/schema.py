"""The scoring service's wire format, shared by the app, the scorer and the client.

The limits exist so that an oversized or malformed request is refused with a 422 that names the field,
before it reaches the tokenizer; they are generous because the scorer truncates from the left anyway and an
RLHF job must not fail on one long rollout.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from tacit.core.domain import MAX_CONTENT_CHARS, Role
from tacit.model import layouts
from tacit.model.layouts import Layout

MAX_ITEMS = 512
MAX_HISTORY_TURNS = 64

Content = Annotated[str, Field(max_length=MAX_CONTENT_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Turn(_Strict):
    role: Role
    content: Content


class ChatItem(_Strict):
    """One assistant reply to judge, in its conversation; rendered with the checkpoint's layout."""

    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    query: Content
    response: Content

    def render(self, layout: Layout) -> str:
        return layouts.render(self.history, self.query, self.response, layout)


class TextItem(_Strict):
    """A text already rendered by the caller, scored as is."""

    text: Content

    def render(self, layout: Layout) -> str:
        return self.text


def _item_kind(value: Any) -> str:
    """Pick the model by the ``text`` key, so an error names the fields of the kind the caller meant."""
    if isinstance(value, dict):
        return "text" if "text" in value else "chat"
    return "text" if isinstance(value, TextItem) else "chat"


Item = Annotated[
    Annotated[ChatItem, Tag("chat")] | Annotated[TextItem, Tag("text")],
    Discriminator(_item_kind),
]


class ScoreRequest(_Strict):
    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)


class Truncation(BaseModel):
    """How much of item ``index`` the model did not read: its oldest history turns, then leading tokens."""

    index: int
    history_turns_dropped: int = 0
    tokens_dropped: int = 0


class ScoreResponse(BaseModel):
    rewards: list[float]  # expected ordinal class, 1..K
    level_probabilities: list[list[float]]  # one row of K probabilities per item
    levels: list[int]  # the satisfaction level of each of the K classes
    model_version: int | None
    truncated: list[Truncation] = Field(default_factory=list)  # only the items that did not fit
    # One list per head, one value per item: ``satisfaction`` (the rewards) and each signal head the model
    # has (its probability, e.g. ``thumbs_up``, ``continue``).
    heads: dict[str, list[float]] = Field(default_factory=dict)


class Pair(_Strict):
    """Two replies to the same conversation, as two items."""

    a: Item
    b: Item


class CompareRequest(_Strict):
    pairs: list[Pair] = Field(min_length=1, max_length=MAX_ITEMS // 2)


class Comparison(BaseModel):
    better: Literal["a", "b"]
    probability: float  # that a user is more satisfied with ``better``, from the level probabilities
    reward_a: float
    reward_b: float


class CompareResponse(BaseModel):
    comparisons: list[Comparison]
    model_version: int | None
    truncated: list[Truncation] = Field(default_factory=list)  # index 2*i is pair i's a, 2*i+1 its b


class RewardRequest(BaseModel):
    """WildReward's ``/get_reward`` body; extra keys are ignored because OpenRLHF also sends
    ``prompts`` and ``labels``."""

    query: list[Content] = Field(min_length=1, max_length=MAX_ITEMS)


class RewardResponse(BaseModel):
    rewards: list[float]


class Rejection(BaseModel):
    version: int
    reason: str


class ModelInfo(BaseModel):
    model_version: int | None
    tenant: str | None  # whose own champion this is; None: the global model, served to every other tenant
    following_champion: bool  # False when pinned to a version or checkpoint
    last_rejected: Rejection | None
    checkpoint: str
    layout: str
    levels: list[int]
    max_length: int
    device: str
    heads: list[str] = Field(default_factory=list)  # satisfaction, then the model's signal heads
    reward_head: str = "satisfaction"  # whose output /get_reward returns (TACIT_SERVE_REWARD_HEAD)

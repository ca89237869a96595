"""Which feedback signals help: follow-up labels, reactions and their fusion, against OpenAssistant's humans.

    python bench/signals.py [--trees ../shared/data/oasst/en_100_tree.jsonl] [--labeler rules]

On the OpenAssistant trees, every assistant message may have follow-ups (the prompter's next messages),
thumbs (``+1``/``-1``, one per volunteer) and a rank among its sibling replies (0 best, by other
volunteers). Scores of each message, compared:

- follow-up: the labeler's level of its follow-ups (their mean; 3 for a message without one);
- continued: whether it has a follow-up at all (in OpenAssistant a task assignment, not the user's choice);
- thumbs: the thumbs alone (ups minus downs);
- fused: the follow-up level fused with the thumbs (``tacit.core.fusion``, default rule).

Two measures:

- ROC-AUC against each volunteer's thumb (+1 positive, -1 negative). The fused score of a message leaves
  out the thumb it is measured on (it fuses the other volunteers' thumbs only), so it is no self-prediction.
- Sibling ranks: for every two differently ranked siblings, whether the better-ranked scores higher: the
  accuracy over all pairs (a tie counts half), the agreement over the pairs where the two scores differ,
  and the share of pairs the score tells apart. Ranks are a
  separate annotation, so the fused score uses all thumbs here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from statistics import mean

from sklearn.metrics import roc_auc_score

from tacit.core.domain import SIGNAL, FeedbackCandidate, Message, Role, SignalEvent
from tacit.core.fusion import fuse
from tacit.core.settings import TacitSettings
from tacit.labels import get_labeler

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "oasst" / "en_100_tree.jsonl"
ROLES = {"prompter": Role.USER, "assistant": Role.ASSISTANT}


@dataclass
class Reply:
    """One assistant message of a tree, with what the measures need."""

    node_id: str
    parent_id: str
    rank: int | None
    thumbs: list[bool]  # one per volunteer: True for +1
    levels: list[int]  # the labeler's level of each follow-up
    tree: str = ""  # the message tree's id
    above: tuple[Message, ...] = ()  # the conversation before it, oldest first
    text: str = ""
    reactions: list[str] = field(default_factory=list)  # its other emojis, one per volunteer


def walk(node: dict, above: tuple[Message, ...] = ()) -> Iterator[tuple[dict, tuple[Message, ...]]]:
    """Every live node with the messages above it."""
    yield node, above
    here = (*above, Message(ROLES[node["role"]], node["text"], len(above)))
    for reply in node.get("replies") or []:
        if not reply.get("deleted"):
            yield from walk(reply, here)


def read_replies(path: Path, labeler_name: str) -> list[Reply]:
    replies, candidates, owners = [], [], []
    for line in path.read_text().splitlines():
        tree = json.loads(line)
        for node, above in walk(tree["prompt"]):
            if node["role"] != "assistant":
                continue
            emojis = node.get("emojis") or {}
            reactions = [name for name, count in emojis.items() if name not in ("+1", "-1")
                         and not name.startswith("_skip") for _ in range(count)]
            reply = Reply(node["message_id"], node.get("parent_id", ""), node.get("rank"),
                          [True] * emojis.get("+1", 0) + [False] * emojis.get("-1", 0), [],
                          tree["message_tree_id"], above, node["text"], reactions)
            replies.append(reply)
            response = Message(Role.ASSISTANT, node["text"], len(above))
            for followup in node.get("replies") or []:
                if not followup.get("deleted"):
                    candidates.append(FeedbackCandidate("bench", node["message_id"], None, above[:-1], above[-1],
                                                        response, Message(Role.USER, followup["text"], len(above) + 1)))
                    owners.append(reply)
    labeler = get_labeler(labeler_name, TacitSettings())
    for owner, label in zip(owners, labeler.label(candidates), strict=True):
        owner.levels.append(int(label.level))
    return replies


def thumbs(up: list[bool]) -> list[SignalEvent]:
    return [SIGNAL.validate_python({"tenant": "bench", "conversation_id": "c", "message_turn": 1,
                                    "signal": "thumbs", "up": value}) for value in up]


def followup_score(reply: Reply) -> float:
    return mean(reply.levels) if reply.levels else 3.0


def fused_score(reply: Reply, up: list[bool]) -> float:
    levels = reply.levels or [3]
    return mean(fuse(level, thumbs(up)).level for level in levels)


SCORES = {
    "follow-up": lambda reply, up: followup_score(reply),
    "continued": lambda reply, up: float(bool(reply.levels)),
    "thumbs": lambda reply, up: float(sum(1 if value else -1 for value in up)),
    "fused": fused_score,
}


Score = Callable[[Reply, list[bool]], float]  # a message and the thumbs it may use -> its score


def auc_against_thumbs(replies: list[Reply], scores: Mapping[str, Score] = SCORES) -> dict[str, float]:
    """Each score's ROC-AUC on every volunteer's thumb, the scored message fused without that thumb."""
    targets = [target for reply in replies for target in reply.thumbs]
    return {name: roc_auc_score(targets, [score(reply, reply.thumbs[:i] + reply.thumbs[i + 1:])
                                          for reply in replies for i in range(len(reply.thumbs))])
            for name, score in scores.items()}


def rank_agreement(replies: list[Reply],
                   scores: Mapping[str, Score] = SCORES) -> dict[str, tuple[float, float, float, int]]:
    """Per score: (accuracy, agreement where it separates the siblings, share it separates, pairs)."""
    siblings: dict[str, list[Reply]] = {}
    for reply in replies:
        if reply.rank is not None:
            siblings.setdefault(reply.parent_id, []).append(reply)
    pairs = [sorted(pair, key=lambda r: r.rank) for group in siblings.values() for pair in combinations(group, 2)
             if pair[0].rank != pair[1].rank]
    result = {}
    for name, score in scores.items():
        gaps = [score(better, better.thumbs) - score(worse, worse.thumbs) for better, worse in pairs]
        separated = [gap for gap in gaps if gap]
        agree = sum(gap > 0 for gap in separated) / len(separated) if separated else float("nan")
        share = len(separated) / len(pairs)
        result[name] = (agree * share + 0.5 * (1 - share), agree, share, len(pairs))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=Path, default=DEFAULT)
    parser.add_argument("--labeler", default="rules")
    args = parser.parse_args()
    replies = read_replies(args.trees, args.labeler)
    print(f"labeler {args.labeler}")
    report("every assistant message", replies)
    report("messages with a follow-up (what training reads)", [reply for reply in replies if reply.levels])


def report(title: str, replies: list[Reply]) -> None:
    with_thumbs = [reply for reply in replies if reply.thumbs]
    votes = sum(len(reply.thumbs) for reply in replies)
    print(f"\n== {title}: {len(replies)}, {sum(bool(r.levels) for r in replies)} with follow-ups, "
          f"{len(with_thumbs)} with thumbs ({votes} thumbs, {sum(sum(r.thumbs) for r in replies)} up)")
    print("ROC-AUC against each volunteer's thumb (fused: the other volunteers' thumbs only)")
    for name, auc in auc_against_thumbs(with_thumbs).items():
        print(f"  {name:10s} {auc:.3f}")
    print("sibling ranks: accuracy (ties half) | agreement where separated | share separated | pairs")
    for name, (accuracy, agree, separated, pairs) in rank_agreement(replies).items():
        print(f"  {name:10s} {accuracy:.3f} | {agree:.3f} | {separated:.3f} | {pairs}")


if __name__ == "__main__":
    main()

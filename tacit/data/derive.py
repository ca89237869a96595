"""Rebuild the bundled sample from the public data sets (run once by maintainers, not at run time).

    python -m tacit.data.derive ../shared/data

Writes, next to this file:
- ``sample_conversations.jsonl.gz``: multi-turn HH-RLHF transcripts (the *chosen* side; MIT) and the
  preferred path of each OpenAssistant tree (Apache-2.0), one conversation per line in Tacit's JSONL format
  ``{"conversation_id", "user_id", "source", "messages": [{"role", "content"}]}``. Neither set names its
  users, so each conversation stands for its own user.
- ``heldout_pairs.jsonl.gz``: HH-RLHF helpful-base preference pairs, unchanged, none of whose transcripts
  are in the sample: the demo scores them to report pairwise accuracy without leakage.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from tacit.readers.transcripts import parse_hh_transcript

HERE = Path(__file__).parent
HH_SUBSETS = ("helpful-base", "helpful-online", "helpful-rejection-sampled", "harmless-base")
HELDOUT_SUBSET = "helpful-base"
HELDOUT_PAIRS = 500
SEED = 0


def _read_hh(root: Path, subset: str) -> list[dict[str, str]]:
    with gzip.open(root / "hh-rlhf" / f"{subset}_test.jsonl.gz", "rt") as lines:
        return [json.loads(line) for line in lines]


def _oasst_path(node: dict) -> Iterator[dict[str, str]]:
    """The preferred path through a tree: best-ranked assistant reply, first user reply."""
    while node:
        role = "user" if node["role"] == "prompter" else "assistant"
        yield {"role": role, "content": node["text"].strip()}
        replies = [r for r in node.get("replies", []) if not r.get("deleted")]
        if not replies:
            return
        node = min(replies, key=lambda r: (r.get("rank") is None, r.get("rank") or 0))


def derive(shared_data: Path) -> None:
    rng = random.Random(SEED)
    heldout_rows = _read_hh(shared_data, HELDOUT_SUBSET)
    heldout_index = set(rng.sample(range(len(heldout_rows)), HELDOUT_PAIRS))
    heldout_chosen = {heldout_rows[i]["chosen"] for i in heldout_index}

    conversations = []
    for subset in HH_SUBSETS:
        for index, row in enumerate(_read_hh(shared_data, subset)):
            transcript = parse_hh_transcript(row["chosen"])
            messages = [{"role": m.role.value, "content": m.content} for m in transcript]
            if row["chosen"] in heldout_chosen or sum(m["role"] == "user" for m in messages) < 2:
                continue
            conversation_id = f"hh-{subset}-{index}"
            conversations.append({"conversation_id": conversation_id, "user_id": conversation_id,
                                  "source": f"hh-rlhf/{subset}", "messages": messages})
    with open(shared_data / "oasst" / "en_100_tree.jsonl") as lines:
        for line in lines:
            tree = json.loads(line)
            conversation_id = f"oasst-{tree['message_tree_id']}"
            conversations.append({"conversation_id": conversation_id, "user_id": conversation_id,
                                  "source": "oasst/en_100_tree", "messages": list(_oasst_path(tree["prompt"]))})
    rng.shuffle(conversations)

    with gzip.open(HERE / "sample_conversations.jsonl.gz", "wt", compresslevel=9) as out:
        for conversation in conversations:
            out.write(json.dumps(conversation, ensure_ascii=False) + "\n")
    with gzip.open(HERE / "heldout_pairs.jsonl.gz", "wt", compresslevel=9) as out:
        for i in sorted(heldout_index):
            out.write(json.dumps(heldout_rows[i], ensure_ascii=False) + "\n")
    print(f"{len(conversations)} conversations, {len(heldout_index)} held-out pairs written to {HERE}")


if __name__ == "__main__":
    derive(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))

"""The HH-RLHF transcript format, read by the bundled-data derivation, evaluation and ``tacit replay``.

One parser for all three, so a transcript always splits into the same messages wherever it is read.
"""

from __future__ import annotations

import re

from tacit.core.domain import Message, Role

_TURN = re.compile(r"\n\n(Human|Assistant): ")
_ROLES = {"Human": Role.USER, "Assistant": Role.ASSISTANT}


def parse_hh_transcript(text: str) -> list[Message]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b"`` -> its messages, oldest first.

    Text before the first turn (none in HH-RLHF) is dropped.
    """
    parts = _TURN.split(text)  # [preamble, role, content, role, content, ...]
    return [
        Message(_ROLES[role], content.strip(), turn)
        for turn, (role, content) in enumerate(zip(parts[1::2], parts[2::2]))
    ]

"""Data that ships inside the package: derived samples of MIT/Apache datasets (attribution in NOTICE)."""

from pathlib import Path

HERE = Path(__file__).parent
SAMPLE_CONVERSATIONS = HERE / "sample_conversations.jsonl.gz"  # multi-turn HH-RLHF and OASST chats, the demo's logs
HELDOUT_PAIRS = HERE / "heldout_pairs.jsonl.gz"  # HH-RLHF preference pairs kept out of the sample

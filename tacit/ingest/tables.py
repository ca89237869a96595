"""The worker's Faust table: the recent window of each conversation, as JSON, keyed like the events."""

from __future__ import annotations

import faust

from tacit.core.settings import TacitSettings


def conversation_windows(app: faust.App, settings: TacitSettings) -> faust.Table:
    """Co-partitioned with the chat-events topic, so each worker holds the windows of its own partitions;
    the state lives in the changelog topic and is rebuilt from it after a rebalance or restart."""
    return app.Table("conversations", default=None, partitions=settings.partitions)

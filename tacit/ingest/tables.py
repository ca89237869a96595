"""The worker's Faust table: the recent window of each conversation, as JSON, keyed like the events."""

from __future__ import annotations

from typing import Any

import faust

from tacit.core.conversations import ConversationWindow
from tacit.core.settings import TacitSettings


def conversation_windows(app: faust.App, settings: TacitSettings) -> faust.Table:
    """Co-partitioned with the chat-events topic, so each worker holds the windows of its own partitions;
    the state lives in the changelog topic and is rebuilt from it after a rebalance or restart."""
    return app.Table("conversations", default=None, partitions=settings.partitions)


class Windows:
    """The conversation windows, changed in memory per event and written to the table once per batch.

    A table write is a changelog record of the whole window (kilobytes, encoded by Faust's codec and sent
    by aiokafka), and one per event was a quarter of the event loop's time; a conversation has several
    events in most batches. Nothing is lost by the wait: the windows are written when a batch is taken,
    before it is stored, and Faust flushes them before it commits the batch's offsets; the windows of
    records not yet in a taken batch are dropped on a rebalance, and those records are read again.
    """

    def __init__(self, table: faust.Table) -> None:
        self.table = table
        self._changed: dict[str, tuple[int, ConversationWindow]] = {}  # key -> (partition, window)

    def get(self, key: str) -> ConversationWindow:
        changed = self._changed.get(key)
        return changed[1] if changed else ConversationWindow.from_json(self.table.get(key))

    def set(self, key: str, partition: int, window: ConversationWindow) -> None:
        self._changed[key] = (partition, window)

    def write(self) -> None:
        """Each changed window to the table, and to the changelog partition of its events."""
        for key, (partition, window) in self._changed.items():
            value = window.to_json()
            self.table.data[key] = value
            self.table.send_changelog(partition, key, value)
        self._changed.clear()

    def forget(self, *_: Any, **__: Any) -> None:
        """Drop the unwritten windows: a receiver of the app's partitions-revoked signal."""
        self._changed.clear()

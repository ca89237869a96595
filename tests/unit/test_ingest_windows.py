"""The conversation windows are written to the table once per conversation and batch, to the partition of
their events, and windows not yet written are dropped when partitions are revoked."""

from types import SimpleNamespace

from tacit.core.conversations import ConversationWindow
from tacit.core.domain import Message, Role
from tacit.ingest.tables import Windows


class FakeTable(dict):
    """A Faust table's ``get``, ``data`` and ``send_changelog``; the changelog records it was sent."""

    def __init__(self, **stored: dict) -> None:
        super().__init__(stored)
        self.data = self
        self.changelog: list[tuple[int, str, dict]] = []

    def send_changelog(self, partition: int, key: str, value: dict) -> SimpleNamespace:
        self.changelog.append((partition, key, value))
        return SimpleNamespace()


def window(*turns: int) -> ConversationWindow:
    return ConversationWindow(tuple(Message(Role.USER, f"m{turn}", turn) for turn in turns), user_id="u")


def test_a_window_changed_by_several_events_is_written_once_to_its_partition():
    table = FakeTable(**{"t:c1": window(0).to_json()})
    windows = Windows(table)
    assert windows.get("t:c1") == window(0)
    windows.set("t:c1", 1, window(0, 1))
    windows.set("t:c1", 1, window(0, 1, 2))
    windows.set("t:c2", 0, window(0))
    assert windows.get("t:c1") == window(0, 1, 2) and table["t:c1"] == window(0).to_json()
    windows.write()
    assert table.changelog == [(1, "t:c1", window(0, 1, 2).to_json()), (0, "t:c2", window(0).to_json())]
    assert table["t:c1"] == window(0, 1, 2).to_json()
    windows.write()  # nothing changed since
    assert len(table.changelog) == 2


def test_windows_not_yet_written_are_dropped_on_revocation():
    table = FakeTable()
    windows = Windows(table)
    windows.set("t:c1", 0, window(0))
    windows.forget(object(), revoked={("chat-events", 0)})
    windows.write()
    assert table.changelog == [] and windows.get("t:c1") == ConversationWindow()

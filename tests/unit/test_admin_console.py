"""The admin layer's own bookkeeping: recent disconnects, configuration display, the registry hook."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ocpp_gw.admin.api import RecentDisconnects, _config_text
from ocpp_gw.chargers.registry import Registry


class FakeHistory:
    def __init__(self, entries):
        self._entries = entries

    def entries(self):
        return [dict(entry) for entry in self._entries]


def fake_session(cid: str, reason: str | None = "kicked", code: int = 1000, history=()):
    closed = SimpleNamespace(reason=reason, code=code) if reason is not None else None
    return SimpleNamespace(cid=cid, closed=closed, history=FakeHistory(list(history)),
                           describe=lambda: {"cid": cid, "peer": "192.0.2.1:5000", "connected_at": 1.0})


def test_a_disconnect_is_recorded_with_reason_close_code_and_history_without_payloads():
    recent = RecentDisconnects()
    recent.record(fake_session("CP1", history=[{"action": "BootNotification", "payload": {"idTag": "X"}}]))
    (listed,) = recent.listing()
    assert listed["cid"] == "CP1" and listed["reason"] == "kicked" and listed["close_code"] == 1000
    assert "history" not in listed and listed["disconnected_at"] > 0
    assert recent.get("CP1")["history"] == [{"action": "BootNotification", "payload": None}]


def test_a_session_that_ended_without_a_close_is_recorded_as_ended():
    recent = RecentDisconnects()
    recent.record(fake_session("CP1", reason=None))
    assert recent.get("CP1")["reason"] == "ended" and recent.get("CP1")["close_code"] is None


def test_disconnects_are_listed_newest_first_one_per_charge_point_and_bounded():
    recent = RecentDisconnects(limit=3)
    for cid in ("A", "B", "C", "A", "D"):
        recent.record(fake_session(cid, reason=f"gone {cid}"))
    assert [entry["cid"] for entry in recent.listing()] == ["D", "A", "C"]
    assert recent.get("B") is None


def test_a_session_that_cannot_be_described_is_skipped_without_raising():
    recent = RecentDisconnects()
    broken = SimpleNamespace(cid="CP1", closed=None, history=None, describe=lambda: {})
    recent.record(broken)
    assert recent.listing() == []


def test_the_registry_tells_every_disconnect_listener_even_for_a_replaced_session():
    registry = Registry()
    seen = []
    registry.on_disconnect.append(seen.append)
    old, new = SimpleNamespace(cid="CP1"), SimpleNamespace(cid="CP1")
    registry.register(old)
    registry.register(new)
    assert registry.unregister(old) is False  # replaced: the cid stays connected
    assert registry.unregister(new) is True
    assert seen == [old, new]


@pytest.mark.parametrize("value, text", [
    (None, ""), (True, "true"), (False, "false"), (("127.0.0.1", 33080), "127.0.0.1:33080"),
    (("::1", 33080), "[::1]:33080"), (30.0, "30"), (1.5, "1.5"), (65536, "65536"), ("cp/${cid}", "cp/${cid}"),
    ("******", "******"),
])
def test_configuration_values_are_shown_as_written_in_the_file(value, text):
    assert _config_text(value) == text

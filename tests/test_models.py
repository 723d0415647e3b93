"""The models' own helpers: what the glue asks of an extension, a live call or an event."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import timedelta
import logging

import pytest

from custom_components.smartpbx.pbx.models import (
    CallDirection,
    CallStatusEvent,
    DeviceInfo,
    Extension,
    ExtensionState,
    ExtensionStatusEvent,
    ExtensionType,
    HangupEvent,
    LiveCall,
    SystemSnapshot,
    calls_of_extension,
)

CALL = LiveCall(
    callid="c1",
    caller="8001",
    source="PJSIP/8001-0000001a",
    called="8002",
    destination="PJSIP/8002-0000001b",
    duration=timedelta(seconds=30),
    state="Up",
    direction="Internal",
    recording="",
)
OTHER = replace(CALL, callid="c2", caller="8003", source="PJSIP/8003-1", called="0301234")


def test_a_status_event_changes_only_the_state_of_an_extension() -> None:
    """with_state spells out Extension's fields (it runs for every status event): a field
    added to Extension must be added there too, or status events would drop it."""
    extension = Extension(
        number="2001",
        type=ExtensionType.FXS,
        name="Front desk",
        state=ExtensionState.IDLE,
        state_raw="Idle",
        port="3",
        raw={"number": "2001"},
    )
    event = ExtensionStatusEvent(
        extension="2001", state=ExtensionState.IN_USE, state_raw="InUse", ip_address="10.0.0.9"
    )
    updated = extension.with_state(event)
    assert updated == replace(extension, state=ExtensionState.IN_USE, state_raw="InUse")
    assert updated.raw is extension.raw
    assert {f.name for f in fields(Extension)} == {
        "number",
        "type",
        "name",
        "state",
        "state_raw",
        "port",
        "raw",
    }


def test_a_status_event_applied_to_a_snapshot(caplog: pytest.LogCaptureFixture) -> None:
    """apply patches the extension in place and returns it as it was; None when nothing
    changed: the same state again, or an extension the snapshot does not list."""
    idle = Extension("8001", ExtensionType.SIP, "Tom", ExtensionState.IDLE, "Idle")
    snapshot = SystemSnapshot(DeviceInfo("PBX", "SN1", "1.0", None, None), {"8001": idle}, {})
    ringing = ExtensionStatusEvent("8001", ExtensionState.RINGING, "Ringing")

    assert snapshot.apply(ringing) is idle
    assert snapshot.extensions["8001"] == idle.with_state(ringing)
    assert snapshot.apply(ringing) is None
    with caplog.at_level(logging.DEBUG, logger="custom_components.smartpbx.pbx.models"):
        assert snapshot.apply(replace(ringing, extension="8009")) is None
    assert "unlisted extension 8009" in caplog.text
    assert list(snapshot.extensions) == ["8001"]


def test_the_calls_of_an_extension_and_its_peer() -> None:
    assert calls_of_extension([CALL, OTHER], "8002") == [CALL]
    assert calls_of_extension([CALL, OTHER], "8003") == [OTHER]
    assert calls_of_extension([CALL, OTHER], "8009") == []
    assert CALL.peer_of("8001") == "8002"
    assert CALL.peer_of("8002") == "8001"


def test_a_live_call_as_attributes_with_the_parties_names() -> None:
    """Only the called party of an outbound call is named as a dialled number (it may carry
    the outside-line prefix); the duration is in whole seconds."""
    asked: list[tuple[str | None, bool]] = []

    def name(number: str | None, *, dialled: bool = False) -> str | None:
        asked.append((number, dialled))
        return f"name of {number}"

    assert CALL.attributes(name) == {
        "caller": "8001",
        "caller_name": "name of 8001",
        "called": "8002",
        "called_name": "name of 8002",
        "state": "Up",
        "duration": 30,
        "direction": "Internal",
    }
    assert asked == [("8001", False), ("8002", False)]
    outbound = replace(OTHER, direction_kind=CallDirection.OUTBOUND, duration=None)
    asked.clear()
    assert outbound.attributes(name)["duration"] is None
    assert asked == [("8003", False), ("0301234", True)]


def test_a_hangup_names_a_call_by_id_or_by_one_of_its_channels() -> None:
    def hangup(callid: str | None, channel: str | None) -> HangupEvent:
        return HangupEvent(event="hangup", callid=callid, channel=channel)

    assert hangup("c1", None).ends(CALL)
    assert hangup(None, "PJSIP/8001-0000001a").ends(CALL)
    assert hangup(None, "PJSIP/8002-0000001b").ends(CALL)
    assert not hangup("c2", "PJSIP/8003-1").ends(CALL)
    assert not hangup(None, None).ends(CALL)


def test_a_callstatus_event_keeps_what_the_last_poll_knew_of_its_calls() -> None:
    """Its entries carry no channels or durations: a known call keeps them, takes the new
    state; a new one is taken as the event says; one the event does not name is gone."""
    bare_new = replace(OTHER, callid="c3", source="", destination="", duration=None)
    event = CallStatusEvent(
        event="callstatus", calls=(replace(CALL, source="", duration=None, state="Ring"), bare_new)
    )
    assert event.merged_with([CALL, OTHER]) == (replace(CALL, state="Ring"), bare_new)
    assert event.merged_with(()) == event.calls


@pytest.mark.parametrize(
    ("name", "own_name"),
    [("Tom", "Tom"), (" Tom ", "Tom"), ("", None), ("   ", None), ("2005", None), (" 2005 ", None)],
)
def test_an_extensions_own_name_is_neither_blank_nor_its_number(
    name: str, own_name: str | None
) -> None:
    extension = Extension(
        number="2005",
        type=ExtensionType.SIP,
        name=name,
        state=ExtensionState.IDLE,
        state_raw="Idle",
    )
    assert extension.own_name == own_name

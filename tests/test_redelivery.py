"""The library's redelivery filter and event hub on their own: identities, the keypress
window, bounds, start-up replay."""

from __future__ import annotations

from datetime import datetime

from custom_components.smartpbx.pbx.models import (
    CallDisposition,
    CallRecord,
    ExtensionState,
    ExtensionStatusEvent,
    IvrDtmfEvent,
    PbxEvent,
)
from custom_components.smartpbx.pbx.redelivery import EventHub, RedeliveryFilter


def _record(callid: str | None, dst: str = "8002", billsec: int = 5) -> CallRecord:
    return CallRecord(
        callid=callid,
        src="8001",
        src_channel="PJSIP/8001-1",
        dst=dst,
        dst_channel=f"PJSIP/{dst}-2",
        start=datetime(2026, 12, 3, 8, 0, 0),
        end=datetime(2026, 12, 3, 8, 0, 5),
        billsec=billsec,
        disposition=CallDisposition.ANSWERED,
        disposition_raw="ANSWERED",
        direction="Internal",
        dtmf="",
        record_file="",
    )


def test_call_records_by_identity_bounded_and_restorable() -> None:
    seen = RedeliveryFilter(max_records=2)
    assert not seen.is_redelivery(_record("1.1"))
    assert seen.is_redelivery(_record("1.1"))
    assert not seen.is_redelivery(_record("1.1", dst="6666"))  # another leg of the call
    assert not seen.is_redelivery(_record(None))
    assert not seen.is_redelivery(_record(None))  # no call id: never a redelivery
    assert not seen.is_redelivery(_record("1.2"))  # the oldest identity goes
    assert len(seen.seen_records()) == 2
    assert not seen.is_redelivery(_record("1.1"))

    restored = RedeliveryFilter(seen.seen_records())
    assert restored.is_redelivery(_record("1.2"))


def test_the_same_keypress_is_a_redelivery_only_within_the_window() -> None:
    now = [0.0]
    seen = RedeliveryFilter(window=60.0, clock=lambda: now[0])
    press = IvrDtmfEvent(ivr="9000", caller="8003", dtmf="1", callid="1.2")
    assert not seen.is_redelivery(press)
    now[0] = 59.0
    assert seen.is_redelivery(press)
    assert not seen.is_redelivery(IvrDtmfEvent(ivr="9000", caller="8003", dtmf="2", callid="1.2"))
    now[0] = 61.0
    assert not seen.is_redelivery(press)  # pressed again, a minute later
    status = ExtensionStatusEvent(extension="8001", state=ExtensionState.IDLE, state_raw="Idle")
    assert not seen.is_redelivery(status)
    assert not seen.is_redelivery(status)


def test_event_hub_drops_redeliveries_and_replays_start_up_to_late_consumers() -> None:
    saves: list[None] = []
    hub = EventHub([], on_call_record=lambda: saves.append(None))
    early: list[PbxEvent] = []
    hub.add_consumer(early.append)
    press = IvrDtmfEvent(ivr="9000", caller="8003", dtmf="1", callid="1.2")
    for event in (_record("1.1"), press, _record("1.1"), press):
        hub.handle(event)
    assert early == [_record("1.1"), press]
    assert (hub.redeliveries, len(saves)) == (2, 1)
    restored = EventHub(hub.seen_records())
    restored.handle(_record("1.1"))
    assert restored.redeliveries == 1

    late: list[PbxEvent] = []
    remove = hub.add_consumer(late.append)
    assert late == early  # what it missed during start-up, in order
    hub.started()
    hub.handle(_record("1.3"))
    assert late[-1] == early[-1] == _record("1.3")
    remove()
    remove()  # twice is harmless
    hub.handle(_record("1.4"))
    assert late[-1] == _record("1.3")
    after: list[PbxEvent] = []
    hub.add_consumer(after.append)
    assert after == []  # start-up is over: nothing replayed

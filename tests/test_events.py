"""PBX events on Home Assistant's bus, from the simulator through a real broker."""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from types import SimpleNamespace
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, MATCH_ALL
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smartpbx.const import (
    EVENT_CDR,
    EVENT_INVITE,
    EVENT_IVR_DTMF,
    EVENT_UNKNOWN,
)
from custom_components.smartpbx.events import async_setup_events
from custom_components.smartpbx.identifiers import child_identifier, pbx_identifier
from custom_components.smartpbx.pbx.models import IvrDtmfEvent, PbxEvent
from smartpbx_sim.runner import SimulatorRunner

from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    entity_id_of,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
    wait_for,
)

type Pbx = tuple[MockConfigEntry, SimulatorRunner]
OTHER_PBX = dataclasses.replace(
    SMALL_PBX, token="branch-token", serial="XR99999999999999", devicename="Branch PBX"
)


@pytest.fixture
async def pbx(smartpbx: SmartPbxFactory) -> Pbx:
    return await smartpbx()


def pbx_device_id(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        pbx_identifier(runtime(entry).serial), entry.entry_id
    )
    assert device is not None
    return device.id


def extension_device_id(hass: HomeAssistant, entry: MockConfigEntry, number: str) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        child_identifier(runtime(entry).serial, "extension", number), entry.entry_id
    )
    assert device is not None
    return device.id


async def next_events(events: list[Event[Any]], count: int = 1, limit: float = 5.0) -> None:
    await wait_for(lambda: len(events) >= count, limit)


async def test_invite_from_outside(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    events = async_capture_events(hass, EVENT_INVITE)
    callid = runner.incoming_call("0612345678", "2001")
    await next_events(events)
    assert events[0].data == {
        "config_entry_id": entry.entry_id,
        "device_id": pbx_device_id(hass, entry),
        "extension_device_id": extension_device_id(hass, entry, "2001"),
        "from": "0612345678",
        "to": "2001",
        "callid": callid,
        "from_name": None,
        "to_name": "Lobby",
    }


async def test_invite_between_extensions_names_both(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    events = async_capture_events(hass, EVENT_INVITE)
    runner.pbx.add_extension("8004", username="Zoe")
    await runtime(entry).system.async_refresh()
    runner.place_call("8004", "2001")
    await next_events(events)
    data = events[0].data
    assert (data["from"], data["from_name"], data["to"], data["to_name"]) == (
        "8004",
        "Zoe",
        "2001",
        "Lobby",
    )
    # The called party is the extension the call pops up on.
    assert data["extension_device_id"] == extension_device_id(hass, entry, "2001")


async def test_ivr_keypress(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    events = async_capture_events(hass, EVENT_IVR_DTMF)
    callid = runner.ivr_keypress("9000", "2001", "5")
    await next_events(events)
    assert events[0].data == {
        "config_entry_id": entry.entry_id,
        "device_id": pbx_device_id(hass, entry),
        "extension_device_id": extension_device_id(hass, entry, "2001"),
        "ivr": "9000",
        "caller": "2001",
        "caller_name": "Lobby",
        "dtmf": "5",
        "callid": callid,
    }


async def test_cdr_is_normalised(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    events = async_capture_events(hass, EVENT_CDR)
    sent = runner.emit_cdr(
        "8001", "2001", disposition="NO ANSWER", billsec=0, direction="Internal", dtmf="12"
    )
    await next_events(events)
    start, end = str(sent["start"]), str(sent["end"])
    assert events[0].data == {
        "config_entry_id": entry.entry_id,
        "device_id": pbx_device_id(hass, entry),
        "extension_device_id": extension_device_id(hass, entry, "2001"),
        "callid": sent["callid"],
        "src": "8001",
        "src_name": None,
        "src_channel": sent["srctech"],
        "dst": "2001",
        "dst_name": "Lobby",
        "dst_channel": sent["dsttech"],
        "start": start.replace(" ", "T"),
        "end": end.replace(" ", "T"),
        "billsec": 0,
        "disposition": "no_answer",
        "disposition_raw": "NO ANSWER",
        "direction": "Internal",
        "dtmf": "12",
        "record_file": "",
    }


async def test_cdr_of_outside_numbers_has_no_extension_device(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    _, runner = pbx
    events = async_capture_events(hass, EVENT_CDR)
    runner.emit_cdr(
        "0612345678", "+4930123456", disposition="ANSWERED", billsec=42, direction="Outbound"
    )
    await next_events(events)
    data = events[0].data
    assert data["extension_device_id"] is None
    assert (data["disposition"], data["billsec"]) == ("answered", 42)


async def test_extension_status_changes_are_sensor_history_not_bus_events(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    """A status change writes the status sensor (its history and logbook carry it); no
    bus event duplicates it (smartpbx_extension_status is gone)."""
    entry, runner = pbx
    fired: list[Event] = []
    unsubscribe = hass.bus.async_listen(MATCH_ALL, fired.append)
    status = entity_id_of(hass, "sensor", f"{runtime(entry).serial}_extension_8001_status")
    runner.set_extension_status("8001", "InUse")
    await wait_for(lambda: hass.states.get(status).state == "in_use")
    unsubscribe()
    assert not [event for event in fired if event.event_type.startswith("smartpbx_")]


async def test_unknown_events_are_refired_whole(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    events = async_capture_events(hass, EVENT_UNKNOWN)
    payload: dict[str, object] = {"event": "dnd_changed", "extension": "8001", "dnd": {"on": True}}
    runner.pbx.emit_event(payload)
    runner.pbx.publish_raw("status", b'{"online": "yes"}')
    await next_events(events, 2)
    assert events[0].data == {
        "config_entry_id": entry.entry_id,
        "device_id": pbx_device_id(hass, entry),
        "event": "dnd_changed",
        "payload": payload,
    }
    assert events[1].data["event"] == "status"
    assert events[1].data["payload"] == {"online": "yes"}


async def test_a_burst_of_1000_events_arrives_whole_and_in_order(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    # The PBX keeps every message it published, to compare with what arrived.
    entry, runner = await smartpbx(sim_config=dataclasses.replace(SMALL_PBX, history_size=5000))
    serial = runtime(entry).serial
    status_sensors = {
        entity_id_of(hass, "sensor", f"{serial}_extension_{number}_status"): number
        for number in runner.pbx.extensions
    }
    last = {number: ext.state_raw for number, ext in runtime(entry).system.data.extensions.items()}
    changes: list[tuple[str, str]] = []

    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        if (number := status_sensors.get(event.data["entity_id"])) is not None:
            new_state = event.data["new_state"]
            assert new_state is not None
            changes.append((number, new_state.attributes["pbx_status"]))

    unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    assert runner.burst_extension_status(1000) == 1000
    published = [message.json() for message in runner.pbx.iter_history("event")][-1000:]
    # Every change the PBX published reaches its sensor, in order (a repeat is no change).
    expected: list[tuple[str, str]] = []
    for message in published:
        number, raw = message["extension"], message["status"]
        if last[number] != raw:
            expected.append((number, raw))
            last[number] = raw
    await wait_for(lambda: len(changes) >= len(expected), limit=60)
    assert changes == expected
    # Nothing more trickles in, and the extensions end where the PBX says they are.
    await runner.wait_drained()
    unsubscribe()
    assert changes == expected
    extensions = runtime(entry).system.data.extensions
    for number in runner.pbx.extensions:
        assert extensions[number].state_raw == str(runner.pbx.extension_status(number))


async def test_events_stop_when_the_entry_unloads(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    events = async_capture_events(hass, EVENT_IVR_DTMF)
    runner.ivr_keypress("9000", "8001", "1")
    await next_events(events)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    runner.ivr_keypress("9000", "8001", "2")
    await runner.wait_drained()
    await hass.async_block_till_done()
    assert [event.data["dtmf"] for event in events] == ["1"]


async def test_each_pbx_signs_its_own_events(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    main, main_runner = await smartpbx()
    branch, branch_runner = await smartpbx(sim_config=OTHER_PBX)
    events = async_capture_events(hass, EVENT_IVR_DTMF)
    main_runner.ivr_keypress("9000", "8001", "1")
    await next_events(events, 1)
    branch_runner.ivr_keypress("9000", "8001", "2")
    await next_events(events, 2)
    by_key = {event.data["dtmf"]: event.data for event in events}
    assert by_key["1"]["config_entry_id"] == main.entry_id
    assert by_key["1"]["device_id"] == pbx_device_id(hass, main)
    assert by_key["2"]["config_entry_id"] == branch.entry_id
    assert by_key["2"]["device_id"] == pbx_device_id(hass, branch)
    assert by_key["2"]["extension_device_id"] == extension_device_id(hass, branch, "8001")


async def test_events_fire_synchronously_in_the_client_listener(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    """The bus event exists when the event ingress's consumer returns: no task, no
    reordering."""
    entry, _ = pbx
    listeners: list[Callable[[PbxEvent], None]] = []

    def add_consumer(listener: Callable[[PbxEvent], None]) -> Callable[[], None]:
        listeners.append(listener)
        return lambda: listeners.remove(listener)

    ingress = SimpleNamespace(add_consumer=add_consumer)
    stand_in = SimpleNamespace(
        entry_id=entry.entry_id, runtime_data=dataclasses.replace(runtime(entry), events=ingress)
    )
    unsubscribe = async_setup_events(hass, stand_in)  # type: ignore[arg-type]
    events = async_capture_events(hass, EVENT_IVR_DTMF)
    (listener,) = listeners
    for key in "123":
        listener(IvrDtmfEvent(ivr="9000", caller="8001", dtmf=key, callid=None))
    # No await since: everything was fired from inside the listener, in order.
    assert [event.data["dtmf"] for event in events] == ["1", "2", "3"]
    unsubscribe()
    assert listeners == []

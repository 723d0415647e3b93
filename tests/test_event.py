"""Event entities: incoming calls, IVR keypresses and ended calls."""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.components.event import ATTR_EVENT_TYPE, ATTR_EVENT_TYPES
from homeassistant.const import ATTR_FRIENDLY_NAME, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smartpbx.const import DOMAIN, EVENT_CDR, EVENT_IVR_DTMF
from custom_components.smartpbx.event import (
    CALL_ENDED_EVENT_TYPES,
    DTMF_EVENT_TYPES,
    EXTENSION_INCOMING_CALL,
    PBX_EVENT_DESCRIPTIONS,
)
from custom_components.smartpbx.identifiers import child_identifier, pbx_identifier
from smartpbx_sim.runner import SimulatorRunner

from .actions_helpers import load_json
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
SERIAL = SMALL_PBX.serial


@pytest.fixture
async def pbx(smartpbx: SmartPbxFactory) -> Pbx:
    return await smartpbx()


def event_entity(hass: HomeAssistant, unique_id: str) -> str:
    return entity_id_of(hass, "event", unique_id)


def state_of(hass: HomeAssistant, entity_id: str) -> State:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


async def next_state(hass: HomeAssistant, entity_id: str, previous: str | None) -> State:
    """Wait until the entity records an event after ``previous`` (its last timestamp)."""
    await wait_for(lambda: state_of(hass, entity_id).state not in (previous, STATE_UNKNOWN))
    return state_of(hass, entity_id)


def state_changes(hass: HomeAssistant, entity_id: str) -> list[State]:
    """Every new state ``entity_id`` gets from now on."""
    changes: list[State] = []

    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        if (new_state := event.data["new_state"]) is not None:
            changes.append(new_state)

    async_track_state_change_event(hass, entity_id, record)
    return changes


def event_attributes(state: State) -> dict[str, Any]:
    return {
        key: value
        for key, value in state.attributes.items()
        if key not in (ATTR_EVENT_TYPES, ATTR_FRIENDLY_NAME, "icon")
    }


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_entities_on_the_pbx_and_every_extension(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    events = {e.unique_id: e for e in entities if e.domain == "event"}
    expected = {f"{SERIAL}_{key}" for key in ("incoming_call", "ivr_keypress", "call_ended")} | {
        f"{SERIAL}_extension_{number}_incoming_call" for number in runner.pbx.extensions
    }
    assert set(events) == expected

    devices = dr.async_get(hass)
    pbx_device = devices.async_get_device_by_identifier(pbx_identifier(SERIAL), entry.entry_id)
    lobby = devices.async_get_device_by_identifier(
        child_identifier(SERIAL, "extension", "2001"), entry.entry_id
    )
    assert pbx_device is not None
    assert lobby is not None
    assert events[f"{SERIAL}_ivr_keypress"].device_id == pbx_device.id
    assert events[f"{SERIAL}_extension_2001_incoming_call"].device_id == lobby.id

    translations = load_json("translations/en.json")["entity"]["event"]
    ivr = state_of(hass, event_entity(hass, f"{SERIAL}_ivr_keypress"))
    assert ivr.state == STATE_UNKNOWN
    assert ivr.attributes[ATTR_FRIENDLY_NAME] == (
        f"{SMALL_PBX.devicename} {translations['ivr_keypress']['name']}"
    )
    assert ivr.attributes[ATTR_EVENT_TYPES] == [*"0123456789", "star", "hash"]
    ended = state_of(hass, event_entity(hass, f"{SERIAL}_call_ended"))
    assert ended.attributes[ATTR_EVENT_TYPES] == ["answered", "no_answer", "busy", "failed"]
    lobby_calls = state_of(hass, event_entity(hass, f"{SERIAL}_extension_2001_incoming_call"))
    assert lobby_calls.attributes[ATTR_FRIENDLY_NAME].endswith("Incoming call")


def test_every_event_type_is_translated_and_has_an_icon() -> None:
    translations = load_json("translations/en.json")["entity"]["event"]
    icons = load_json("icons.json")["entity"]["event"]
    for description in (*PBX_EVENT_DESCRIPTIONS, EXTENSION_INCOMING_CALL):
        key = description.translation_key
        assert key is not None
        assert translations[key]["name"]
        states = translations[key]["state_attributes"]["event_type"]["state"]
        assert set(states) == set(description.event_types or []), key
        assert icons[key]["default"].startswith("mdi:"), key
    assert set(DTMF_EVENT_TYPES.values()) == set(
        translations["ivr_keypress"]["state_attributes"]["event_type"]["state"]
    )
    assert translations["ivr_keypress"]["state_attributes"]["event_type"]["state"]["star"] == "*"
    assert set(CALL_ENDED_EVENT_TYPES) <= set(
        icons["call_ended"]["state_attributes"]["event_type"]["state"]
    )


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_incoming_call_on_the_pbx_and_the_called_extension(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    _, runner = pbx
    pbx_calls = event_entity(hass, f"{SERIAL}_incoming_call")
    lobby_calls = event_entity(hass, f"{SERIAL}_extension_2001_incoming_call")
    other_calls = event_entity(hass, f"{SERIAL}_extension_8001_incoming_call")

    callid = runner.incoming_call("0612345678", "2001")
    expected = {
        ATTR_EVENT_TYPE: "incoming_call",
        "from": "0612345678",
        "from_name": None,
        "to": "2001",
        "to_name": "Lobby",
        "callid": callid,
    }
    assert event_attributes(await next_state(hass, pbx_calls, None)) == expected
    assert event_attributes(await next_state(hass, lobby_calls, None)) == expected
    assert state_of(hass, other_calls).state == STATE_UNKNOWN


@pytest.mark.parametrize(
    ("dtmf", "event_type"), [("5", "5"), ("0", "0"), ("*", "star"), ("#", "hash")]
)
async def test_ivr_keypress(hass: HomeAssistant, pbx: Pbx, dtmf: str, event_type: str) -> None:
    _, runner = pbx
    entity_id = event_entity(hass, f"{SERIAL}_ivr_keypress")
    callid = runner.ivr_keypress("9000", "2001", dtmf)
    state = await next_state(hass, entity_id, None)
    assert event_attributes(state) == {
        ATTR_EVENT_TYPE: event_type,
        "ivr": "9000",
        "caller": "2001",
        "caller_name": "Lobby",
        "dtmf": dtmf,
        "callid": callid,
    }


async def test_ivr_keys_that_are_not_phone_keys_are_ignored(
    hass: HomeAssistant, pbx: Pbx, caplog: pytest.LogCaptureFixture
) -> None:
    _, runner = pbx
    entity_id = event_entity(hass, f"{SERIAL}_ivr_keypress")
    changes = state_changes(hass, entity_id)
    bus_events = async_capture_events(hass, EVENT_IVR_DTMF)
    caplog.set_level(logging.DEBUG, logger="custom_components.smartpbx")
    runner.ivr_keypress("9000", "2001", "A")
    runner.ivr_keypress("9000", "2001", "7")
    await wait_for(lambda: len(bus_events) == 2)
    # Both reached the bus; only the real key was recorded, the other logged and dropped.
    assert [change.attributes[ATTR_EVENT_TYPE] for change in changes] == ["7"]
    assert "Ignoring IVR key 'A'" in caplog.text


@pytest.mark.parametrize(
    ("disposition", "event_type"),
    [
        ("ANSWERED", "answered"),
        ("NO ANSWER", "no_answer"),
        ("BUSY", "busy"),
        ("FAILED", "failed"),
    ],
)
async def test_call_ended(hass: HomeAssistant, pbx: Pbx, disposition: str, event_type: str) -> None:
    _, runner = pbx
    entity_id = event_entity(hass, f"{SERIAL}_call_ended")
    sent = runner.emit_cdr("8001", "2001", disposition=disposition, billsec=42)
    state = await next_state(hass, entity_id, None)
    attributes = event_attributes(state)
    assert attributes[ATTR_EVENT_TYPE] == event_type
    assert attributes["disposition_raw"] == disposition
    assert (attributes["src"], attributes["dst"], attributes["dst_name"]) == (
        "8001",
        "2001",
        "Lobby",
    )
    assert attributes["callid"] == sent["callid"]
    assert attributes["billsec"] == 42
    assert attributes["start"] == str(sent["start"]).replace(" ", "T")


async def test_unknown_dispositions_are_ignored(hass: HomeAssistant, pbx: Pbx) -> None:
    _, runner = pbx
    entity_id = event_entity(hass, f"{SERIAL}_call_ended")
    changes = state_changes(hass, entity_id)
    bus_events = async_capture_events(hass, EVENT_CDR)
    runner.emit_cdr("8001", "2001", disposition="TRANSFERRED")
    runner.emit_cdr("8001", "2001", disposition="BUSY")
    await wait_for(lambda: len(bus_events) == 2)
    assert bus_events[0].data["disposition"] == "unknown"
    assert [change.attributes[ATTR_EVENT_TYPE] for change in changes] == ["busy"]


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_a_new_extension_gets_its_entity_without_a_reload(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    entry, runner = pbx
    runner.pbx.add_extension("8004", username="Zoe")
    await runtime(entry).system.async_refresh()
    await hass.async_block_till_done()
    entity_id = event_entity(hass, f"{SERIAL}_extension_8004_incoming_call")
    runner.place_call("8001", "8004")
    state = await next_state(hass, entity_id, None)
    assert state.attributes["to_name"] == "Zoe"
    assert state.attributes["from"] == "8001"


async def test_entities_are_unavailable_while_the_pbx_is_silent(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    entry, runner = pbx
    entity_id = event_entity(hass, f"{SERIAL}_incoming_call")
    runner.silent = True
    await runtime(entry).system.async_refresh()
    assert state_of(hass, entity_id).state == STATE_UNAVAILABLE
    runner.silent = False
    await runtime(entry).system.async_refresh()
    assert state_of(hass, entity_id).state == STATE_UNKNOWN


async def test_last_event_survives_a_reload(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    entity_id = event_entity(hass, f"{SERIAL}_ivr_keypress")
    runner.ivr_keypress("9000", "8001", "3")
    fired = await next_state(hass, entity_id, None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    restored = state_of(hass, entity_id)
    assert restored.state == fired.state
    assert restored.attributes[ATTR_EVENT_TYPE] == "3"
    assert hass.config_entries.async_get_entry(entry.entry_id) is not None
    assert DOMAIN in hass.config.components

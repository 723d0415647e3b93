"""Sensors: extensions, trunks, queues, conferences, calls and call records."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
import json
from typing import Any

from freezegun import freeze_time
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from custom_components.smartpbx.pbx.models import LiveCall
from smartpbx_sim import ExtStatus, FirmwareProfile

from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
    wait_for,
)

ACTIVE_CALLS = "sensor.spx1004o4s_active_calls"
CALLS_TODAY = "sensor.spx1004o4s_calls_today"
MISSED_TODAY = "sensor.spx1004o4s_missed_calls_today"
LAST_CALL = "sensor.spx1004o4s_last_call"
LAST_BOOT = "sensor.spx1004o4s_last_boot"


def _state(hass: HomeAssistant, entity_id: str) -> State:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


async def test_extension_status_with_type_and_port(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    await smartpbx()

    fxs = _state(hass, "sensor.extension_2001_lobby_status")
    sip = _state(hass, "sensor.extension_8001_status")

    assert (fxs.state, fxs.attributes["type"], fxs.attributes["port"]) == ("idle", "fxs", "1")
    assert (sip.state, sip.attributes["type"], sip.attributes["port"]) == ("idle", "sip", None)
    assert fxs.attributes["options"] == [
        "idle",
        "in_use",
        "busy",
        "ringing",
        "on_hold",
        "offline",
    ]
    assert _state(hass, "sensor.spx1004o4s_extensions_online").state == "4"


async def test_extension_status_never_uses_reserved_states(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """PBX "Unavailable" is an option of its own; a state we do not know is HA's unknown."""
    _, runner = await smartpbx()
    entity_id = "sensor.extension_8001_status"

    status = {"event": "extension_status", "extension": "8001"}
    runner.pbx.emit_event(status | {"status": "Unavailable"})
    await wait_for(lambda: _state(hass, entity_id).state == "offline")
    assert _state(hass, entity_id).attributes["pbx_status"] == "Unavailable"

    runner.pbx.emit_event(status | {"status": "Paging"})
    await wait_for(lambda: _state(hass, entity_id).state == "unknown")
    assert _state(hass, entity_id).attributes["pbx_status"] == "Paging"


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_active_calls_and_current_peer(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, sim_profile: FirmwareProfile
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)

    callid = runner.place_call("8001", "2001")
    runner.pbx.answer_call(callid)
    await data.live_calls.async_refresh()

    active = _state(hass, ACTIVE_CALLS)
    assert active.state == "1"
    # Field firmware never says Internal: a call between extensions is Outbound there.
    direction = "Outbound" if sim_profile is FirmwareProfile.FIELD else "Internal"
    assert active.attributes["calls"] == [
        {
            "caller": "8001",
            "caller_name": None,  # its name is just its number again
            "called": "2001",
            "called_name": "Lobby",
            "state": "Up",
            "duration": 0,
            "direction": direction,
        }
    ]
    caller_peer = _state(hass, "sensor.extension_8001_current_peer")
    assert (caller_peer.state, caller_peer.attributes["peer_name"]) == ("2001", "Lobby")
    called_peer = _state(hass, "sensor.extension_2001_lobby_current_peer")
    # 8001's name is just its number again: no name to show.
    assert (called_peer.state, called_peer.attributes["peer_name"]) == ("8001", None)

    runner.hangup_call(callid)
    await data.live_calls.async_refresh()

    assert _state(hass, ACTIVE_CALLS).state == "0"
    assert _state(hass, "sensor.extension_8001_current_peer").state == STATE_UNKNOWN


async def test_active_calls_lists_a_bounded_number(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, _ = await smartpbx()
    data = runtime(entry)
    calls = tuple(
        LiveCall(
            callid=f"1672401220.{n}",
            caller=f"0612{n:06d}",
            source="FXO/1",
            called="8001",
            destination="PJSIP/8001-00000001",
            duration=timedelta(seconds=n),
            state="Up",
            direction="Inbound",
            recording="no",
        )
        for n in range(25)
    )

    data.live_calls.async_set_updated_data(calls)

    active = _state(hass, ACTIVE_CALLS)
    assert active.state == "25"
    assert len(active.attributes["calls"]) == 20


async def test_trunk_sensors(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    entry, runner = await smartpbx()

    assert _state(hass, "sensor.trunk_fxo_1_status").state == "idle"
    voltage = _state(hass, "sensor.trunk_fxo_1_line_voltage")
    assert voltage.state == "48.0"
    assert voltage.attributes["unit_of_measurement"] == "V"
    assert voltage.attributes["device_class"] == "voltage"
    # SIP trunks have no line voltage.
    assert hass.states.get("sensor.trunk_sip_snnuwp_line_voltage") is None

    runner.pbx.set_trunk_connected("FXO-1", False)
    await runtime(entry).system.async_refresh()

    assert _state(hass, "sensor.trunk_fxo_1_status").state == "disconnected"


async def test_queue_sensors(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()

    for name in ("waiting_calls", "completed_calls", "abandoned_calls"):
        assert _state(hass, f"sensor.queue_6666_{name}").state == "0"
    hold = _state(hass, "sensor.queue_6666_average_hold_time")
    assert (hold.state, hold.attributes["unit_of_measurement"]) == ("0", "s")
    assert hold.attributes["device_class"] == "duration"

    # A caller waits in the queue and hangs up unanswered (agents never answer in SMALL_PBX).
    callid = runner.incoming_call("0612345678", "6666")
    await runtime(entry).queues.async_refresh()
    await hass.async_block_till_done()
    assert _state(hass, "sensor.queue_6666_waiting_calls").state == "1"
    runner.pbx.advance(5)
    runner.pbx.hangup_call(callid)
    await runtime(entry).queues.async_refresh()
    await hass.async_block_till_done()
    assert _state(hass, "sensor.queue_6666_waiting_calls").state == "0"
    assert _state(hass, "sensor.queue_6666_abandoned_calls").state == "1"

    # The ring strategy is diagnostic and disabled by default.
    strategy = entity_registry.async_get("sensor.queue_6666_ring_strategy")
    assert strategy is not None
    assert strategy.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    entity_registry.async_update_entity(strategy.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    assert _state(hass, "sensor.queue_6666_ring_strategy").state == "ringall"


async def test_conference_participants_without_pins(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    conference = runner.pbx.conferences["7001"]
    pins = {conference.participantpassword, conference.moderatorpassword} - {""}
    assert pins

    callid = runner.pbx.conference_invite("7001", "8003")
    runner.pbx.answer_call(callid)
    await runtime(entry).conferences.async_refresh()

    participants = _state(hass, "sensor.conference_7001_participants")
    assert participants.state == "1"
    assert participants.attributes["participants"] == [{"number": "8003", "muted": False}]
    everything = json.dumps([state.as_dict() for state in hass.states.async_all()], default=str)
    for pin in pins:
        assert f'"{pin}"' not in everything


async def test_last_boot_holds_steady_and_follows_a_reboot(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)
    booted = dt_util.parse_datetime(_state(hass, LAST_BOOT).state)
    assert booted is not None
    expected = dt_util.utcnow() - timedelta(seconds=SMALL_PBX.initial_uptime)
    assert abs(booted - expected) < timedelta(seconds=5)

    # The PBX's uptime and our clock drift apart by a few seconds: no change.
    info = data.system.data.device_info
    assert info.uptime is not None
    data.system.async_set_updated_data(
        replace(
            data.system.data, device_info=replace(info, uptime=info.uptime - timedelta(seconds=40))
        )
    )
    assert _state(hass, LAST_BOOT).state == booted.isoformat()

    await runner.reboot(downtime=0)
    await runner.wait_connected()
    await data.system.async_refresh()

    rebooted = dt_util.parse_datetime(_state(hass, LAST_BOOT).state)
    assert rebooted is not None
    assert abs(rebooted - dt_util.utcnow()) < timedelta(seconds=5)


async def test_call_records_count_calls_and_missed_calls(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    _, runner = await smartpbx()

    runner.emit_cdr("8001", "2001", disposition="ANSWERED", billsec=42, callid="1672372428.45")
    runner.emit_cdr("0612345678", "8002", disposition="NO ANSWER", direction="Inbound")
    await wait_for(lambda: _state(hass, CALLS_TODAY).state == "2")

    assert _state(hass, MISSED_TODAY).state == "1"
    last = _state(hass, LAST_CALL)
    assert dt_util.parse_datetime(last.state) is not None
    assert {key: last.attributes[key] for key in ("src", "dst", "disposition", "direction")} == {
        "src": "0612345678",
        "dst": "8002",
        "disposition": "no_answer",
        "direction": "Inbound",
    }
    assert set(last.attributes) >= {"billsec", "callid"}


async def test_call_counters_reset_at_midnight(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    _, runner = await smartpbx()
    runner.emit_cdr("8001", "2001", disposition="BUSY")
    await wait_for(lambda: _state(hass, MISSED_TODAY).state == "1")

    midnight = dt_util.start_of_local_day() + timedelta(days=1)
    with freeze_time(midnight + timedelta(seconds=1), tick=True):
        async_fire_time_changed(hass, midnight + timedelta(seconds=1))
        await hass.async_block_till_done()

        assert _state(hass, CALLS_TODAY).state == "0"
        assert _state(hass, MISSED_TODAY).state == "0"
        # The last call is history, not a daily count.
        assert _state(hass, LAST_CALL).state != STATE_UNKNOWN


def _stored(entity_id: str, state: str, extra: dict[str, Any]) -> tuple[State, dict[str, Any]]:
    return State(entity_id, state), extra


async def test_call_records_survive_a_restart_on_the_same_day(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    today = dt_util.now().date()
    yesterday = today - timedelta(days=1)
    last_call = datetime(2024, 3, 1, 12, 0, tzinfo=dt_util.UTC)
    attributes = {
        "src": "8001",
        "dst": "2001",
        "disposition": "answered",
        "billsec": 12,
        "direction": "Internal",
        "callid": "1.2",
    }
    mock_restore_cache_with_extra_data(
        hass,
        [
            _stored(CALLS_TODAY, "5", {"day": today.isoformat(), "count": 5}),
            _stored(MISSED_TODAY, "3", {"day": yesterday.isoformat(), "count": 3}),
            _stored(
                LAST_CALL,
                last_call.isoformat(),
                {"received": last_call.isoformat(), "attributes": attributes},
            ),
        ],
    )

    await smartpbx()

    assert _state(hass, CALLS_TODAY).state == "5"
    # Saved yesterday: today starts from zero.
    assert _state(hass, MISSED_TODAY).state == "0"
    restored = _state(hass, LAST_CALL)
    assert restored.state == last_call.isoformat()
    assert restored.attributes["src"] == "8001"


async def test_restore_ignores_garbage(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            _stored(CALLS_TODAY, "5", {"day": "not a date", "count": 5}),
            _stored(LAST_CALL, "x", {"received": None}),
        ],
    )

    await smartpbx()

    assert _state(hass, CALLS_TODAY).state == "0"
    assert _state(hass, LAST_CALL).state == STATE_UNKNOWN


async def test_a_poll_rewrites_only_extensions_that_changed(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """A system poll notifies every entity; an extension the poll did not change keeps
    its state untouched (on a large PBX those rewrites were most of a poll's cost), and
    one it did change is written."""
    entry, runner = await smartpbx()
    system = runtime(entry).system
    unchanged, changed = "sensor.extension_8002_status", "sensor.extension_8001_status"
    on_call = "binary_sensor.extension_8001_on_a_call"
    await system.async_refresh()  # the first poll after setup writes once
    await hass.async_block_till_done()
    # Values, not State objects: Home Assistant updates last_reported in place.
    reported = {
        entity_id: _state(hass, entity_id).last_reported for entity_id in (unchanged, changed)
    }

    # Changed on the PBX without an event: only the poll can tell.
    runner.pbx.extensions["8001"].status_override = ExtStatus.BUSY
    await system.async_refresh()
    await hass.async_block_till_done()

    assert _state(hass, unchanged).last_reported == reported[unchanged]
    assert _state(hass, changed).state == "busy"
    assert _state(hass, changed).last_reported > reported[changed]
    assert _state(hass, on_call).state == "on"

"""Home Assistant restarting, and messages the broker delivers twice.

A direct entry keeps a persistent session under a stable client id: what the PBX
publishes at QoS 1 while Home Assistant is stopped waits on the broker and arrives right
after CONNACK, before set-up has polled anything. It must reach the bus, the call
counters and the Last call sensor once. QoS 1 is at least once: a call record or key
press the broker delivers again is dropped at the integration's event ingress, also
after a restart (the call records' identities are saved).
"""

from __future__ import annotations

import json
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.smartpbx.const import EVENT_CDR, EVENT_IVR_DTMF

from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
)
from .reliability_helpers import BusRecorder, eventually

CALLS_TODAY = "sensor.spx1004o4s_calls_today"
LAST_CALL = "sensor.spx1004o4s_last_call"
CALL_ENDED = "event.spx1004o4s_call_ended"


def _state(hass: HomeAssistant, entity_id: str) -> Any:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


async def test_call_records_queued_while_home_assistant_was_down_arrive_once(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    bus = BusRecorder(hass, [EVENT_CDR])
    before = runner.emit_cdr("8001", "8002", callid="1672401500.1", billsec=5)
    await eventually(lambda: len(bus.of(EVENT_CDR)) == 1)
    assert _state(hass, CALLS_TODAY).state == "1"

    # Home Assistant stops (the entry unloads; the broker keeps our session).
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    queued = runner.emit_cdr("8002", "8003", callid="1672401500.2", disposition="NO ANSWER")
    runner.publish_raw("cdr", json.dumps(before).encode())  # redelivered after the restart
    await runner.wait_drained()

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await eventually(lambda: len(bus.of(EVENT_CDR)) >= 2)
    await hass.async_block_till_done()

    assert [event["callid"] for event in bus.of(EVENT_CDR)] == [before["callid"], queued["callid"]]
    assert _state(hass, CALLS_TODAY).state == "2"
    assert _state(hass, "sensor.spx1004o4s_missed_calls_today").state == "1"
    assert _state(hass, LAST_CALL).attributes["callid"] == queued["callid"]
    assert _state(hass, CALL_ENDED).attributes["callid"] == queued["callid"]
    assert runtime(entry).events.redeliveries == 1
    bus.stop()


async def test_redelivered_call_records_and_keypresses_count_once(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """A queue call's legs share a call id and stay apart; a payload delivered again
    is dropped (a keypress: within the window, so a gate opens once)."""
    entry, runner = await smartpbx()
    bus = BusRecorder(hass, [EVENT_CDR, EVENT_IVR_DTMF])
    first_leg = runner.emit_cdr("8001", "6666", callid="1672401600.1", billsec=3)
    second_leg = runner.emit_cdr("8001", "8002", callid="1672401600.1", billsec=9)
    for payload in (first_leg, second_leg):
        runner.publish_raw("cdr", json.dumps(payload).encode())
    runner.ivr_keypress("9000", "8003", "1", callid="1672401600.2")
    runner.ivr_keypress("9000", "8003", "1", callid="1672401600.2")
    runner.ivr_keypress("9000", "8003", "2", callid="1672401600.2")
    last = runner.emit_cdr("8003", "8002", callid="1672401600.3")
    await eventually(lambda: [e.get("callid") for e in bus.of(EVENT_CDR)][-1:] == [last["callid"]])
    await hass.async_block_till_done()

    assert [(e["callid"], e["dst"]) for e in bus.of(EVENT_CDR)] == [
        ("1672401600.1", "6666"),
        ("1672401600.1", "8002"),
        ("1672401600.3", "8002"),
    ]
    assert [e["dtmf"] for e in bus.of(EVENT_IVR_DTMF)] == ["1", "2"]
    assert _state(hass, CALLS_TODAY).state == "3"
    assert runtime(entry).events.redeliveries == 3
    bus.stop()

"""Field firmware in Home Assistant (issue 13): its commands as actions and in the Hang up
button, its events, its status topic; and what firmware without them gets.

Every test runs against both simulator profiles: ``document`` answers the field commands
"unknown cmd" (the firmware lacks them), ``field`` plays what real devices do (FIELD.md).
"""

from __future__ import annotations

import json
from typing import Any

import aiomqtt
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smartpbx.const import EVENT_UNKNOWN
from smartpbx_sim import FirmwareProfile
from smartpbx_sim.model import LiveCall as SimCall
from smartpbx_sim.runner import SimulatorRunner

from .actions_helpers import CommandSpy, assert_translated_error
from .broker import MosquittoBroker
from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    record_commands,
    runtime,
    smartpbx_fixture,
    wait_for,
)
from .test_services import (  # noqa: F401
    call,
    pbx_fixture,
    published_before_marker,
    spy_fixture,
)

type Pbx = tuple[MockConfigEntry, SimulatorRunner]

CONNECTIVITY = "binary_sensor.spx1004o4s_connectivity"
ACTIVE_CALLS = "sensor.spx1004o4s_active_calls"
HANG_UP_8001 = "button.extension_8001_hang_up"
PAUSED_8002 = "switch.queue_6666_agent_8002_paused"


def answered_call(runner: SimulatorRunner, caller: str, called: str) -> SimCall:
    callid = runner.place_call(caller, called)
    runner.pbx.answer_call(callid)
    return runner.pbx.calls[callid]


async def assert_unsupported_and_not_sent_again(
    hass: HomeAssistant, spy: CommandSpy, service: str, data: dict[str, Any], command: str
) -> None:
    """Document firmware: a translated "does not support", then the same without asking."""
    spy.clear()
    with pytest.raises(HomeAssistantError) as first:
        await call(hass, service, data)
    assert_translated_error(first.value, "command_unsupported", command=command)
    assert f"does not support the {command} command" in str(first.value)
    assert await published_before_marker(hass, spy) == [command]

    spy.clear()
    with pytest.raises(HomeAssistantError) as again:
        await call(hass, service, data)
    assert_translated_error(again.value, "command_unsupported", command=command)
    assert await published_before_marker(hass, spy) == []


# --- get_extension_call ----------------------------------------------------------------


async def test_get_extension_call(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, sim_profile: FirmwareProfile
) -> None:
    entry, runner = pbx
    live = answered_call(runner, "8001", "8002")

    if sim_profile is FirmwareProfile.DOCUMENT:
        await assert_unsupported_and_not_sent_again(
            hass, spy, "get_extension_call", {"extension": "8001"}, "extcallinfo"
        )
        assert runtime(entry).unsupported_commands == {"extcallinfo"}
        return

    response = await call(hass, "get_extension_call", {"extension": "8002"})
    assert response == {
        "in_call": True,
        "callid": live.callid,
        "channel": live.destination,
        "peer_channel": live.source,
        "from": "8001",
        "to": "8002",
        "direction": "outbound",
        "direction_raw": "Outbound",
    }
    assert json.loads(json.dumps(response)) == response
    assert spy.last("extcallinfo").payload["extension"] == "8002"
    # The PBX's own refusal (no call) is its message, not "unsupported".
    with pytest.raises(HomeAssistantError) as refused:
        await call(hass, "get_extension_call", {"extension": "8003"})
    assert_translated_error(refused.value, "command_failed", command="extcallinfo")
    assert runtime(entry).unsupported_commands == set()


# --- transfer ------------------------------------------------------------------------------


async def test_transfer_by_extension_then_complete(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, sim_profile: FirmwareProfile
) -> None:
    entry, runner = pbx
    live = answered_call(runner, "8001", "8002")

    if sim_profile is FirmwareProfile.DOCUMENT:
        # By extension: the channel lookup is what the firmware lacks first.
        await assert_unsupported_and_not_sent_again(
            hass, spy, "transfer", {"extension": "8002", "target": "8003"}, "extcallinfo"
        )
        await assert_unsupported_and_not_sent_again(
            hass, spy, "transfer", {"channel": live.destination, "target": "8003"}, "atxfer"
        )
        await assert_unsupported_and_not_sent_again(
            hass, spy, "transfer_complete", {"channel": live.destination}, "atxferoperate"
        )
        # Known missing: not even the channel lookup is sent.
        spy.clear()
        runtime(entry).unsupported_commands.discard("extcallinfo")
        with pytest.raises(HomeAssistantError) as by_extension:
            await call(hass, "transfer", {"extension": "8002", "target": "8003"})
        assert_translated_error(by_extension.value, "command_unsupported", command="atxfer")
        assert await published_before_marker(hass, spy) == []
        runtime(entry).unsupported_commands.add("extcallinfo")
        # One answer serves both operations: cancel is not sent either.
        spy.clear()
        with pytest.raises(HomeAssistantError) as cancel:
            await call(hass, "transfer_cancel", {"channel": live.destination})
        assert_translated_error(cancel.value, "command_unsupported", command="atxferoperate")
        assert await published_before_marker(hass, spy) == []
        assert runtime(entry).unsupported_commands == {"extcallinfo", "atxfer", "atxferoperate"}
        return

    channel = live.destination  # 8002's; the simulator moves it to 8003's on completion
    response = await call(hass, "transfer", {"extension": "8002", "target": "8003"})
    assert response == {"channel": channel}
    sent = spy.last("atxfer").payload
    assert (sent["channelid"], sent["tonumber"]) == (channel, "8003")
    consultation = next(c for c in runner.pbx.calls.values() if c.called == "8003")
    runner.pbx.answer_call(consultation.callid)

    await call(hass, "transfer_complete", {"extension": "8002"})

    operate = spy.last("atxferoperate").payload
    assert (operate["channelid"], operate["operate"]) == (channel, "complete")
    (remaining,) = runner.pbx.calls.values()
    assert {remaining.caller, remaining.called} == {"8001", "8003"}


async def test_transfer_by_channel_then_cancel(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, sim_profile: FirmwareProfile
) -> None:
    if sim_profile is FirmwareProfile.DOCUMENT:
        pytest.skip("document firmware: covered by the test above")
    _, runner = pbx
    live = answered_call(runner, "8001", "8002")

    response = await call(hass, "transfer", {"channel": live.source, "target": "8003"})
    assert response == {"channel": live.source}
    assert len(runner.pbx.calls) == 2
    await call(hass, "transfer_cancel", {"channel": live.source})

    assert spy.last("atxferoperate").payload["operate"] == "cancel"
    assert list(runner.pbx.calls) == [live.callid]
    assert {live.caller, live.called} == {"8001", "8002"}


async def test_transfer_needs_exactly_one_of_extension_or_channel(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    for service, extra in (
        ("transfer", {"target": "8003"}),
        ("transfer_complete", {}),
        ("transfer_cancel", {}),
    ):
        for data in ({}, {"extension": "8001", "channel": "PJSIP/8001-00000001"}):
            spy.clear()
            with pytest.raises(HomeAssistantError) as caught:
                await call(hass, service, {**extra, **data})
            assert_translated_error(
                caught.value, "exactly_one_of", first="extension", second="channel"
            )
            assert await published_before_marker(hass, spy) == []


async def test_transfer_of_an_extension_without_a_call(
    hass: HomeAssistant, pbx: Pbx, sim_profile: FirmwareProfile
) -> None:
    """extcallinfo with no call in its answer: the translated "not on a call"."""
    if sim_profile is FirmwareProfile.DOCUMENT:
        pytest.skip("document firmware lacks extcallinfo")
    _, runner = pbx
    answered_call(runner, "8001", "8002")
    original = runner.pbx.extension_call
    runner.pbx.extension_call = lambda extension: {}  # type: ignore[method-assign]
    try:
        with pytest.raises(HomeAssistantError) as caught:
            await call(hass, "transfer", {"extension": "8001", "target": "8003"})
    finally:
        runner.pbx.extension_call = original  # type: ignore[method-assign]
    assert_translated_error(caught.value, "no_active_call", extension="8001")


# --- queue_pause in every queue ---------------------------------------------------------------


async def test_queue_pause_without_a_queue_pauses_the_agent_everywhere(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, sim_profile: FirmwareProfile
) -> None:
    entry, runner = pbx
    assert hass.states.get(PAUSED_8002).state == STATE_OFF

    if sim_profile is FirmwareProfile.DOCUMENT:
        # The document's firmware knows queue_paused but needs a queue: its own refusal.
        with pytest.raises(HomeAssistantError) as caught:
            await call(hass, "queue_pause", {"extension": "8002", "paused": True})
        assert_translated_error(
            caught.value, "command_failed", command="queue_paused", message="queue is required"
        )
        assert spy.last("queue_paused").payload["queue"] == ""
        assert runtime(entry).unsupported_commands == set()
        return

    await call(hass, "queue_pause", {"extension": "8002", "paused": True})

    sent = spy.last("queue_paused").payload
    assert (sent["queue"], sent["extension"], sent["paused"]) == ("", "8002", "yes")
    member = runner.pbx.queues["6666"].member("8002")
    assert member is not None
    assert member.paused
    # The switch follows without waiting for a poll: the action refreshed the queues.
    assert hass.states.get(PAUSED_8002).state == STATE_ON

    await call(hass, "queue_pause", {"extension": "8002", "paused": False})
    await wait_for(lambda: hass.states.get(PAUSED_8002).state == STATE_OFF)


# --- the Hang up button -----------------------------------------------------------------------


async def _press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: entity_id}, blocking=True
    )


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_hang_up_button_ends_exactly_the_extensions_channel(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, spy: CommandSpy, sim_profile: FirmwareProfile
) -> None:
    entry, runner = await smartpbx()
    live = answered_call(runner, "8001", "8002")
    commands = record_commands(runner)

    await _press(hass, HANG_UP_8001)

    assert not runner.pbx.calls
    if sim_profile is FirmwareProfile.FIELD:
        assert commands == ["extcallinfo", "hangup"]
        assert spy.last("hangup").payload == {
            "cmd": "hangup",
            "request_id": spy.last("hangup").payload["request_id"],
            "channelid": live.source,
        }
        return
    # Document firmware: extcallinfo is refused once, then live calls decide.
    assert commands == ["extcallinfo", "livecall", "hangup"]
    assert spy.last("hangup").payload["callid"] == live.callid
    assert runtime(entry).unsupported_commands == {"extcallinfo"}
    answered_call(runner, "8002", "8001")
    commands.clear()

    await _press(hass, HANG_UP_8001)

    assert commands == ["livecall", "hangup"]
    assert not runner.pbx.calls


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_hang_up_button_without_a_call(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, sim_profile: FirmwareProfile
) -> None:
    """Field firmware refuses extcallinfo for an idle extension; live calls confirm it."""
    _, runner = await smartpbx()
    commands = record_commands(runner)

    with pytest.raises(HomeAssistantError) as raised:
        await _press(hass, HANG_UP_8001)

    assert_translated_error(raised.value, "no_active_call", extension="8001")
    assert commands == ["extcallinfo", "livecall"]


# --- events: callstatus and hangup ---------------------------------------------------------


def _capture(hass: HomeAssistant, name: str, seen: list[tuple[Event[Any], Any]], read: Any) -> None:
    """Record every smartpbx_event named ``name`` with what ``read()`` said as it fired."""

    @callback
    def record(event: Event[Any]) -> None:
        if event.data.get("event") == name:
            seen.append((event, read()))

    hass.bus.async_listen(EVENT_UNKNOWN, record)


async def test_callstatus_event_updates_live_calls_at_once(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    data = runtime(entry)
    live = answered_call(runner, "8001", "8002")
    await data.live_calls.async_refresh()
    polls = data.live_calls.poll_count
    seen: list[tuple[Event[Any], Any]] = []
    _capture(hass, "callstatus", seen, lambda: hass.states.get(ACTIVE_CALLS).state)
    known = {"caller": "8001", "called": "8002", "state": "Up", "callid": live.callid}
    # An event alone (no such call in the simulator's livecall): only the event can show it.
    call_entry = {
        "caller": "0612345678",
        "called": "8001",
        "state": "Up",
        "callid": "1700000000.7",
        "calltype": "Inbound",
    }

    runner.pbx.emit_event({"event": "call_status", "calllist": [known, call_entry]})
    await wait_for(lambda: bool(seen))

    event, active_when_fired = seen[0]
    assert active_when_fired == "2"
    assert data.live_calls.poll_count == polls
    # The known call keeps what the poll said about it (its channels).
    assert data.live_calls.data[0].source == live.source
    assert event.data["config_entry_id"] == entry.entry_id
    assert event.data["event"] == "callstatus"
    assert event.data["calls"][1:] == [
        {
            "callid": "1700000000.7",
            "caller": "0612345678",
            "called": "8001",
            "state": "Up",
            "direction": "inbound",
        }
    ]
    assert event.data["payload"]["calllist"] == [known, call_entry]
    # The debounced livecall poll then brings the PBX's full answer (no such call).
    await wait_for(lambda: hass.states.get(ACTIVE_CALLS).state == "1")
    assert data.live_calls.poll_count > polls


async def test_hangup_event_drops_the_call_at_once(hass: HomeAssistant, pbx: Pbx) -> None:
    entry, runner = pbx
    data = runtime(entry)
    live = answered_call(runner, "8001", "8002")
    await data.live_calls.async_refresh()
    assert hass.states.get(ACTIVE_CALLS).state == "1"
    seen: list[tuple[Event[Any], Any]] = []
    _capture(hass, "hangup", seen, lambda: hass.states.get(ACTIVE_CALLS).state)

    runner.hangup_call(live.callid)  # the field profile says hangup and callstatus too
    runner.pbx.emit_event(
        {
            "event": "hangup",
            "callid": live.callid,
            "channel": live.source,
            "caller": "8001",
            "called": "8002",
        }
    )
    await wait_for(lambda: bool(seen))

    event, active_when_fired = seen[0]
    assert active_when_fired == "0"
    assert {key: event.data[key] for key in ("callid", "channel", "caller", "called")} == {
        "callid": live.callid,
        "channel": live.source,
        "caller": "8001",
        "called": "8002",
    }
    assert event.data["extension_device_id"] is not None


# --- the status topic ---------------------------------------------------------------------------


async def _publish_status(broker: MosquittoBroker, runner: SimulatorRunner, status: str) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(
            f"{runner.pbx.base_topic}/status", json.dumps({"status": status}), qos=1
        )


async def test_status_topic_drives_connectivity_at_once(
    hass: HomeAssistant, pbx: Pbx, real_broker: MosquittoBroker
) -> None:
    entry, runner = pbx
    data = runtime(entry)
    polls = data.system.poll_count
    assert hass.states.get(CONNECTIVITY).state == STATE_ON

    await _publish_status(real_broker, runner, "offline")
    await wait_for(lambda: hass.states.get(CONNECTIVITY).state == STATE_OFF)

    assert hass.states.get(ACTIVE_CALLS).state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.extension_8001_status").state == STATE_UNAVAILABLE
    assert data.system.poll_count == polls

    await _publish_status(real_broker, runner, "online")
    await wait_for(lambda: hass.states.get(CONNECTIVITY).state == STATE_ON)
    await wait_for(lambda: hass.states.get(ACTIVE_CALLS).state != STATE_UNAVAILABLE)
    # Back online: everything is fetched again at once.
    await wait_for(lambda: data.system.poll_count > polls)


async def test_an_offline_kept_by_the_broker_clears_with_the_first_answered_poll(
    hass: HomeAssistant, pbx: Pbx, real_broker: MosquittoBroker
) -> None:
    """The PBX's retained "offline" arrives during set-up, before the entities exist: as
    after an "offline" at run time, one poll it answers afterwards proves it back."""
    entry, runner = pbx
    topic = f"{runner.pbx.base_topic}/status"
    async with aiomqtt.Client(real_broker.host, real_broker.port) as client:
        await client.publish(topic, json.dumps({"status": "offline"}), qos=1, retain=True)
    try:
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert hass.states.get(CONNECTIVITY).state == STATE_OFF

        await runtime(entry).system.async_refresh()

        assert hass.states.get(CONNECTIVITY).state == STATE_ON
    finally:  # the broker outlives this test
        async with aiomqtt.Client(real_broker.host, real_broker.port) as client:
            await client.publish(topic, b"", qos=1, retain=True)


async def test_a_poll_answered_after_offline_counts_as_online(
    hass: HomeAssistant, pbx: Pbx, real_broker: MosquittoBroker
) -> None:
    """Firmware that never says "online" again: its next answer proves it is back."""
    entry, runner = pbx
    data = runtime(entry)

    await _publish_status(real_broker, runner, "offline")
    await wait_for(lambda: hass.states.get(CONNECTIVITY).state == STATE_OFF)
    await _publish_status(real_broker, runner, "rebooting")  # unknown words change nothing
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTIVITY).state == STATE_OFF

    await data.system.async_refresh()

    assert hass.states.get(CONNECTIVITY).state == STATE_ON
    await wait_for(lambda: hass.states.get(ACTIVE_CALLS).state != STATE_UNAVAILABLE)

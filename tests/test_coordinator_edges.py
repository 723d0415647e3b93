"""The coordinators at their edges: refusals, unreadable and lost replies, races.

Against the simulator on the real broker, with ``PbxScript`` standing between the broker
and the simulated PBX to refuse, garble, drop or hold chosen commands the way a real PBX
(or a lossy network) can. The connection-loss race runs over Home Assistant's own MQTT
(phcc's paho mock), where a publication can fail just before the loss is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
import json
import logging
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

from awesomeversion import AwesomeVersion
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE, __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import UpdateFailed
import pytest
from pytest_homeassistant_custom_component.common import MockMqttReasonCode
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

import custom_components.smartpbx as integration
from custom_components.smartpbx.call_log import CallLog
from custom_components.smartpbx.const import (
    DOMAIN,
)
from custom_components.smartpbx.coordinator import SmartPbxCoordinator
from custom_components.smartpbx.pbx.models import CallDisposition, CallRecord, ExtensionState
from smartpbx_sim import ExtStatus
from smartpbx_sim.runner import SimulatorRunner

from .broker import MosquittoBroker
from .config_flow_helpers import close_ha_mqtt_socket
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    add_entry,
    real_broker_fixture,
    runtime,
    setup_over_ha_mqtt,
    smartpbx_fixture,
    start_simulator,
    unload_integration,
    wait_for,
)

CONNECTIVITY = "binary_sensor.spx1004o4s_connectivity"
STATUS_8001 = "sensor.extension_8001_status"
QUEUE_WAITING = "sensor.queue_6666_waiting_calls"
PAUSED_8002 = "switch.queue_6666_agent_8002_paused"
COORDINATOR_LOGGER = "custom_components.smartpbx"

# Older releases do not carry a coordinator's translation key over to the entry.
SETUP_ERRORS_TRANSLATED = AwesomeVersion(HA_VERSION) >= "2026.9"

# The call log only asks for names; these tests are about counts and restores.
NO_NAMES = SimpleNamespace(name=lambda number, dialled=False: None)


class PbxScript:
    """Stands in front of the simulated PBX's command handler.

    Chosen commands are refused (status Failed), answered with a reply of the test's
    making, dropped unanswered, or held until ``release``; every other command reaches
    the PBX as usual. ``received`` lists the ``cmd`` of every command, in order.
    """

    def __init__(self, runner: SimulatorRunner) -> None:
        self._pbx = runner.pbx
        self._handle = runner.pbx.handle_command
        self._rules: dict[str, Callable[[str, bytes | str, dict[str, Any]], None]] = {}
        self.received: list[str] = []
        self.held: list[tuple[str, bytes | str]] = []
        runner.pbx.handle_command = self._intercept  # type: ignore[method-assign]

    def _intercept(self, sub_topic: str, payload: bytes | str) -> None:
        try:
            request = json.loads(payload)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self.received.append("<unreadable>")
            self._handle(sub_topic, payload)
            return
        command = str(request.get("cmd"))
        self.received.append(command)
        rule = self._rules.get(command)
        if rule is None:
            self._handle(sub_topic, payload)
        else:
            rule(sub_topic, payload, request)

    def _reply(self, request: dict[str, Any], **fields: Any) -> None:
        self._pbx.send_response({**fields, "request_id": request.get("request_id")})

    def refuse(self, command: str, message: str = "") -> None:
        self._rules[command] = lambda _sub, _payload, request: self._reply(
            request, status="Failed", message=message
        )

    def answer(self, command: str, **fields: Any) -> None:
        self._rules[command] = lambda _sub, _payload, request: self._reply(request, **fields)

    def drop(self, command: str, times: int | None = None) -> None:
        """Leave ``command`` unanswered (the first ``times`` of it, or every one)."""
        dropped = 0

        def rule(sub_topic: str, payload: bytes | str, _request: dict[str, Any]) -> None:
            nonlocal dropped
            if times is not None and dropped >= times:
                self._handle(sub_topic, payload)
                return
            dropped += 1

        self._rules[command] = rule

    def before(self, command: str, action: Callable[[], None]) -> None:
        """Run ``action`` (e.g. publish events) just before the PBX answers ``command``, once."""

        def rule(sub_topic: str, payload: bytes | str, _request: dict[str, Any]) -> None:
            self.restore(command)
            action()
            self._handle(sub_topic, payload)

        self._rules[command] = rule

    def hold(self, command: str) -> None:
        self._rules[command] = lambda sub, payload, _request: self.held.append((sub, payload))

    def release(self, command: str) -> None:
        """Stop holding ``command`` and let the PBX answer what was held."""
        self.restore(command)
        held, self.held = self.held, []
        for sub_topic, payload in held:
            self._handle(sub_topic, payload)

    def restore(self, command: str) -> None:
        self._rules.pop(command, None)


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _failure(coordinator: SmartPbxCoordinator[Any]) -> UpdateFailed:
    assert not coordinator.last_update_success
    error = coordinator.last_exception
    assert isinstance(error, UpdateFailed), error
    return error


# --- how failed polls are reported ----------------------------------------------------------


async def test_a_poll_command_the_pbx_refuses_fails_the_poll_with_its_reason(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """A Failed reply to a system poll's command is reported with the command and the
    PBX's own words (command_failed), and the PBX counts as down until it answers again."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    script = PbxScript(runner)
    script.refuse("trunk_list", "license expired")

    await data.system.async_refresh()

    error = _failure(data.system)
    assert error.translation_key == "command_failed"
    assert error.translation_placeholders == {
        "command": "trunk_list",
        "message": "license expired",
    }
    assert _state(hass, CONNECTIVITY) == "off"
    assert _state(hass, STATUS_8001) == STATE_UNAVAILABLE

    script.restore("trunk_list")
    await data.system.async_refresh()
    await hass.async_block_till_done()

    assert data.system.last_update_success
    assert _state(hass, CONNECTIVITY) == "on"
    assert _state(hass, STATUS_8001) == "idle"


async def test_a_refused_queue_list_fails_only_the_queues_and_names_no_reason(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """A PBX that refuses queue_list without a message fails the queue poll alone: its
    placeholder still reads sensibly ("no reason given"), and the PBX stays available."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    PbxScript(runner).refuse("queue_list")

    await data.queues.async_refresh()

    error = _failure(data.queues)
    assert error.translation_key == "command_failed"
    assert error.translation_placeholders == {
        "command": "queue_list",
        "message": "no reason given",
    }
    assert _state(hass, QUEUE_WAITING) == STATE_UNAVAILABLE
    assert _state(hass, CONNECTIVITY) == "on"
    assert _state(hass, STATUS_8001) == "idle"


async def test_an_unreadable_poll_reply_is_reported_as_an_unexpected_error(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """A reply whose shape no parser knows fails the poll as unexpected_error, carrying
    what was wrong with it, rather than as a refusal or a timeout."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    PbxScript(runner).answer("queue_list", status="Success", queuelist="6666")

    await data.queues.async_refresh()

    error = _failure(data.queues)
    assert error.translation_key == "unexpected_error"
    assert error.translation_placeholders is not None
    assert "'queuelist' should be a list" in error.translation_placeholders["error"]
    assert _state(hass, QUEUE_WAITING) == STATE_UNAVAILABLE


async def test_a_poll_beyond_the_pending_command_limit_fails_as_busy(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With as many commands awaiting replies as the client allows, a poll fails at once
    as pbx_busy (nothing more is sent, its other commands are withdrawn), and works again
    once the replies are in."""
    monkeypatch.setattr(integration, "MAX_PENDING_COMMANDS", 3)
    entry, runner = await smartpbx()
    data = runtime(entry)
    script = PbxScript(runner)
    script.hold("queue_status")
    action = hass.async_create_task(
        hass.services.async_call(
            DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
        )
    )
    await wait_for(lambda: len(script.held) == 1)
    script.received.clear()

    # One action and two of the poll's three commands fill the client's three slots.
    await data.system.async_refresh()

    assert _failure(data.system).translation_key == "pbx_busy"
    # The third was never sent, and the failure withdrew the two that got a slot.
    assert data.client.pending_count == 1
    assert "trunk_list" not in script.received

    script.release("queue_status")
    response = await action
    assert response is not None
    assert response["queue"] == "6666"
    await wait_for(lambda: data.client.pending_count == 0)
    await data.system.async_refresh()
    assert data.system.last_update_success


# --- setup --------------------------------------------------------------------------------


async def test_setup_asks_again_when_the_first_device_info_goes_unanswered(
    hass: HomeAssistant, real_broker: MosquittoBroker
) -> None:
    """A first deviceInfo whose reply is lost (as when HA's MQTT client has not sent the
    subscription yet) is asked again after a short wait, and setup succeeds within one
    command timeout instead of failing."""
    runner = await start_simulator(real_broker)
    script = PbxScript(runner)
    script.drop("deviceInfo", times=1)
    entry = add_entry(hass, real_broker, SMALL_PBX)
    try:
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()

        assert entry.state is ConfigEntryState.LOADED
        assert script.received[:2] == ["deviceInfo", "deviceInfo"]
        assert _state(hass, CONNECTIVITY) == "on"
    finally:
        await unload_integration(hass, entry, runner)


async def test_setup_gives_up_at_once_when_the_pbx_refuses_device_info(
    hass: HomeAssistant, real_broker: MosquittoBroker
) -> None:
    """A refused deviceInfo is an answer, not a lost reply: setup is retried later
    (translated as command_failed, with the PBX's reason) without asking again now."""
    runner = await start_simulator(real_broker)
    script = PbxScript(runner)
    script.refuse("deviceInfo", "api disabled")
    entry = add_entry(hass, real_broker, SMALL_PBX)
    try:
        await hass.config_entries.async_setup(entry.entry_id)

        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert script.received == ["deviceInfo"]
        if SETUP_ERRORS_TRANSLATED:
            assert entry.error_reason_translation_key == "command_failed"
            assert entry.error_reason_translation_placeholders == {
                "command": "deviceInfo",
                "message": "api disabled",
            }
    finally:
        await unload_integration(hass, entry, runner)


# --- status events and polls -----------------------------------------------------------------


async def test_a_status_event_during_a_poll_never_invents_an_extension(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """Events that arrive while a system poll is in flight win over its answer for the
    extensions it lists; one for an extension it does not list is not added to it."""
    entry, runner = await smartpbx()
    data = runtime(entry)

    def status_events() -> None:
        # Published before the reply, so they reach HA while the poll awaits it.
        for number, status in (("8001", "Busy"), ("8099", "InUse")):
            runner.pbx.emit_event(
                {"event": "extension_status", "extension": number, "status": status}
            )

    PbxScript(runner).before("extension_list", status_events)

    await data.system.async_refresh()
    await hass.async_block_till_done()

    assert data.system.last_update_success
    assert set(data.system.data.extensions) == {"8001", "8002", "8003", "2001"}
    # The PBX's list still said Idle; the newer event wins.
    assert data.system.data.extensions["8001"].state is ExtensionState.BUSY
    assert _state(hass, STATUS_8001) == "busy"
    assert hass.states.get("sensor.extension_8099_status") is None


async def test_a_status_event_that_changes_nothing_wakes_no_entity(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """An extension_status repeating the state the extension already has (the PBX re-sends
    them) calls none of the extension's or the PBX-wide listeners."""
    entry, runner = await smartpbx()
    system = runtime(entry).system
    calls: list[str | None] = []

    def listener(number: str | None) -> Callable[[], None]:
        return lambda: calls.append(number)

    for number in ("8001", None):
        entry.async_on_unload(system.async_add_extension_listener(number, listener(number)))
    before = system.data.extensions["8001"]

    runner.set_extension_status("8001", ExtStatus.IDLE)  # already idle
    runner.set_extension_status("8002", ExtStatus.BUSY)  # arrives after it, in order
    await wait_for(lambda: _state(hass, "sensor.extension_8002_status") == "busy")

    assert calls == []
    assert system.data.extensions["8001"] is before

    runner.set_extension_status("8001", ExtStatus.UNAVAILABLE)
    await wait_for(lambda: _state(hass, STATUS_8001) == "offline")
    assert sorted(calls, key=str) == ["8001", None]


# --- refreshing one queue after an action ----------------------------------------------------


async def test_an_action_on_a_queue_not_polled_yet_polls_all_queues(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """After an action on a queue Home Assistant has not seen yet (created on the PBX since
    the last poll), the queues are polled in full, so the new queue and its entities appear
    at once instead of at the next poll."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    runner.pbx.reboot(replace(runner.pbx.config, queues=2))  # queue 6667 now exists
    script = PbxScript(runner)

    await hass.services.async_call(
        DOMAIN, "queue_add", {"queue": "6667", "extension": "2001"}, blocking=True
    )
    await hass.async_block_till_done()

    assert script.received[0] == "queue_add"
    assert "queue_list" in script.received[1:]
    assert set(data.queues.data) == {"6666", "6667"}
    status = data.queues.data["6667"].status
    assert status is not None
    assert "2001" in {member.agent for member in status.members}
    assert _state(hass, "sensor.queue_6667_waiting_calls") == "0"


async def test_a_status_refresh_that_times_out_after_a_pause_is_left_to_the_next_poll(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """When the PBX paused the agent but its queue_status then goes unanswered, the switch
    action still succeeds (the command did), the queue keeps its last data without failing
    the coordinator, and the next poll shows the pause."""
    caplog.set_level(logging.DEBUG, logger=COORDINATOR_LOGGER)
    entry, runner = await smartpbx(command_timeout=0.3)
    data = runtime(entry)
    script = PbxScript(runner)
    script.drop("queue_status")

    await hass.services.async_call("switch", "turn_on", {"entity_id": PAUSED_8002}, blocking=True)

    assert "queue_paused" in script.received
    assert any(
        "Could not refresh Smart PBX queues 6666" in record.getMessage()
        for record in caplog.records
    )
    assert data.queues.last_update_success
    assert _state(hass, PAUSED_8002) == "off"

    script.restore("queue_status")
    await data.queues.async_refresh()
    await hass.async_block_till_done()
    assert _state(hass, PAUSED_8002) == "on"


async def test_a_queue_a_poll_in_flight_finds_deleted_is_not_brought_back_by_an_action(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """An action's status refresh waits for the poll in flight; when that poll finds the
    queue deleted, the refresh (which the PBX now refuses) must not bring it back."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    script = PbxScript(runner)
    script.hold("queue_list")
    poll = hass.async_create_task(data.queues.async_refresh())  # e.g. the scheduled poll
    await wait_for(lambda: len(script.held) == 1)
    answered = data.client.stats.commands_answered

    turn_on = hass.async_create_task(
        hass.services.async_call("switch", "turn_on", {"entity_id": PAUSED_8002}, blocking=True)
    )
    # queue_paused answered: the switch now waits for the poll to land, 6666 still listed.
    await wait_for(lambda: data.client.stats.commands_answered == answered + 1)
    runner.pbx.reboot(replace(runner.pbx.config, queues=0))  # queue 6666 is deleted
    script.received.clear()

    script.release("queue_list")
    await poll
    await turn_on

    # The switch asked for 6666's status alone (refused now), after the poll had landed.
    assert script.received == ["queue_status"]
    assert data.queues.data == {}
    assert data.queues.last_update_success
    assert _state(hass, PAUSED_8002) == STATE_UNAVAILABLE


# --- the connection dropping mid-poll -----------------------------------------------------------


async def test_a_poll_cut_short_by_the_connection_loss_fails_and_catches_up_after(
    hass: HomeAssistant,
    mqtt_mock: MqttMockHAClient,
    mqtt_client_mock: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A poll whose command fails on a connection that HA's MQTT client reports lost a
    moment later is a failed update like any other: its entities are unavailable, the
    failure is logged once, and every coordinator polls again when the connection is back."""
    caplog.set_level(logging.DEBUG, logger=COORDINATOR_LOGGER)
    entry, _ = await setup_over_ha_mqtt(hass, mqtt_client_mock)
    assert entry.state is ConfigEntryState.LOADED
    data = runtime(entry)
    queues_before = data.queues.data
    caplog.clear()

    working = mqtt_client_mock.publish.side_effect
    failed: list[str] = []

    def broken_socket(topic: str, *args: Any, **kwargs: Any) -> Any:
        failed.append(topic)
        return MagicMock(rc=4, mid=9999)  # MQTT_ERR_NO_CONN

    mqtt_client_mock.publish.side_effect = broken_socket
    poll = hass.async_create_task(data.queues.async_refresh())
    await wait_for(lambda: bool(failed))
    mqtt_client_mock.on_disconnect(mqtt_client_mock, None, None, MockMqttReasonCode())
    await poll

    assert not data.queues.last_update_success
    assert data.queues.data is queues_before  # kept for when it is back
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "Error fetching Smart PBX queues" in m]) == 1, messages
    assert _state(hass, QUEUE_WAITING) == STATE_UNAVAILABLE

    mqtt_client_mock.publish.side_effect = working
    mqtt_client_mock.on_connect(mqtt_client_mock, None, 0, MockMqttReasonCode())
    await wait_for(lambda: _state(hass, QUEUE_WAITING) == "0")
    assert data.queues.last_update_success
    await hass.async_block_till_done()
    await unload_integration(hass, entry)
    close_ha_mqtt_socket(mqtt_client_mock)


# --- the call log ------------------------------------------------------------------------------


async def test_a_restored_last_call_never_replaces_one_received_since_start(
    hass: HomeAssistant,
) -> None:
    """The last call saved before a restart is only a fallback: a CDR received since
    start-up is newer, and restoring must neither replace it nor notify the sensors."""
    log = CallLog(hass, NO_NAMES)
    notified: list[None] = []
    log.async_add_listener(lambda: notified.append(None))
    log.async_add_record(
        CallRecord(
            callid="1700000000.1",
            src="8002",
            src_channel="PJSIP/8002-00000001",
            dst="8001",
            dst_channel="PJSIP/8001-00000002",
            start=None,
            end=None,
            billsec=5,
            disposition=CallDisposition.ANSWERED,
            disposition_raw="ANSWERED",
            direction="Internal",
            dtmf="",
            record_file="",
        )
    )
    received = log.last_call
    assert received is not None

    log.async_restore_last_call(
        {
            "received": "2024-03-01T09:00:00+00:00",
            "attributes": {"src": "8001", "dst": "2001", "disposition": "no_answer"},
        }
    )

    assert log.last_call is received
    assert log.last_call.attributes["src"] == "8002"
    assert len(notified) == 1  # the CDR only


async def test_a_failed_system_poll_command_cancels_the_other_two(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """The system poll sends its three commands together; when one fails, the poll fails
    at once and the other two are withdrawn instead of waiting out their timeout for
    answers nobody would read."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    script = PbxScript(runner)
    script.refuse("deviceInfo", "maintenance")
    script.drop("extension_list")
    script.drop("trunk_list")

    await data.system.async_refresh()

    assert _failure(data.system).translation_key == "command_failed"
    assert data.client.pending_count == 0

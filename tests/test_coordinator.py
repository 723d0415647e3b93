"""The coordinators: bounded polls, the push path, availability, devices coming and going."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, timedelta
import logging
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, MagicMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.update_coordinator import UpdateFailed
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smartpbx.call_log import CallLog
from custom_components.smartpbx.const import (
    DOMAIN,
    LIVE_CALL_REFRESH_COOLDOWN,
    STATUS_FETCH_CONCURRENCY,
)
from custom_components.smartpbx.coordinator import (
    SmartPbxListCoordinator,
    SmartPbxSystemCoordinator,
)
from custom_components.smartpbx.entity import extension_device_info
from custom_components.smartpbx.identifiers import child_identifier
from custom_components.smartpbx.pbx.errors import PbxCommandFailedError, PbxTimeoutError
from custom_components.smartpbx.pbx.models import (
    CallDisposition,
    CallRecord,
    DeviceInfo,
    Extension,
    ExtensionState,
    ExtensionStatusEvent,
    ExtensionType,
    Queue,
    QueueStatus,
    SystemSnapshot,
)
from smartpbx_sim import ExtStatus

from .broker import MosquittoBroker
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    record_commands,
    runtime,
    smartpbx_fixture,
    wait_for,
)

TWO_OF_EACH = replace(SMALL_PBX, queues=2, conferences=2)
STATUS_8001 = "sensor.extension_8001_status"
STATUS_8002 = "sensor.extension_8002_status"
ONLINE = "sensor.spx1004o4s_extensions_online"

# The call log only asks for names; these tests are about counts and restores.
NO_NAMES = SimpleNamespace(name=lambda number, dialled=False: None)


async def test_requests_per_poll_are_bounded(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """As coordinator.py documents: 3, 1 + queues, 1 + conferences, 1."""
    entry, runner = await smartpbx(sim_config=TWO_OF_EACH)
    data = runtime(entry)
    commands = record_commands(runner)

    await data.system.async_refresh()
    assert sorted(commands) == ["deviceInfo", "extension_list", "trunk_list"]
    commands.clear()
    await data.queues.async_refresh()
    assert sorted(commands) == ["queue_list", "queue_status", "queue_status"]
    commands.clear()
    await data.conferences.async_refresh()
    assert sorted(commands) == ["conf_list", "conf_status", "conf_status"]
    commands.clear()
    await data.live_calls.async_refresh()
    assert commands == ["livecall"]


async def test_extension_status_event_updates_without_polling(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)
    system_polls = data.system.poll_count
    other_updated = hass.states.get(STATUS_8002).last_updated

    runner.set_extension_status("8001", ExtStatus.BUSY)
    await wait_for(lambda: hass.states.get(STATUS_8001).state == "busy")

    runner.set_extension_status("8001", ExtStatus.UNAVAILABLE)
    await wait_for(lambda: hass.states.get(STATUS_8001).state == "offline")
    # The extensions-online count follows the same event.
    assert hass.states.get(ONLINE).state == "3"
    assert data.system.poll_count == system_polls
    # Only the extension the event is about was written.
    assert hass.states.get(STATUS_8002).last_updated == other_updated


async def test_an_extension_going_offline_writes_the_count_in_the_events_context(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """One status event, one cause: the extension's entities and the PBX's
    extensions-online count that it changes carry the same context."""
    _, runner = await smartpbx()

    runner.set_extension_status("8001", ExtStatus.UNAVAILABLE)
    await wait_for(lambda: hass.states.get(ONLINE).state == "3")

    status = hass.states.get(STATUS_8001)
    assert status.state == "offline"
    assert hass.states.get(ONLINE).context.id == status.context.id


async def test_status_events_during_a_poll_win_over_its_answer(
    hass: HomeAssistant,
) -> None:
    """An event newer than the poll's request must not be overwritten by its answer."""
    entry = MockConfigEntry(domain=DOMAIN)
    entry.add_to_hass(hass)
    answer = asyncio.Event()
    info = DeviceInfo("PBX", "SN1", "1.0", None, timedelta(hours=1))
    idle = Extension("8001", ExtensionType.SIP, "Tom", ExtensionState.IDLE, "Idle")

    async def slow_system_snapshot(**_: Any) -> SystemSnapshot:
        await answer.wait()
        return SystemSnapshot(info, {"8001": idle}, {})

    client = MagicMock(connected=True)
    client.system_snapshot = slow_system_snapshot
    coordinator = SmartPbxSystemCoordinator(hass, entry, client)
    refresh = hass.async_create_task(coordinator.async_refresh())
    await asyncio.sleep(0)
    coordinator.async_handle_extension_status(
        ExtensionStatusEvent("8001", ExtensionState.RINGING, "Ringing")
    )
    answer.set()
    await refresh

    assert coordinator.data.extensions["8001"].state is ExtensionState.RINGING
    await coordinator.async_shutdown()


def _queue_client(fail: dict[str, Exception] | None = None) -> tuple[MagicMock, list[int]]:
    """A client with ten queues whose status answers take a moment; records concurrency."""
    most = [0]
    in_flight = 0

    async def queue_status(number: str, **_: Any) -> QueueStatus:
        nonlocal in_flight
        in_flight += 1
        most[0] = max(most[0], in_flight)
        try:
            await asyncio.sleep(0.01)
            if fail and number in fail:
                raise fail[number]
            return QueueStatus(number, "ringall", 0, 0, 0, 0, 0, 0, ())
        finally:
            in_flight -= 1

    client = MagicMock(connected=True)
    queues = tuple(Queue(str(n), "", (), "ringall") for n in range(10))
    client.queue_list = AsyncMock(return_value=queues)
    client.queue_status = queue_status
    return client, most


async def test_status_requests_run_concurrently_within_a_bound(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN)
    entry.add_to_hass(hass)
    refused = PbxCommandFailedError("queue_status", "queue is not existing", {})
    client, most = _queue_client({"3": refused})
    coordinator = SmartPbxListCoordinator(
        hass, entry, "queues", client.queue_list, client.queue_status
    )

    await coordinator.async_refresh()

    assert coordinator.last_update_success
    assert len(coordinator.data) == 10
    assert most[0] == STATUS_FETCH_CONCURRENCY
    # A queue the PBX will not describe stays, without a status.
    assert coordinator.data["3"].status is None
    await coordinator.async_shutdown()


async def test_one_status_timing_out_fails_the_poll_and_stops_the_rest(
    hass: HomeAssistant,
) -> None:
    entry = MockConfigEntry(domain=DOMAIN)
    entry.add_to_hass(hass)
    client, _ = _queue_client({"0": PbxTimeoutError("queue_status", 1)})
    coordinator = SmartPbxListCoordinator(
        hass, entry, "queues", client.queue_list, client.queue_status
    )

    await coordinator.async_refresh()

    assert not coordinator.last_update_success
    assert isinstance(coordinator.last_exception, UpdateFailed)
    assert coordinator.last_exception.translation_key == "command_timeout"
    # phcc fails the test if any status request were left running.
    await coordinator.async_shutdown()


async def test_silent_pbx_goes_unavailable_and_comes_back(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Each coordinator's failed poll makes its entities unavailable and is logged once,
    however many polls fail; its next successful poll brings them back (logged once)."""
    entry, runner = await smartpbx(command_timeout=0.3)
    data = runtime(entry)

    runner.silent = True
    for _ in range(2):
        await data.system.async_refresh()
        await data.queues.async_refresh()

    assert hass.states.get(STATUS_8001).state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.queue_6666_waiting_calls").state == STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.spx1004o4s_connectivity").state == "off"
    failures = [r.getMessage() for r in caplog.records if "Error fetching" in r.getMessage()]
    assert len([m for m in failures if "system" in m]) == 1, failures
    assert len([m for m in failures if "queues" in m]) == 1, failures

    runner.silent = False
    await data.system.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get(STATUS_8001).state == "idle"
    assert hass.states.get("binary_sensor.spx1004o4s_connectivity").state == "on"
    # The queues' data is still the failed poll's until their own poll succeeds.
    assert hass.states.get("sensor.queue_6666_waiting_calls").state == STATE_UNAVAILABLE

    await data.queues.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get("sensor.queue_6666_waiting_calls").state == "0"
    assert len([r for r in caplog.records if "recovered" in r.getMessage()]) == 2


async def test_connection_loss_goes_unavailable_and_comes_back(
    hass: HomeAssistant,
    smartpbx: SmartPbxFactory,
    socket_enabled: None,
    private_broker: MosquittoBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, runner = await smartpbx(broker=private_broker)
    caplog.clear()

    private_broker.stop()
    await wait_for(lambda: hass.states.get(STATUS_8001).state == STATE_UNAVAILABLE)
    assert hass.states.get("binary_sensor.spx1004o4s_connectivity").state == "off"

    private_broker.start()
    await wait_for(lambda: hass.states.get(STATUS_8001).state == "idle", limit=15)
    assert hass.states.get("binary_sensor.spx1004o4s_connectivity").state == "on"
    await runner.wait_connected()

    ours = [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.smartpbx") and r.levelno >= logging.INFO
    ]
    assert len([r for r in ours if r.levelno == logging.WARNING]) == 1, ours
    assert len([r for r in ours if "Reconnected" in r.getMessage()]) == 1, ours
    assert not [r for r in ours if r.levelno >= logging.ERROR], ours


async def test_call_events_refresh_live_calls_once_per_burst(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)
    polls = data.live_calls.poll_count

    runner.place_call("8001", "8002")  # status events for both, then an invite
    # (Field firmware's callstatus shows the call before the poll: wait for the poll.)
    await wait_for(lambda: data.live_calls.poll_count > polls)
    await wait_for(lambda: hass.states.get("sensor.spx1004o4s_active_calls").state == "1")
    # Longer than the debounce: a second poll for the same burst would have started.
    await asyncio.sleep(2 * LIVE_CALL_REFRESH_COOLDOWN)

    assert data.live_calls.poll_count == polls + 1


async def test_a_stream_of_callstatus_events_still_lets_the_live_call_poll_run(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """callstatus events closer together than the poll's debounce: each changes the live
    calls at once, and the poll that corrects them still runs (none was pushed back)."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    polls = data.live_calls.poll_count

    for _ in range(8):  # 8 x 0.6 cooldowns: ~5 cooldowns of events without a gap
        runner.pbx.emit_event({"event": "callstatus", "calllist": []})
        await asyncio.sleep(0.6 * LIVE_CALL_REFRESH_COOLDOWN)

    assert data.live_calls.poll_count > polls


async def test_devices_appear_and_vanish(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
    smartpbx: SmartPbxFactory,
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)
    identifier = child_identifier(SMALL_PBX.serial, "extension", "8004")

    runner.add_extension("8004", username="Annex")
    await data.system.async_refresh()
    await hass.async_block_till_done()

    device = device_registry.async_get_device_by_identifier(identifier, entry.entry_id)
    assert device is not None
    assert device.name == "Extension 8004 Annex"
    assert hass.states.get("sensor.extension_8004_annex_status").state == "idle"

    runner.pbx.remove_extension("8004")
    await data.system.async_refresh()
    await hass.async_block_till_done()

    # Missing once: unavailable, kept (one odd answer must not cost the customisations).
    assert device_registry.async_get_device_by_identifier(identifier, entry.entry_id)
    assert hass.states.get("sensor.extension_8004_annex_status").state == STATE_UNAVAILABLE

    await data.system.async_refresh()
    await hass.async_block_till_done()

    # Missing twice: gone, with its entities.
    assert device_registry.async_get_device_by_identifier(identifier, entry.entry_id) is None
    assert entity_registry.async_get("sensor.extension_8004_annex_status") is None
    assert hass.states.get("sensor.extension_8004_annex_status") is None

    runner.add_extension("8004", username="Annex")
    await data.system.async_refresh()
    await hass.async_block_till_done()

    assert hass.states.get("sensor.extension_8004_annex_status").state == "idle"


async def test_queues_and_conferences_vanish_after_a_reboot(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)

    await runner.reboot(replace(SMALL_PBX, queues=0, conferences=0), downtime=0)
    await runner.wait_connected()
    for _ in range(2):  # devices go when two updates in a row miss them
        for coordinator in data.coordinators:
            await coordinator.async_refresh()
    await hass.async_block_till_done()

    for identifier in (
        child_identifier(SMALL_PBX.serial, "queue", "6666"),
        child_identifier(SMALL_PBX.serial, "conference", "7001"),
    ):
        assert device_registry.async_get_device_by_identifier(identifier, entry.entry_id) is None
    assert hass.states.get("switch.queue_6666_agent_8002_paused") is None
    assert entry.state is ConfigEntryState.LOADED


async def test_renamed_extension_renames_its_device(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)

    runner.pbx.set_extension("8001", fullname="Tom")
    await data.system.async_refresh()

    device = device_registry.async_get_device_by_identifier(
        child_identifier(SMALL_PBX.serial, "extension", "8001"), entry.entry_id
    )
    assert device is not None
    assert device.name == "Extension 8001 Tom"


# --- the call log ------------------------------------------------------------------------


def _record(disposition: CallDisposition, src: str = "8001") -> CallRecord:
    return CallRecord(
        callid="1672372428.45",
        src=src,
        src_channel=f"PJSIP/{src}-00000001",
        dst="2001",
        dst_channel="FXS/1",
        start=None,
        end=None,
        billsec=12 if disposition is CallDisposition.ANSWERED else 0,
        disposition=disposition,
        disposition_raw=disposition.value.upper().replace("_", " "),
        direction="Internal",
        dtmf="",
        record_file="",
    )


@pytest.mark.parametrize(
    ("disposition", "missed"),
    [
        (CallDisposition.ANSWERED, False),
        (CallDisposition.NO_ANSWER, True),
        (CallDisposition.BUSY, True),
        (CallDisposition.FAILED, True),
        (CallDisposition.UNKNOWN, True),
    ],
)
def test_missed_means_not_answered(disposition: CallDisposition, missed: bool) -> None:
    assert _record(disposition).missed is missed


async def test_call_log_counts_and_resets_at_local_midnight(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    await hass.config.async_set_time_zone("Europe/Berlin")
    freezer.move_to(datetime.fromisoformat("2024-03-01T23:59:30+01:00"))
    log = CallLog(hass, NO_NAMES)
    unsubscribe = log.async_start()
    log.async_add_record(_record(CallDisposition.ANSWERED))
    log.async_add_record(_record(CallDisposition.NO_ANSWER))
    assert log.counts == {"calls_today": 2, "missed_calls_today": 1}
    assert log.last_call is not None
    assert log.last_call.attributes["disposition"] == "no_answer"

    freezer.move_to(datetime.fromisoformat("2024-03-02T00:00:00+01:00"))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()

    assert log.counts == {"calls_today": 0, "missed_calls_today": 0}
    assert log.day == date(2024, 3, 2)
    assert log.last_call is not None  # the last call stays the last call
    unsubscribe()


async def test_call_log_restores_only_counts_of_today(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    freezer.move_to(datetime.fromisoformat("2024-03-02T10:00:00+00:00"))
    log = CallLog(hass, NO_NAMES)
    log.async_add_record(_record(CallDisposition.ANSWERED))

    log.async_restore_count("calls_today", {"day": "2024-03-02", "count": 5})
    log.async_restore_count("calls_today", {"day": "2024-03-02", "count": 5})  # once only
    log.async_restore_count("missed_calls_today", {"day": "2024-03-01", "count": 7})

    assert log.counts == {"calls_today": 6, "missed_calls_today": 0}


def test_extension_devices_are_shared_until_the_extension_changes() -> None:
    """All entities of an extension get one DeviceInfo; a renamed extension a new one."""
    runtime = SimpleNamespace(serial="XR1813", pbx_device_id="pbx-device", extension_devices={})
    extension = Extension(
        number="2001",
        type=ExtensionType.SIP,
        name="Front desk",
        state=ExtensionState.IDLE,
        state_raw="Idle",
    )
    first = extension_device_info(runtime, extension)
    assert extension_device_info(runtime, replace(extension, state_raw="InUse")) is first
    assert first["name"] == "Extension 2001 Front desk"
    assert first["via_device_id"] == "pbx-device"

    renamed = extension_device_info(runtime, replace(extension, name="Lobby"))
    assert renamed is not first
    assert renamed["name"] == "Extension 2001 Lobby"
    assert renamed["identifiers"] == first["identifiers"]

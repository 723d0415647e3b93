"""A PBX that reboots, possibly with another configuration: nothing stale survives it.

A reboot publishes nothing (as on the real device): the PBX drops off the broker for a
moment and comes back with uptime 0, no calls, and perhaps other extensions. The
integration learns it from its polls: last boot moves to now, new extensions get
devices and entities at the next poll, removed ones lose theirs after two polls (one odd
answer must not cost the user their entity settings), and calls cut by the reboot end.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
import logging

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pytest

from custom_components.smartpbx.identifiers import child_identifier

from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
)
from .reliability_helpers import eventually

SERIAL = SMALL_PBX.serial
LAST_BOOT = "sensor.spx1004o4s_last_boot"
ACTIVE_CALLS = "sensor.spx1004o4s_active_calls"
STATUS_8001 = "sensor.extension_8001_status"
ON_CALL_8001 = "binary_sensor.extension_8001_on_a_call"
LOBBY_STATUS = "sensor.extension_2001_lobby_status"
RECONFIGURED = dataclasses.replace(SMALL_PBX, sip_extensions=4, fxs_extensions=0)
"""After the reboot: extension 8004 is new, FXS extension 2001 is gone."""


async def test_reboot_with_other_extensions_leaves_nothing_stale(
    hass: HomeAssistant,
    smartpbx: SmartPbxFactory,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry, runner = await smartpbx(poll_interval=1, command_timeout=0.5)
    data = runtime(entry)
    booted_before = datetime.fromisoformat(hass.states.get(LAST_BOOT).state)
    runner.place_call("8001", "8002")  # rings until the reboot cuts it
    await eventually(lambda: hass.states.get(ACTIVE_CALLS).state == "1")
    assert hass.states.get(ON_CALL_8001).state == "on"
    assert (
        device_registry.async_get_device_by_identifier(
            child_identifier(SERIAL, "extension", "2001"), entry.entry_id
        )
        is not None
    )
    caplog.clear()

    await runner.reboot(RECONFIGURED, downtime=0.5)
    await runner.wait_connected()
    rebooted_at = dt_util.utcnow()

    # Last boot follows the reset uptime.
    def booted_now() -> bool:
        state = hass.states.get(LAST_BOOT).state
        return state != "unavailable" and datetime.fromisoformat(state) > booted_before

    await eventually(booted_now)
    booted = datetime.fromisoformat(hass.states.get(LAST_BOOT).state)
    assert abs((booted - rebooted_at).total_seconds()) < 60

    # The new extension gets its device and entities...
    new_status = f"{SERIAL}_extension_8004_status"
    await eventually(lambda: entity_registry.async_get_entity_id("sensor", "smartpbx", new_status))
    new_entity = entity_registry.async_get_entity_id("sensor", "smartpbx", new_status)
    assert new_entity is not None
    await eventually(lambda: hass.states.get(new_entity).state == "idle")
    assert (
        device_registry.async_get_device_by_identifier(
            child_identifier(SERIAL, "extension", "8004"), entry.entry_id
        )
        is not None
    )

    # ...the removed one loses its device, entities and states...
    await eventually(
        lambda: device_registry.async_get_device_by_identifier(
            child_identifier(SERIAL, "extension", "2001"), entry.entry_id
        )
        is None
    )
    assert not [
        item
        for item in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
        if "_extension_2001_" in item.unique_id
    ]
    assert hass.states.get(LOBBY_STATUS) is None

    # ...and the call the reboot cut is over everywhere.
    await eventually(lambda: hass.states.get(ACTIVE_CALLS).state == "0")
    assert hass.states.get(STATUS_8001).state == "idle"
    assert hass.states.get(ON_CALL_8001).state == "off"
    assert data.live_calls.data == ()
    assert set(data.system.data.extensions) == {"8001", "8002", "8003", "8004"}

    # Entities are never added twice (each would log a duplicate unique id).
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "unique" in r.msg]


async def test_entities_disabled_by_default_are_not_recreated_at_each_poll(
    hass: HomeAssistant,
    smartpbx: SmartPbxFactory,
    entity_registry: er.EntityRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The queue's ring strategy sensor is disabled by default: Home Assistant declines to
    add it, which must not make the queue look new (all its entities again) every poll."""
    entry, _ = await smartpbx()
    data = runtime(entry)
    strategy = entity_registry.async_get_entity_id(
        "sensor", "smartpbx", f"{SERIAL}_queue_6666_strategy"
    )
    assert strategy is not None
    assert entity_registry.async_get(strategy).disabled  # type: ignore[union-attr]
    caplog.clear()

    for _ in range(3):
        await data.queues.async_refresh()
        await data.system.async_refresh()
    await hass.async_block_till_done()

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

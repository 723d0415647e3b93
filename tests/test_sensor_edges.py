"""Sensors of extensions, trunks, queues and conferences the PBX no longer lists.

Between the poll that misses a subject and the removal of its device (two polls in a
row, see async_sync_devices), its sensors are unavailable and read as unknown rather than
raising for the subject they can no longer find.
"""

from __future__ import annotations

from dataclasses import replace

from homeassistant.components.sensor import SensorEntity
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import async_get_platforms

from custom_components.smartpbx.const import DOMAIN

from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
)


def _sensor(hass: HomeAssistant, entity_id: str) -> SensorEntity:
    """The live entity object behind ``entity_id``."""
    for platform in async_get_platforms(hass, DOMAIN):
        if platform.domain == "sensor" and entity_id in platform.entities:
            entity = platform.entities[entity_id]
            assert isinstance(entity, SensorEntity)
            return entity
    raise AssertionError(f"no sensor {entity_id}")


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _reads(sensor: SensorEntity) -> tuple[object, object]:
    """Value and attributes, read afresh from the entity."""
    return sensor.native_value, sensor.extra_state_attributes


async def test_status_of_an_extension_the_pbx_no_longer_lists_is_unknown(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """An extension deleted on the PBX: its status sensor is unavailable, with neither a
    value nor attributes; the other extensions carry on."""
    entry, runner = await smartpbx()
    status = _sensor(hass, "sensor.extension_8003_status")
    assert _reads(status)[0] == "idle"

    runner.remove_extension("8003")
    await runtime(entry).system.async_refresh()
    await hass.async_block_till_done()

    assert _state(hass, "sensor.extension_8003_status") == STATE_UNAVAILABLE
    assert _reads(status) == (None, None)
    assert _state(hass, "sensor.extension_8001_status") == "idle"


async def test_status_of_a_trunk_the_pbx_no_longer_lists_is_unknown(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """A trunk removed from the PBX's configuration: unavailable and no value."""
    entry, runner = await smartpbx()
    trunk = _sensor(hass, "sensor.trunk_fxo_1_status")
    assert _reads(trunk)[0] is not None

    runner.pbx.reboot(replace(runner.pbx.config, fxo_trunks=0))
    await runtime(entry).system.async_refresh()
    await hass.async_block_till_done()

    assert _state(hass, "sensor.trunk_fxo_1_status") == STATE_UNAVAILABLE
    assert _reads(trunk)[0] is None


async def test_queue_and_conference_the_pbx_no_longer_lists_are_unknown(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """Queues and conference rooms deleted on the PBX: their sensors are unavailable
    and read no value and no attributes (never a stale participant list)."""
    entry, runner = await smartpbx()
    waiting = _sensor(hass, "sensor.queue_6666_waiting_calls")
    participants = _sensor(hass, "sensor.conference_7001_participants")
    assert _reads(waiting)[0] == 0
    assert _reads(participants)[0] == 0

    runner.pbx.reboot(replace(runner.pbx.config, queues=0, conferences=0))
    data = runtime(entry)
    await data.queues.async_refresh()
    await data.conferences.async_refresh()
    await hass.async_block_till_done()

    assert _state(hass, "sensor.queue_6666_waiting_calls") == STATE_UNAVAILABLE
    assert _state(hass, "sensor.conference_7001_participants") == STATE_UNAVAILABLE
    assert _reads(waiting)[0] is None
    assert _reads(participants) == (None, None)

"""Binary sensors of extensions and trunks the PBX no longer lists."""

from __future__ import annotations

from dataclasses import replace

from homeassistant.components.binary_sensor import BinarySensorEntity
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

ON_CALL_8003 = "binary_sensor.extension_8003_on_a_call"
FXO_CONNECTIVITY = "binary_sensor.trunk_fxo_1_connectivity"
SIP_CONNECTIVITY = "binary_sensor.trunk_sip_snnuwp_connectivity"


def _binary_sensor(hass: HomeAssistant, entity_id: str) -> BinarySensorEntity:
    """The live entity object behind ``entity_id``."""
    for platform in async_get_platforms(hass, DOMAIN):
        if platform.domain == "binary_sensor" and entity_id in platform.entities:
            entity = platform.entities[entity_id]
            assert isinstance(entity, BinarySensorEntity)
            return entity
    raise AssertionError(f"no binary sensor {entity_id}")


def _is_on(sensor: BinarySensorEntity) -> bool | None:
    """Read afresh (a plain attribute access would let mypy narrow it for good)."""
    return sensor.is_on


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def test_on_a_call_of_an_extension_the_pbx_no_longer_lists_is_unknown(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """Between the poll that misses an extension and the removal of its device, its
    on-a-call sensor is unavailable and reads as unknown (None) rather than raising
    for the extension it can no longer find."""
    entry, runner = await smartpbx()
    sensor = _binary_sensor(hass, ON_CALL_8003)
    assert _is_on(sensor) is False

    runner.remove_extension("8003")
    await runtime(entry).system.async_refresh()
    await hass.async_block_till_done()

    assert _state(hass, ON_CALL_8003) == STATE_UNAVAILABLE
    assert _is_on(sensor) is None
    assert not sensor.available
    # The other extensions are unaffected.
    assert _state(hass, "binary_sensor.extension_8001_on_a_call") == "off"


async def test_connectivity_of_a_trunk_the_pbx_no_longer_lists_is_unknown(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    """A trunk removed from the PBX's configuration leaves its connectivity sensor
    unavailable and unknown (None), not "disconnected": nothing is known about it."""
    entry, runner = await smartpbx()
    sensor = _binary_sensor(hass, FXO_CONNECTIVITY)
    assert _is_on(sensor) is True

    runner.pbx.reboot(replace(runner.pbx.config, fxo_trunks=0))
    await runtime(entry).system.async_refresh()
    await hass.async_block_till_done()

    assert _state(hass, FXO_CONNECTIVITY) == STATE_UNAVAILABLE
    assert _is_on(sensor) is None
    assert _state(hass, SIP_CONNECTIVITY) == "on"

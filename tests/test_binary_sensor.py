"""Binary sensors: the PBX's connectivity, extensions on a call, trunk connectivity."""

from __future__ import annotations

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from smartpbx_sim import ExtStatus

from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
    wait_for,
)

PBX_CONNECTIVITY = "binary_sensor.spx1004o4s_connectivity"
ON_CALL_8001 = "binary_sensor.extension_8001_on_a_call"


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def test_pbx_connectivity_is_diagnostic_and_stays_available(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx(command_timeout=0.3)
    registered = entity_registry.async_get(PBX_CONNECTIVITY)
    assert registered is not None
    assert registered.entity_category is EntityCategory.DIAGNOSTIC
    assert _state(hass, PBX_CONNECTIVITY) == "on"

    runner.silent = True
    await runtime(entry).system.async_refresh()

    # Off, not unavailable: the outage is what it reports.
    assert _state(hass, PBX_CONNECTIVITY) == "off"


async def test_on_a_call_follows_status_events(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    _, runner = await smartpbx()
    assert _state(hass, ON_CALL_8001) == "off"

    runner.set_extension_status("8001", ExtStatus.IN_USE)
    await wait_for(lambda: _state(hass, ON_CALL_8001) == "on")

    runner.set_extension_status("8001", ExtStatus.RINGING)
    await wait_for(lambda: _state(hass, ON_CALL_8001) == "off")


async def test_trunk_connectivity(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    entry, runner = await smartpbx()
    assert _state(hass, "binary_sensor.trunk_fxo_1_connectivity") == "on"
    assert _state(hass, "binary_sensor.trunk_sip_snnuwp_connectivity") == "on"

    runner.pbx.set_trunk_connected("FXO-1", False)
    await runtime(entry).system.async_refresh()

    assert _state(hass, "binary_sensor.trunk_fxo_1_connectivity") == "off"

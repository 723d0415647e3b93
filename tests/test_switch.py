"""Switches: pausing queue members."""

from __future__ import annotations

from unittest.mock import patch

from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.smartpbx.pbx.errors import PbxCommandFailedError
from smartpbx_sim.runner import SimulatorRunner

from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    record_commands,
    runtime,
    smartpbx_fixture,
)

PAUSED_8002 = "switch.queue_6666_agent_8002_paused"


def _paused_on_pbx(runner: SimulatorRunner, agent: str) -> bool:
    return next(m.paused for m in runner.pbx.queues["6666"].members if m.agent == agent)


async def test_pause_and_resume_a_member(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    _, runner = await smartpbx()
    state = hass.states.get(PAUSED_8002)
    assert state is not None
    assert (state.state, state.attributes["friendly_name"]) == (
        "off",
        "Queue 6666 Agent 8002 paused",
    )
    commands = record_commands(runner)

    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: PAUSED_8002}, blocking=True
    )

    assert _paused_on_pbx(runner, "8002")
    assert hass.states.get(PAUSED_8002).state == "on"
    # The command, then only this queue's status is read back.
    assert commands == ["queue_paused", "queue_status"]

    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: PAUSED_8002}, blocking=True
    )

    assert not _paused_on_pbx(runner, "8002")
    assert hass.states.get(PAUSED_8002).state == "off"


async def test_pause_refused_by_the_pbx(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    entry, _ = await smartpbx()
    refusal = PbxCommandFailedError("queue_paused", "Interface not found", {})

    with (
        patch.object(runtime(entry).client, "queue_pause", side_effect=refusal),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await hass.services.async_call(
            SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: PAUSED_8002}, blocking=True
        )

    assert raised.value.translation_key == "command_failed"
    assert hass.states.get(PAUSED_8002).state == "off"


async def test_members_come_and_go(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    queues = runtime(entry).queues

    runner.pbx.queue_add("6666", "8003")
    await queues.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get("switch.queue_6666_agent_8003_paused").state == "off"

    runner.pbx.queue_remove("6666", "8003")
    await queues.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get("switch.queue_6666_agent_8003_paused").state == "unavailable"
    await queues.async_refresh()
    await hass.async_block_till_done()
    assert entity_registry.async_get("switch.queue_6666_agent_8003_paused") is None
    assert hass.states.get("switch.queue_6666_agent_8003_paused") is None
    # The queue and its other members stay.
    assert hass.states.get(PAUSED_8002) is not None

"""Buttons: hanging up an extension's call."""

from __future__ import annotations

from unittest.mock import patch

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.smartpbx.pbx.errors import PbxCommandFailedError

from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    record_commands,
    runtime,
    smartpbx_fixture,
    wait_for,
)

HANG_UP_8001 = "button.extension_8001_hang_up"


async def _press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: entity_id}, blocking=True
    )


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_hang_up_ends_the_extensions_call(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    _, runner = await smartpbx()
    callid = runner.place_call("8001", "8002")
    runner.pbx.answer_call(callid)
    commands = record_commands(runner)

    await _press(hass, HANG_UP_8001)

    assert not runner.pbx.calls
    # Which commands find the call depends on the firmware (test_field_glue.py).
    assert commands[-1] == "hangup"
    await wait_for(lambda: hass.states.get("sensor.spx1004o4s_active_calls").state == "0")


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_hang_up_without_a_call(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    await smartpbx()

    with pytest.raises(HomeAssistantError) as raised:
        await _press(hass, HANG_UP_8001)

    assert raised.value.translation_key == "no_active_call"
    assert raised.value.translation_placeholders == {"extension": "8001"}


@pytest.mark.usefixtures("extension_extras_enabled")
async def test_hang_up_refused_by_the_pbx(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    entry, runner = await smartpbx()
    callid = runner.place_call("8001", "8002")
    runner.pbx.answer_call(callid)
    refusal = PbxCommandFailedError("hangup", "Channel not found", {})

    with (
        patch.object(runtime(entry).client, "hangup", side_effect=refusal),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await _press(hass, HANG_UP_8001)

    assert raised.value.translation_key == "command_failed"
    assert raised.value.translation_placeholders["message"] == "Channel not found"
    assert "Channel not found" in str(raised.value)

"""Diagnostics: settings, connection health, counters, recent replies, the device.

Fetched the way the frontend does (HTTP API of the diagnostics integration), after real
traffic with the simulator: events, CDRs, a refused command, a timed-out one, garbage
and an oversized message. Credentials and conference PINs come out redacted.
"""

from __future__ import annotations

from collections.abc import Iterator

from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smartpbx.const import DOMAIN
from custom_components.smartpbx.pbx.client import RECENT_REPLIES

from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
)
from .reliability_helpers import eventually

REDACTED = "**REDACTED**"
COUNTERS = {
    "commands_sent",
    "commands_answered",
    "commands_failed",
    "commands_timed_out",
    "events_received",
    "malformed_dropped",
    "oversized_dropped",
    "unmatched_replies",
}


def leaf_values(data: object) -> Iterator[str]:
    """Every value in the diagnostics that is neither a dict nor a list, as text."""
    if isinstance(data, dict):
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            yield from leaf_values(item)
    else:
        yield str(data)


async def test_diagnostics(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx(
        data={CONF_USERNAME: "ha-user", CONF_PASSWORD: "broker-password"},
        command_timeout=0.5,
    )
    data = runtime(entry)
    pins = {
        pin
        for conference in runner.pbx.conferences.values()
        for pin in (conference.participantpassword, conference.moderatorpassword)
    }

    runner.set_extension_status("8001", "Busy")
    runner.emit_cdr("8001", "8002")
    runner.publish_raw("event", b"not json")
    runner.publish_raw("cdr", b"x" * (1024 * 1024))
    await eventually(lambda: data.client.stats.oversized_dropped == 1)
    await hass.services.async_call(
        DOMAIN,
        "send_command",
        {"sub_topic": "conf", "payload": {"cmd": "conf_list"}},
        blocking=True,
        return_response=True,
    )
    with pytest.raises(HomeAssistantError, match="queue is not existing"):
        await hass.services.async_call(
            DOMAIN, "get_queue_status", {"queue": "6699"}, blocking=True, return_response=True
        )
    runner.silent = True
    with pytest.raises(HomeAssistantError, match="did not answer"):
        await hass.services.async_call(
            DOMAIN, "get_live_calls", {}, blocking=True, return_response=True
        )
    runner.silent = False

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert isinstance(diagnostics, dict)
    settings = diagnostics["entry"]
    assert settings["data"]["token"] == REDACTED
    assert settings["data"][CONF_PASSWORD] == REDACTED
    assert settings["data"][CONF_USERNAME] == REDACTED
    assert settings["data"]["transport"] == "direct"
    assert settings["options"] == {}  # no phonebook (an older version's options are ignored)
    assert diagnostics["connection"] == {
        "transport": "direct",
        "connected": True,
        "pbx_answering": True,
        "pending_commands": 0,
        "pbx_online": True,
        "unsupported_commands": [],
    }
    counters = diagnostics["counters"]
    assert set(counters) == COUNTERS
    assert counters["events_received"] >= 2
    assert counters["malformed_dropped"] >= 1
    assert counters["oversized_dropped"] == 1
    assert counters["commands_failed"] == 1
    assert counters["commands_timed_out"] == 1
    assert counters["commands_answered"] == counters["commands_sent"] - 1
    replies = diagnostics["recent_replies"]
    assert 1 <= len(replies) <= RECENT_REPLIES
    conf_list = next(reply["reply"] for reply in replies if reply["command"] == "conf_list")
    assert conf_list["conflist"]
    for conference in conf_list["conflist"]:
        assert conference["participantpassword"] == REDACTED
        assert conference["moderatorpassword"] == REDACTED
    assert diagnostics["device"] == {
        "serial": SMALL_PBX.serial,
        "device_name": SMALL_PBX.devicename,
        "firmware": SMALL_PBX.firmware,
        "uptime": diagnostics["device"]["uptime"],
        "extensions": 4,
        "trunks": 2,
        "queues": 1,
        "conferences": 1,
        "live_calls": 0,
    }
    assert set(diagnostics["coordinators"]) == {
        "Smart PBX system",
        "Smart PBX queues",
        "Smart PBX conferences",
        "Smart PBX live calls",
    }
    text = str(diagnostics)
    assert SMALL_PBX.token not in text
    assert "broker-password" not in text
    # As values, not substrings: a 3-digit PIN may occur inside an uptime or a request id.
    assert not pins & set(leaf_values(diagnostics))


async def test_diagnostics_of_a_silent_pbx(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx(command_timeout=0.3)
    runner.silent = True
    await runtime(entry).system.async_refresh()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert isinstance(diagnostics, dict)
    assert diagnostics["connection"]["pbx_answering"] is False
    system = diagnostics["coordinators"]["Smart PBX system"]
    assert system["last_update_success"] is False
    assert "did not answer deviceInfo" in system["last_error"]

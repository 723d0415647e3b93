"""Logbook entries for the Smart PBX bus events.

The logbook integration needs the frontend and the recorder; neither is needed to check
what it would show. Home Assistant finds our logbook platform the way the logbook does
(``async_process_integration_platforms``), and real bus events go through the logbook's
own ``EventProcessor.humanify``, as its live stream does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import DOMAIN as LOGBOOK_DOMAIN
from homeassistant.components.logbook.models import LogbookConfig, async_event_to_row
from homeassistant.components.logbook.processor import EventProcessor
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.integration_platform import async_process_integration_platforms
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smartpbx.const import (
    DOMAIN,
    EVENT_CDR,
    EVENT_INVITE,
    EVENT_IVR_DTMF,
    EVENT_UNKNOWN,
)
from custom_components.smartpbx.identifiers import pbx_identifier

from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    smartpbx_fixture,
    wait_for,
)

EVENT_TYPES = [EVENT_INVITE, EVENT_IVR_DTMF, EVENT_CDR, EVENT_UNKNOWN]
type Humanify = Callable[[list[Event[Any]]], list[dict[str, Any]]]


async def logbook_platforms(hass: HomeAssistant) -> None:
    """Register every integration's logbook descriptions, as the logbook integration does."""
    config = LogbookConfig({}, None, None)
    hass.data[LOGBOOK_DOMAIN] = config

    @callback
    def process(hass: HomeAssistant, domain: str, platform: Any) -> None:
        @callback
        def describe(domain: str, event_type: str, describe_event: Any) -> None:
            config.external_events[event_type] = (domain, describe_event)

        platform.async_describe_events(hass, describe)

    # Waiting: otherwise a platform still being imported (slow on a busy machine) is
    # processed in the background, after the test has looked.
    await async_process_integration_platforms(
        hass, LOGBOOK_DOMAIN, process, wait_for_platforms=True
    )


@pytest.fixture
async def humanify(hass: HomeAssistant) -> Humanify:
    """Turn bus events into the logbook's entries."""
    assert await async_setup_component(hass, DOMAIN, {})
    await logbook_platforms(hass)

    def convert(events: list[Event[Any]]) -> list[dict[str, Any]]:
        processor = EventProcessor(hass, EVENT_TYPES)
        return processor.humanify(async_event_to_row(event) for event in events)

    return convert


async def test_every_event_is_described(hass: HomeAssistant, humanify: Humanify) -> None:
    config: LogbookConfig = hass.data[LOGBOOK_DOMAIN]
    described = {event_type: domain for event_type, (domain, _) in config.external_events.items()}
    assert described == dict.fromkeys(EVENT_TYPES, DOMAIN)


async def test_events_from_the_pbx_read_as_plain_words(
    hass: HomeAssistant, humanify: Humanify, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    events: list[Event[Any]] = []

    @callback
    def record(event: Event[Any]) -> None:
        events.append(event)

    for event_type in EVENT_TYPES:
        hass.bus.async_listen(event_type, record)

    runner.ivr_keypress("9000", "8001", "5")
    await wait_for(lambda: any(e.event_type == EVENT_IVR_DTMF for e in events))
    runner.incoming_call("0612345678", "2001")
    await wait_for(lambda: any(e.event_type == EVENT_INVITE for e in events))
    runner.emit_cdr("8002", "8001", disposition="NO ANSWER")
    await wait_for(lambda: any(e.event_type == EVENT_CDR for e in events))
    runner.pbx.emit_event({"event": "dnd_changed", "extension": "8001"})
    # Field firmware also says callstatus around the calls above: wait for this one.
    await wait_for(
        lambda: any(
            e.event_type == EVENT_UNKNOWN and e.data.get("event") == "dnd_changed" for e in events
        )
    )

    messages = {
        (entry_["name"], entry_["message"])
        for entry_ in humanify(events)
        if entry_["domain"] == DOMAIN
    }
    name = SMALL_PBX.devicename
    assert {
        (name, "8001 pressed 5 in IVR 9000"),
        (name, "Incoming call from 0612345678 to 2001 (Lobby)"),
        (name, "Call from 8002 to 8001 ended: no answer"),
        (name, "Event dnd_changed received"),
    } <= messages
    assert all(entry_["when"] for entry_ in humanify(events))
    assert _pbx_device(hass, entry) is not None


def _pbx_device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry | None:
    return dr.async_get(hass).async_get_device_by_identifier(
        pbx_identifier(SMALL_PBX.serial), entry.entry_id
    )


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [
        (
            EVENT_INVITE,
            {"from": "8001", "to": "2005", "from_name": None, "to_name": None},
            "Incoming call from 8001 to 2005",
        ),
        (
            EVENT_INVITE,
            {"from": "8001", "to": "2005", "from_name": "Tom", "to_name": "Front desk"},
            "Incoming call from 8001 (Tom) to 2005 (Front desk)",
        ),
        (
            EVENT_IVR_DTMF,
            {"ivr": "9000", "caller": "2005", "dtmf": "5"},
            "2005 pressed 5 in IVR 9000",
        ),
        (
            EVENT_CDR,
            {"src": "2007", "dst": "2005", "disposition": "no_answer"},
            "Call from 2007 to 2005 ended: no answer",
        ),
        (
            EVENT_CDR,
            {"src": "2007", "dst": "2005", "disposition": "answered", "billsec": 42},
            "Call from 2007 to 2005 ended: answered (42 s)",
        ),
        (
            EVENT_CDR,
            {
                "src": "2007",
                "dst": "2005",
                "disposition": "unknown",
                "disposition_raw": "CONGESTION",
            },
            "Call from 2007 to 2005 ended: congestion",
        ),
        (EVENT_UNKNOWN, {"event": "reboot"}, "Event reboot received"),
    ],
)
async def test_messages(
    hass: HomeAssistant, humanify: Humanify, event_type: str, data: dict[str, Any], message: str
) -> None:
    """Without a known PBX device the entry is named after the integration."""
    events = async_capture_events(hass, event_type)
    hass.bus.async_fire(event_type, {"device_id": None, **data})
    await hass.async_block_till_done()
    (entry_,) = humanify(events)
    assert (entry_["name"], entry_["message"], entry_["domain"]) == ("Smart PBX", message, DOMAIN)

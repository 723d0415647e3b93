"""Plain-words logbook entries for the Smart PBX bus events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, EVENT_CDR, EVENT_INVITE, EVENT_IVR_DTMF, EVENT_UNKNOWN, MANUFACTURER
from .event import CALL_ENDED_EVENT_TYPES

type _Describe = Callable[[str, str, Callable[[Event], dict[str, str]]], None]


def _party(data: Mapping[str, Any], key: str) -> str:
    """``8001``, or ``8001 (Tom)`` when a name is known for it."""
    number = str(data.get(key) or "unknown")
    return f"{number} ({name})" if (name := data.get(f"{key}_name")) else number


def _cdr_message(data: Mapping[str, Any]) -> str:
    disposition = data.get("disposition")
    if disposition in CALL_ENDED_EVENT_TYPES:
        outcome = disposition.replace("_", " ")
    else:
        outcome = str(data.get("disposition_raw") or "unknown").lower()
    if disposition == "answered" and isinstance(billsec := data.get("billsec"), int):
        outcome = f"{outcome} ({billsec} s)"
    return f"Call from {_party(data, 'src')} to {_party(data, 'dst')} ended: {outcome}"


_MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    EVENT_INVITE: lambda data: f"Incoming call from {_party(data, 'from')} to {_party(data, 'to')}",
    EVENT_IVR_DTMF: lambda data: (
        f"{_party(data, 'caller')} pressed {data.get('dtmf')} in IVR {data.get('ivr')}"
    ),
    EVENT_CDR: _cdr_message,
    EVENT_UNKNOWN: lambda data: f"Event {data.get('event') or '(unnamed)'} received",
}


@callback
def async_describe_events(hass: HomeAssistant, async_describe_event: _Describe) -> None:
    """Teach the logbook how to word each Smart PBX event."""
    device_registry = dr.async_get(hass)

    @callback
    def describe(event: Event) -> dict[str, str]:
        # The PBX's device name says which PBX spoke when several are configured.
        device = device_registry.async_get(event.data.get("device_id") or "")
        return {
            LOGBOOK_ENTRY_NAME: (device and (device.name_by_user or device.name)) or MANUFACTURER,
            LOGBOOK_ENTRY_MESSAGE: _MESSAGES[str(event.event_type)](event.data),
        }

    for event_type in _MESSAGES:
        async_describe_event(DOMAIN, event_type, describe)

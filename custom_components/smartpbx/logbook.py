"""Plain-words logbook entries for the Smart PBX bus events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import (
    DOMAIN,
    EVENT_CDR,
    EVENT_INVITE,
    EVENT_IVR_DTMF,
    EVENT_UNKNOWN,
    MANUFACTURER,
)

type _Describe = Callable[[str, str, Callable[[Event], dict[str, str]]], None]

_DISPOSITION_WORDS = {
    "answered": "answered",
    "no_answer": "no answer",
    "busy": "busy",
    "failed": "failed",
}


def _party(data: Mapping[str, Any], number_key: str, name_key: str) -> str:
    """``8001``, or ``8001 (Tom)`` when the PBX knows a name for it."""
    number = str(data.get(number_key) or "unknown")
    if name := data.get(name_key):
        return f"{number} ({name})"
    return number


def _invite_message(data: Mapping[str, Any]) -> str:
    return (
        f"Incoming call from {_party(data, 'from', 'from_name')} to {_party(data, 'to', 'to_name')}"
    )


def _ivr_dtmf_message(data: Mapping[str, Any]) -> str:
    return (
        f"{_party(data, 'caller', 'caller_name')} pressed {data.get('dtmf')} "
        f"in IVR {data.get('ivr')}"
    )


def _cdr_message(data: Mapping[str, Any]) -> str:
    disposition = data.get("disposition")
    outcome = (
        _DISPOSITION_WORDS.get(str(disposition))
        or str(data.get("disposition_raw") or "unknown").lower()
    )
    billsec = data.get("billsec")
    if disposition == "answered" and isinstance(billsec, int):
        outcome = f"{outcome} ({billsec} s)"
    return (
        f"Call from {_party(data, 'src', 'src_name')} "
        f"to {_party(data, 'dst', 'dst_name')} ended: {outcome}"
    )


def _unknown_message(data: Mapping[str, Any]) -> str:
    return f"Event {data.get('event') or '(unnamed)'} received"


_MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    EVENT_INVITE: _invite_message,
    EVENT_IVR_DTMF: _ivr_dtmf_message,
    EVENT_CDR: _cdr_message,
    EVENT_UNKNOWN: _unknown_message,
}


@callback
def async_describe_events(hass: HomeAssistant, async_describe_event: _Describe) -> None:
    """Teach the logbook how to word each Smart PBX event."""
    device_registry = dr.async_get(hass)

    def pbx_name(data: Mapping[str, Any]) -> str:
        # The PBX's device name says which PBX spoke when several are configured.
        if (device_id := data.get("device_id")) and (
            device := device_registry.async_get(device_id)
        ):
            return device.name_by_user or device.name or MANUFACTURER
        return MANUFACTURER

    for event_type, message in _MESSAGES.items():

        def describe(
            event: Event,
            message: Callable[[Mapping[str, Any]], str] = message,
        ) -> dict[str, str]:
            return {
                LOGBOOK_ENTRY_NAME: pbx_name(event.data),
                LOGBOOK_ENTRY_MESSAGE: message(event.data),
            }

        async_describe_event(DOMAIN, event_type, describe)

"""Diagnostics: what a bug report needs, without credentials, PINs or the phonebook.

The serial number stays: it is printed on the device and is what support asks for.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .caller_names import CONF_PHONEBOOK, CONF_PHONEBOOK_FILE
from .const import CONF_TOKEN, CONF_TRANSPORT
from .coordinator import SmartPbxConfigEntry
from .pbx.models import CONFERENCE_PIN_KEYS

TO_REDACT_CONFIG = {CONF_TOKEN, CONF_USERNAME, CONF_PASSWORD}
TO_REDACT_OPTIONS = {CONF_PHONEBOOK, CONF_PHONEBOOK_FILE}
TO_REDACT_REPLIES = {*CONFERENCE_PIN_KEYS, "password", "secret", "pin", "token"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: SmartPbxConfigEntry
) -> dict[str, Any]:
    data = entry.runtime_data
    client = data.client
    system = data.system.data
    device_info = system.device_info
    return {
        "entry": {
            "title": entry.title,
            "data": async_redact_data(entry.data, TO_REDACT_CONFIG),
            "options": async_redact_data(entry.options, TO_REDACT_OPTIONS),
        },
        "phonebook": {"numbers": len(data.caller_names.phonebook)},
        "connection": {
            "transport": entry.data.get(CONF_TRANSPORT),
            "connected": data.connected,
            "pbx_answering": data.system.last_update_success,
            "pending_commands": client.pending_count,
            "pbx_online": data.pbx_online,
            "unsupported_commands": sorted(data.unsupported_commands),
        },
        "counters": client.stats.as_dict(),
        "coordinators": {
            coordinator.name: {
                "last_update_success": coordinator.last_update_success,
                "polls": coordinator.poll_count,
                "update_interval": (
                    coordinator.update_interval.total_seconds()
                    if coordinator.update_interval
                    else None
                ),
                "last_error": (
                    str(coordinator.last_exception) if coordinator.last_exception else None
                ),
            }
            for coordinator in data.coordinators
        },
        "recent_replies": [
            {"command": command, "reply": async_redact_data(reply, TO_REDACT_REPLIES)}
            for command, reply in client.recent_replies
        ],
        "device": {
            "serial": device_info.serial,
            "device_name": device_info.device_name,
            "firmware": device_info.firmware,
            "uptime": device_info.uptime.total_seconds() if device_info.uptime else None,
            "extensions": len(system.extensions),
            "trunks": len(system.trunks),
            "queues": len(data.queues.data),
            "conferences": len(data.conferences.data),
            "live_calls": len(data.live_calls.data),
        },
    }

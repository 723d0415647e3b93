"""Constants of the Smart PBX integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

from homeassistant.util.hass_dict import HassKey

DOMAIN: Final = "smartpbx"
LOGGER = logging.getLogger(__package__)

# Config entry data
CONF_TRANSPORT: Final = "transport"
TRANSPORT_HA_MQTT: Final = "ha_mqtt"
TRANSPORT_DIRECT: Final = "direct"
CONF_TOKEN: Final = "token"
CONF_TLS: Final = "tls"
CONF_VERIFY_SSL: Final = "verify_ssl"  # host, port, username, password: homeassistant.const

DEFAULT_PORT: Final = 1883

SILENT_REPAIR_AFTER: Final = timedelta(minutes=15)
"""How long the PBX may stay silent before a repair issue suggests reconfiguring."""

# Bus events
EVENT_INVITE: Final = f"{DOMAIN}_invite"
EVENT_IVR_DTMF: Final = f"{DOMAIN}_ivr_dtmf"
EVENT_CDR: Final = f"{DOMAIN}_cdr"
EVENT_UNKNOWN: Final = f"{DOMAIN}_event"

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"

MANUFACTURER: Final = "Smart PBX"

# Runtime (coordinators and entities)
POLL_INTERVAL: Final = timedelta(seconds=30)
"""How often each coordinator polls what the PBX does not push (not user-configurable)."""
LIVE_CALL_REFRESH_COOLDOWN: Final = 0.75
"""Seconds call events are batched before one ``livecall`` poll."""
STATUS_FETCH_CONCURRENCY: Final = 8
"""``queue_status`` / ``conf_status`` requests in flight per poll (each round trip may
take ~40 ms: BENCHMARKS.md)."""
MAX_CALLS_IN_ATTRIBUTES: Final = 20
"""The active-calls sensor lists at most this many calls in its attributes."""
BOOT_TIME_TOLERANCE: Final = timedelta(minutes=1)
"""Last boot only moves when the computed boot time shifts by more than this."""
BROKER_CONNECT_TIMEOUT: Final = 15.0
"""Seconds setup waits for the direct broker connection before retrying later."""
SETUP_ANSWER_WITHIN: Final = 15.0
"""Seconds setup gives the PBX to answer its first deviceInfo (asked with growing waits)."""

# Reliability (see docs/reliability.md)
MAX_PENDING_COMMANDS: Final = 1024
"""Commands awaiting a reply at once, per PBX; beyond it an action fails at once (busy)."""
ISSUE_MQTT_NOT_AVAILABLE: Final = "mqtt_not_available"
"""Repair issue (one per entry): it uses Home Assistant's MQTT, which is not set up."""
ISSUE_PBX_NOT_ANSWERING: Final = "pbx_not_answering"
"""Repair issue (one per entry): the PBX has not answered for SILENT_REPAIR_AFTER."""

PROBED_TOKENS: Final[HassKey[set[str]]] = HassKey(f"{DOMAIN}_probed_tokens")
"""Tokens MQTT discovery asked about since start-up (forgotten when an entry is removed)."""

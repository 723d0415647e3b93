"""Constants of the Smart PBX integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

from homeassistant.util.hass_dict import HassKey

DOMAIN: Final = "smartpbx"
LOGGER = logging.getLogger(__package__)
MANUFACTURER: Final = "Smart PBX"

# Config entry data (host, port, username, password: homeassistant.const)
CONF_TRANSPORT: Final = "transport"
TRANSPORT_HA_MQTT: Final = "ha_mqtt"
TRANSPORT_DIRECT: Final = "direct"
CONF_TOKEN: Final = "token"
CONF_TLS: Final = "tls"
CONF_VERIFY_SSL: Final = "verify_ssl"
DEFAULT_PORT: Final = 1883

# Bus events
EVENT_INVITE: Final = f"{DOMAIN}_invite"
EVENT_IVR_DTMF: Final = f"{DOMAIN}_ivr_dtmf"
EVENT_CDR: Final = f"{DOMAIN}_cdr"
EVENT_UNKNOWN: Final = f"{DOMAIN}_event"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"

# Timing and limits, none user-configurable (docs/reliability.md, BENCHMARKS.md)
POLL_INTERVAL: Final = timedelta(seconds=30)  # for what the PBX does not push
LIVE_CALL_REFRESH_COOLDOWN: Final = 0.75  # seconds call events are batched before a livecall poll
STATUS_FETCH_CONCURRENCY: Final = 8  # queue/conf_status requests in flight per poll (~40 ms each)
MAX_CALLS_IN_ATTRIBUTES: Final = 20  # calls the active-calls sensor lists in its attributes
BOOT_TIME_TOLERANCE: Final = timedelta(minutes=1)  # shift of the computed boot time ignored
BROKER_CONNECT_TIMEOUT: Final = 15.0  # seconds for the direct broker; setup retries later
SETUP_ANSWER_WITHIN: Final = 15.0  # seconds for the first deviceInfo (asked with growing waits)
MAX_PENDING_COMMANDS: Final = 1024  # per PBX; beyond it an action fails at once (busy)
SILENT_REPAIR_AFTER: Final = timedelta(minutes=15)  # then a repair issue suggests reconfiguring

# Repair issues, one of each per entry
ISSUE_MQTT_NOT_AVAILABLE: Final = "mqtt_not_available"  # the entry uses HA's MQTT, not set up
ISSUE_PBX_NOT_ANSWERING: Final = "pbx_not_answering"  # silent for SILENT_REPAIR_AFTER

PROBED_TOKENS: Final[HassKey[set[str]]] = HassKey(f"{DOMAIN}_probed_tokens")
"""Tokens MQTT discovery asked about since start-up (forgotten when an entry is removed)."""

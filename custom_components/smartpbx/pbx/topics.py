"""MQTT topic names of the Smart PBX API (see the vendor document, section 1.3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

API_VERSION: Final = "v1.0"


class CommandTopic(StrEnum):
    """The sub-topics commands are published to."""

    SYSTEM = "system"
    CFG = "cfg"
    CALL = "call"
    QUEUE = "queue"
    CONF = "conf"


def base_topic(token: str) -> str:
    """The topic prefix of one PBX, e.g. ``device/<token>/api/v1.0``."""
    return f"device/{token}/api/{API_VERSION}"


def command_topic(token: str, sub: str) -> str:
    """Where a command for ``sub`` (system, cfg, call, queue, conf) is published."""
    return f"{base_topic(token)}/command/{sub}"


def response_topic(token: str) -> str:
    """The one topic every command reply arrives on."""
    return f"{base_topic(token)}/response"


def event_topic(token: str) -> str:
    """Where extension_status, invite, ivrdtmf and other events arrive."""
    return f"{base_topic(token)}/event"


def cdr_topic(token: str) -> str:
    """Where call detail records arrive."""
    return f"{base_topic(token)}/cdr"


def status_topic(token: str) -> str:
    """Device status topic some field setups list (payload undocumented)."""
    return f"{base_topic(token)}/status"


def inbound_filter(token: str) -> str:
    """One filter for everything the PBX publishes (response, event, cdr, status).

    ``+`` matches one level only, so our own ``command/<sub>`` publications are not echoed.
    """
    return f"{base_topic(token)}/+"

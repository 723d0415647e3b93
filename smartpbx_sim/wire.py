"""The PBX's wire format: topics, JSON encoding and the time formats it prints."""

from __future__ import annotations

from datetime import datetime, tzinfo
import json
from typing import Final

API_VERSION: Final = "v1.0"

# Which command is served on which ``command/<sub>`` topic (the vendor document, per section).
COMMAND_TOPICS: Final[dict[str, str]] = {
    "deviceInfo": "system",
    "extension_list": "system",
    "trunk_list": "system",
    "livecall": "system",
    "extension_set": "cfg",
    "alarm_set": "cfg",
    "dial": "call",
    "hangup": "call",
    "listen": "call",
    # Field firmware only (FIELD.md); the document profile answers "unknown cmd".
    "extcallinfo": "call",
    "atxfer": "call",
    "atxferoperate": "call",
    "queue_list": "queue",
    "queue_status": "queue",
    "queue_add": "queue",
    "queue_remove": "queue",
    "queue_paused": "queue",
    "conf_list": "conf",
    "conf_status": "conf",
    "conf_invite": "conf",
    "conf_kick": "conf",
    "conf_mute": "conf",
    "conf_unmute": "conf",
}
SUB_TOPICS: Final = frozenset(COMMAND_TOPICS.values())
FIELD_COMMANDS: Final = frozenset({"extcallinfo", "atxfer", "atxferoperate"})
"""Commands only the field profile knows."""


def base_topic(token: str) -> str:
    return f"device/{token}/api/{API_VERSION}"


def command_filter(token: str) -> str:
    """What the PBX subscribes to."""
    return f"{base_topic(token)}/command/#"


def encode(payload: dict[str, object]) -> bytes:
    # Python's default separators give ``{"a": "b", "c": "d"}``, the spacing of the
    # document's examples. ensure_ascii=False: the firmware sends UTF-8 names as is.
    return json.dumps(payload, ensure_ascii=False).encode()


def hms(seconds: float) -> str:
    """``HH:MM:SS`` with hours past 24 (``49:03:10``), as uptime and durations print."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def systemtime(epoch: float, tz: tzinfo) -> str:
    """C ``ctime`` format, ``Fri Jun 10 11:37:23 2022``; single-digit days are space padded."""
    return datetime.fromtimestamp(epoch, tz).ctime()


def cdr_time(epoch: float, tz: tzinfo) -> str:
    """Asterisk CDR timestamp, ``2022-12-30 11:53:45``."""
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M:%S")

"""Fields and schemas of the Smart PBX actions (services.py registers and runs them).

The schemas bound lengths with the client library's own limits and refuse extra keys;
the library then checks the characters (digits for numbers, TECH/resource for channels).
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from typing import Any

import homeassistant.helpers.config_validation as cv
import voluptuous as vol

from .const import ATTR_CONFIG_ENTRY_ID
from .pbx import validation
from .pbx.models import ListenMode, Permission
from .pbx.topics import CommandTopic

ATTR_CALLER = "caller"
ATTR_CALLEE = "callee"
ATTR_DIALPERMISSION = "dialpermission"
ATTR_AUTOANSWER = "autoanswer"
ATTR_CALLID = "callid"
ATTR_CHANNEL = "channel"
ATTR_MONITOR = "monitor"
ATTR_EXTENSION = "extension"
ATTR_MODE = "mode"
ATTR_QUEUE = "queue"
ATTR_PAUSED = "paused"
ATTR_CONFERENCE = "conference"
ATTR_MEMBER = "member"
ATTR_LOGGED_IN = "logged_in"
ATTR_FULL_NAME = "full_name"
ATTR_PERMISSION = "permission"
ATTR_TIME = "time"
ATTR_SOUND = "sound"
ATTR_CYCLE = "cycle"
ATTR_TIMES = "times"
ATTR_DAYS = "days"
ATTR_SUB_TOPIC = "sub_topic"
ATTR_PAYLOAD = "payload"
ATTR_NUMBER = "number"
ATTR_TARGET = "target"

# What a user picks in the UI, mapped to what the PBX stores.
PERMISSIONS: dict[str, Permission] = {
    "internal": Permission.INTERNAL,
    "in_house": Permission.IN_HOUSE,
    "local": Permission.LOCAL,
    "national": Permission.NATIONAL,
    "international": Permission.INTERNATIONAL,
}
SUB_TOPICS = [topic.value for topic in CommandTopic]

MAX_PAYLOAD_BYTES = 8192
"""A raw command larger than this is surely a mistake; real ones are under 1 KiB."""

_NUMBER = vol.All(cv.string, vol.Strip, vol.Length(min=1, max=validation.MAX_NUMBER_LENGTH))
_CHANNEL = vol.All(cv.string, vol.Strip, vol.Length(min=1, max=validation.MAX_CHANNEL_LENGTH))
_CALLID = vol.All(cv.string, vol.Strip, vol.Length(min=1, max=validation.MAX_CALLID_LENGTH))
_NAME = vol.All(cv.string, vol.Length(max=validation.MAX_NAME_LENGTH))
_FILE_NAME = vol.All(cv.string, vol.Strip, vol.Length(min=1, max=2 * validation.MAX_NAME_LENGTH))
# Wake-up call counts: cycle in minutes (up to a day), a few calls, up to a year of days.
_CYCLE = vol.All(vol.Coerce(int), vol.Range(min=0, max=1440))
_TIMES = vol.All(vol.Coerce(int), vol.Range(min=1, max=100))
_DAYS = vol.All(vol.Coerce(int), vol.Range(min=0, max=366))
_ENTRY: dict[vol.Marker, Any] = {
    vol.Optional(ATTR_CONFIG_ENTRY_ID): vol.All(cv.string, vol.Length(max=64))
}


def _bounded_payload(value: Any) -> dict[str, Any]:
    """A JSON object small enough to publish, with a command name in ``cmd``."""
    if not isinstance(value, Mapping):
        raise vol.Invalid("expected an object")
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError) as err:
        raise vol.Invalid("must contain JSON values only") from err
    if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
        raise vol.Invalid(f"must be at most {MAX_PAYLOAD_BYTES} bytes of JSON")
    command = value.get("cmd")
    if not isinstance(command, str) or not command.strip():
        raise vol.Invalid("must contain a non-empty string 'cmd'")
    return dict(value)


DIAL_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_CALLER): _NUMBER,
        vol.Required(ATTR_CALLEE): _NUMBER,
        vol.Optional(ATTR_DIALPERMISSION): _NUMBER,
        vol.Optional(ATTR_AUTOANSWER, default=False): cv.boolean,
    }
)
HANGUP_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_CALLID): _CALLID,
        vol.Optional(ATTR_CHANNEL): _CHANNEL,
    }
)
LISTEN_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_MONITOR): _NUMBER,
        vol.Required(ATTR_EXTENSION): _NUMBER,
        vol.Optional(ATTR_MODE, default=ListenMode.LISTEN.value): vol.In(
            [mode.value for mode in ListenMode]
        ),
    }
)
QUEUE_MEMBER_SCHEMA = vol.Schema(
    {**_ENTRY, vol.Required(ATTR_QUEUE): _NUMBER, vol.Required(ATTR_EXTENSION): _NUMBER}
)
# Without a queue: the agent in every queue (field firmware, ``queue: ""`` on the wire).
QUEUE_PAUSE_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_QUEUE): _NUMBER,
        vol.Required(ATTR_EXTENSION): _NUMBER,
        vol.Required(ATTR_PAUSED): cv.boolean,
    }
)
CONFERENCE_INVITE_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_CONFERENCE): _NUMBER,
        vol.Required(ATTR_MEMBER): _NUMBER,
        vol.Required(ATTR_DIALPERMISSION): _NUMBER,
    }
)
CONFERENCE_MEMBER_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_CONFERENCE): _NUMBER,
        vol.Optional(ATTR_CHANNEL): _CHANNEL,
        vol.Optional(ATTR_MEMBER): _NUMBER,
    }
)
SET_EXTENSION_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_EXTENSION): _NUMBER,
        vol.Required(ATTR_LOGGED_IN): cv.boolean,
        vol.Required(ATTR_PERMISSION): vol.In(list(PERMISSIONS)),
        vol.Optional(ATTR_FULL_NAME): _NAME,
    }
)
SET_WAKEUP_CALL_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_EXTENSION): _NUMBER,
        vol.Required(ATTR_TIME): cv.time,
        vol.Required(ATTR_SOUND): _FILE_NAME,
        vol.Required(ATTR_CYCLE): _CYCLE,
        vol.Required(ATTR_TIMES): _TIMES,
        vol.Required(ATTR_DAYS): _DAYS,
    }
)
GET_EXTENSION_CALL_SCHEMA = vol.Schema({**_ENTRY, vol.Required(ATTR_EXTENSION): _NUMBER})
TRANSFER_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_EXTENSION): _NUMBER,
        vol.Optional(ATTR_CHANNEL): _CHANNEL,
        vol.Required(ATTR_TARGET): _NUMBER,
    }
)
TRANSFER_OPERATE_SCHEMA = vol.Schema(
    {**_ENTRY, vol.Optional(ATTR_EXTENSION): _NUMBER, vol.Optional(ATTR_CHANNEL): _CHANNEL}
)
GET_LIVE_CALLS_SCHEMA = vol.Schema(_ENTRY)
GET_QUEUE_STATUS_SCHEMA = vol.Schema({**_ENTRY, vol.Required(ATTR_QUEUE): _NUMBER})
GET_CONFERENCE_STATUS_SCHEMA = vol.Schema({**_ENTRY, vol.Required(ATTR_CONFERENCE): _NUMBER})
LOOKUP_NUMBER_SCHEMA = vol.Schema(
    {**_ENTRY, vol.Required(ATTR_NUMBER): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=64))}
)
SEND_COMMAND_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_SUB_TOPIC): vol.In(SUB_TOPICS),
        vol.Required(ATTR_PAYLOAD): _bounded_payload,
    }
)

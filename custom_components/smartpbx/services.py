"""Actions (services) of the Smart PBX integration.

``config_entry_id`` names the PBX; it is required only when more than one is configured.
Arguments are checked by the schemas below (types, lengths, no extra keys), then by the
library (characters); either rejection is a translated error naming the field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
import json
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import homeassistant.helpers.config_validation as cv
from homeassistant.helpers.service import async_get_config_entry
import voluptuous as vol

from .const import ATTR_CONFIG_ENTRY_ID, DOMAIN
from .coordinator import SmartPbxConfigEntry, SmartPbxData
from .pbx import SmartPbxClient, validation
from .pbx.models import (
    CONFERENCE_PIN_KEYS,
    CommandReply,
    DialResult,
    ExtensionCall,
    ListenMode,
    Permission,
    TransferOperation,
    json_ready,
)
from .pbx.topics import CommandTopic
from .translated_errors import (
    async_field_command,
    async_pbx_call,
    raise_if_unsupported,
    translated_schema,
)

# What a user picks in the UI ("in_house"), mapped to what the PBX stores.
PERMISSIONS = {permission.name.lower(): permission for permission in Permission}
MAX_PAYLOAD_BYTES = 8192
"""A raw command larger than this is surely a mistake; real ones are under 1 KiB."""

# The actions' fields whose library argument is named differently; a rejected argument
# is reported under the field's name, the one the user typed.
_ARGUMENTS = {"full_name": "fullname", "time": "start", "sound": "clock_sound"}
_FIELD_NAMES = {argument: name for name, argument in _ARGUMENTS.items()} | {"cmd": "payload"}

_NUMBER = vol.All(cv.string, vol.Strip, vol.Length(min=1, max=validation.MAX_NUMBER_LENGTH))
_CHANNEL = vol.All(cv.string, vol.Strip, vol.Length(min=1, max=validation.MAX_CHANNEL_LENGTH))


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
    if not isinstance(command := value.get("cmd"), str) or not command.strip():
        raise vol.Invalid("must contain a non-empty string 'cmd'")
    return dict(value)


# Every field of every action: one meaning, one check, wherever it appears.
_FIELDS: dict[str, Any] = {
    ATTR_CONFIG_ENTRY_ID: vol.All(cv.string, vol.Length(max=64)),
    **dict.fromkeys(("caller", "callee", "dialpermission", "monitor", "target"), _NUMBER),
    **dict.fromkeys(("extension", "queue", "conference", "member"), _NUMBER),
    **dict.fromkeys(("autoanswer", "paused", "logged_in"), cv.boolean),
    "channel": _CHANNEL,
    "callid": vol.All(cv.string, vol.Strip, vol.Length(min=1, max=validation.MAX_CALLID_LENGTH)),
    "mode": vol.All(vol.In([mode.value for mode in ListenMode]), vol.Coerce(ListenMode)),
    "permission": vol.All(vol.In(list(PERMISSIONS)), PERMISSIONS.get),
    "full_name": vol.All(cv.string, vol.Length(max=validation.MAX_NAME_LENGTH)),
    "time": vol.All(cv.time, lambda start: start.strftime("%H:%M")),
    "sound": vol.All(cv.string, vol.Strip, vol.Length(min=1, max=2 * validation.MAX_NAME_LENGTH)),
    # Wake-up calls: cycle in minutes (up to a day), a few calls, up to a year of days.
    "cycle": vol.All(vol.Coerce(int), vol.Range(min=0, max=1440)),
    "times": vol.All(vol.Coerce(int), vol.Range(min=1, max=100)),
    "days": vol.All(vol.Coerce(int), vol.Range(min=0, max=366)),
    "number": vol.All(cv.string, vol.Strip, vol.Length(min=1, max=64)),
    "sub_topic": vol.In([topic.value for topic in CommandTopic]),
    "payload": _bounded_payload,
}
_DEFAULTS: dict[str, Any] = {"autoanswer": False, "mode": ListenMode.LISTEN}


def _schema(*required: str, optional: tuple[str, ...] = ()) -> vol.Schema:
    """An action's schema: these fields, ``config_entry_id``, nothing else."""
    schema: dict[vol.Marker, Any] = {vol.Required(name): _FIELDS[name] for name in required}
    for name in (*optional, ATTR_CONFIG_ENTRY_ID):
        schema[vol.Optional(name, default=_DEFAULTS.get(name, vol.UNDEFINED))] = _FIELDS[name]
    return vol.Schema(schema)


type _Handler = Callable[[SmartPbxData, dict[str, Any]], Awaitable[ServiceResponse]]


@dataclass(frozen=True, slots=True)
class _Action:
    """One action: its schema, what it does, and which entities it may change."""

    schema: vol.Schema
    handler: _Handler
    supports_response: SupportsResponse = SupportsResponse.NONE
    refresh: Callable[[SmartPbxData, dict[str, Any]], Awaitable[None]] | None = None
    """Brings the entities the action changed up to date without waiting for a poll."""
    exactly_one_of: tuple[str, str] | None = None
    """Two alternative fields: a call must give one of them."""


def _command(
    method: Callable[..., Awaitable[Any]], answer: Callable[[Any], ServiceResponse] | None = None
) -> _Handler:
    """One client method, called with the action's fields by name; ``answer`` shapes a reply."""

    async def handle(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
        arguments = {
            _ARGUMENTS.get(name, name): value
            for name, value in data.items()
            if name != ATTR_CONFIG_ENTRY_ID
        }
        result = await method(runtime.client, **arguments)
        return None if answer is None else answer(result)

    return handle


def _callid(result: DialResult) -> ServiceResponse:
    return {"callid": result.callid}


async def _queue_pause(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    # Without a queue: the agent in every queue (field firmware, ``queue: ""`` on the wire).
    await runtime.client.queue_pause(data.get("queue"), data["extension"], data["paused"])
    return None


async def _lookup_number(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    found = runtime.caller_names.lookup(data["number"])
    return {"name": found.name, "source": found.source.value}


async def _extension_call(runtime: SmartPbxData, extension: str) -> ExtensionCall | None:
    """``extcallinfo``, unless this PBX already said it lacks it (then at once)."""
    return await async_field_command(
        runtime.unsupported_commands,
        "extcallinfo",
        lambda: runtime.client.extension_call(extension),
    )


async def _get_extension_call(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    call = await _extension_call(runtime, data["extension"])
    return {"in_call": False} if call is None else {"in_call": True, **call.as_dict()}


async def _transfer_channel(runtime: SmartPbxData, data: dict[str, Any]) -> str:
    """The channel given, or the extension's own channel in its current call."""
    if "channel" in data:
        return str(data["channel"])
    call = await _extension_call(runtime, data["extension"])
    if call is None or call.channel is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="no_active_call",
            translation_placeholders={"extension": data["extension"]},
        )
    return call.channel


def _transfer(
    command: str,
    send: Callable[[SmartPbxClient, str, dict[str, Any]], Awaitable[CommandReply]],
    *required: str,
    supports_response: SupportsResponse = SupportsResponse.NONE,
) -> _Action:
    """An attended-transfer action; its response names the channel that finishes it."""

    async def handle(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
        # Before the channel lookup: a command known to be missing sends nothing at all.
        raise_if_unsupported(runtime.unsupported_commands, command)
        channel = await _transfer_channel(runtime, data)
        await async_field_command(
            runtime.unsupported_commands, command, lambda: send(runtime.client, channel, data)
        )
        return {"channel": channel}

    schema = _schema(*required, optional=("extension", "channel"))
    return _Action(schema, handle, supports_response, _refresh_live_calls, ("extension", "channel"))


async def _conference_channels(client: SmartPbxClient, data: dict[str, Any]) -> list[str]:
    """The channels a kick/mute/unmute acts on: the one given, or the member's own from a fresh
    ``conf_status`` (a cached one could be somebody else's by now; who joined twice has two)."""
    if "channel" in data:
        return [data["channel"]]
    conference: str = data["conference"]
    # Checked before the lookup: nothing is published for a bad number.
    member = validation.validate_number(data["member"], "member")
    status = await client.conf_status(conference)
    channels = [entry.channel for entry in status.members if entry.callerid == member]
    if not channels:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="member_not_in_conference",
            translation_placeholders={"member": member, "conference": conference},
        )
    return channels


def _conference_member_action(
    method: Callable[[SmartPbxClient, str, str], Awaitable[CommandReply]],
) -> _Action:
    async def handle(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
        for channel in await _conference_channels(runtime.client, data):
            await method(runtime.client, data["conference"], channel)
        return None

    schema = _schema("conference", optional=("channel", "member"))
    return _Action(
        schema, handle, SupportsResponse.NONE, _refresh_conference, ("channel", "member")
    )


async def _refresh_live_calls(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    # Debounced: the call's own events (invite, status changes) ask for the same poll.
    runtime.live_calls.async_schedule_refresh()


async def _refresh_queues(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    """The queue the action named, else every queue the agent is in (its paused switches)."""
    if "queue" in data:
        await runtime.queues.async_refresh_one(data["queue"])
        return
    for number, queue in list(runtime.queues.data.items()):
        if queue.status is not None and any(
            member.agent == data["extension"] for member in queue.status.members
        ):
            await runtime.queues.async_refresh_one(number)


async def _refresh_conference(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    await runtime.conferences.async_refresh_one(data["conference"])


ACTIONS: dict[str, _Action] = {
    "dial": _Action(
        _schema("caller", "callee", optional=("dialpermission", "autoanswer")),
        _command(SmartPbxClient.dial, _callid),
        SupportsResponse.OPTIONAL,
        _refresh_live_calls,
    ),
    "hangup": _Action(
        _schema(optional=("callid", "channel")),
        _command(SmartPbxClient.hangup),
        refresh=_refresh_live_calls,
        exactly_one_of=("callid", "channel"),
    ),
    "listen": _Action(
        _schema("monitor", "extension", optional=("mode",)),
        _command(SmartPbxClient.listen, _callid),
        SupportsResponse.OPTIONAL,
        _refresh_live_calls,
    ),
    "queue_add": _Action(
        _schema("queue", "extension"), _command(SmartPbxClient.queue_add), refresh=_refresh_queues
    ),
    "queue_remove": _Action(
        _schema("queue", "extension"),
        _command(SmartPbxClient.queue_remove),
        refresh=_refresh_queues,
    ),
    "queue_pause": _Action(
        _schema("extension", "paused", optional=("queue",)), _queue_pause, refresh=_refresh_queues
    ),
    "conference_invite": _Action(
        _schema("conference", "member", "dialpermission"),
        _command(SmartPbxClient.conf_invite),
        refresh=_refresh_conference,
    ),
    "conference_kick": _conference_member_action(SmartPbxClient.conf_kick),
    "conference_mute": _conference_member_action(SmartPbxClient.conf_mute),
    "conference_unmute": _conference_member_action(SmartPbxClient.conf_unmute),
    "set_extension": _Action(
        _schema("extension", "logged_in", "permission", optional=("full_name",)),
        _command(SmartPbxClient.extension_set),
        refresh=lambda runtime, _: runtime.system.async_request_refresh(),
    ),
    "set_wakeup_call": _Action(
        _schema("extension", "time", "sound", "cycle", "times", "days"),
        _command(SmartPbxClient.alarm_set),
    ),
    "get_live_calls": _Action(
        _schema(),
        _command(SmartPbxClient.live_calls, lambda calls: {"calls": json_ready(calls)}),
        SupportsResponse.ONLY,
    ),
    "get_queue_status": _Action(
        _schema("queue"), _command(SmartPbxClient.queue_status, json_ready), SupportsResponse.ONLY
    ),
    "get_conference_status": _Action(
        _schema("conference"),
        _command(SmartPbxClient.conf_status, json_ready),
        SupportsResponse.ONLY,
    ),
    "lookup_number": _Action(_schema("number"), _lookup_number, SupportsResponse.ONLY),
    "send_command": _Action(
        _schema("sub_topic", "payload"),
        _command(
            SmartPbxClient.command,
            # Conference PINs never leave through a response: automation traces store it.
            lambda reply: async_redact_data(reply.raw, CONFERENCE_PIN_KEYS),
        ),
        SupportsResponse.OPTIONAL,
    ),
    "get_extension_call": _Action(_schema("extension"), _get_extension_call, SupportsResponse.ONLY),
    "transfer": _transfer(
        "atxfer",
        lambda client, channel, data: client.attended_transfer(channel, data["target"]),
        "target",
        supports_response=SupportsResponse.OPTIONAL,
    ),
    # No response: Home Assistant drops the channel these return.
    "transfer_complete": _transfer(
        "atxferoperate",
        lambda client, channel, _: client.transfer_operate(channel, TransferOperation.COMPLETE),
    ),
    "transfer_cancel": _transfer(
        "atxferoperate",
        lambda client, channel, _: client.transfer_operate(channel, TransferOperation.CANCEL),
    ),
}


async def _async_handle(action: _Action, call: ServiceCall) -> ServiceResponse:
    """Run ``action`` on the PBX the call names; library errors become translated ones."""
    entry: SmartPbxConfigEntry = async_get_config_entry(
        call.hass, DOMAIN, call.data.get(ATTR_CONFIG_ENTRY_ID)
    )
    runtime = entry.runtime_data
    data = dict(call.data)
    if action.exactly_one_of is not None:
        first, second = action.exactly_one_of
        if (first in data) == (second in data):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="exactly_one_of",
                translation_placeholders={"first": first, "second": second},
            )
    response = await async_pbx_call(action.handler(runtime, data), _FIELD_NAMES)
    if action.refresh is not None:
        await action.refresh(runtime, data)
    return response


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register every action once, at integration set-up (not per config entry)."""
    for service, action in ACTIONS.items():
        hass.services.async_register(
            DOMAIN,
            service,
            partial(_async_handle, action),
            schema=translated_schema(action.schema),
            supports_response=action.supports_response,
        )

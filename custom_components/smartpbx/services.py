"""Actions (services) of the Smart PBX integration.

Every action may name the PBX with ``config_entry_id``; it is required only when more than
one PBX is configured. Arguments are checked twice before anything is published: by the
schemas in service_schemas.py (types, lengths, no extra keys) and by the client library
(number syntax, allowed characters). Both kinds of rejection surface as a translated
``ServiceValidationError`` naming the field, so a user sees what to fix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import time as dt_time, timedelta
from enum import Enum
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
from homeassistant.helpers.service import async_get_config_entry
import voluptuous as vol

from .const import ATTR_CONFIG_ENTRY_ID, DOMAIN
from .coordinator import SmartPbxConfigEntry, SmartPbxData
from .pbx import validation
from .pbx.models import (
    CommandReply,
    ExtensionCall,
    ListenMode,
    TransferOperation,
)
from .service_schemas import (
    ATTR_AUTOANSWER,
    ATTR_CALLEE,
    ATTR_CALLER,
    ATTR_CALLID,
    ATTR_CHANNEL,
    ATTR_CONFERENCE,
    ATTR_CYCLE,
    ATTR_DAYS,
    ATTR_DIALPERMISSION,
    ATTR_EXTENSION,
    ATTR_FULL_NAME,
    ATTR_LOGGED_IN,
    ATTR_MEMBER,
    ATTR_MODE,
    ATTR_MONITOR,
    ATTR_NUMBER,
    ATTR_PAUSED,
    ATTR_PAYLOAD,
    ATTR_PERMISSION,
    ATTR_QUEUE,
    ATTR_SOUND,
    ATTR_SUB_TOPIC,
    ATTR_TARGET,
    ATTR_TIME,
    ATTR_TIMES,
    CONFERENCE_INVITE_SCHEMA,
    CONFERENCE_MEMBER_SCHEMA,
    DIAL_SCHEMA,
    GET_CONFERENCE_STATUS_SCHEMA,
    GET_EXTENSION_CALL_SCHEMA,
    GET_LIVE_CALLS_SCHEMA,
    GET_QUEUE_STATUS_SCHEMA,
    HANGUP_SCHEMA,
    LISTEN_SCHEMA,
    LOOKUP_NUMBER_SCHEMA,
    PERMISSIONS,
    QUEUE_MEMBER_SCHEMA,
    QUEUE_PAUSE_SCHEMA,
    SEND_COMMAND_SCHEMA,
    SET_EXTENSION_SCHEMA,
    SET_WAKEUP_CALL_SCHEMA,
    TRANSFER_OPERATE_SCHEMA,
    TRANSFER_SCHEMA,
)
from .translated_errors import (
    async_field_command,
    async_pbx_call,
    raise_if_unsupported,
    translated_schema,
)

# Raw replies may carry conference PINs (conf_list); they never leave Home Assistant's
# core through an action response, which automation traces store on disk.
_SECRET_REPLY_KEYS = frozenset({"participantpassword", "moderatorpassword"})

# The library's argument names where they differ from the actions' field names, so a
# rejected argument is reported under the name the user typed.
_CONFERENCE_FIELDS = {"conf": ATTR_CONFERENCE, "conference": ATTR_CONFERENCE}

type _Handler = Callable[[SmartPbxData, dict[str, Any]], Awaitable[ServiceResponse]]


@dataclass(frozen=True, slots=True)
class _Action:
    """One action: its schema, what it does, and which entities it may change."""

    schema: vol.Schema
    handler: _Handler
    supports_response: SupportsResponse = SupportsResponse.NONE
    refresh: Callable[[SmartPbxData, dict[str, Any]], Awaitable[None]] | None = None
    """Brings the entities the action changed up to date without waiting for a poll."""


def _exactly_one(data: Mapping[str, Any], first: str, second: str) -> None:
    """Reject calls that give both or neither of two alternative fields."""
    if (first in data) == (second in data):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="exactly_one_of",
            translation_placeholders={"first": first, "second": second},
        )


# --- JSON-serialisable responses ---------------------------------------------------------------


def _response(value: Any) -> Any:
    """A library model as JSON: its fields but ``raw``; durations in whole seconds."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: _response(getattr(value, item.name))
            for item in fields(value)
            if item.name != "raw"
        }
    if isinstance(value, tuple):
        return [_response(item) for item in value]
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, Enum):
        return value.value
    return value


# --- the actions -------------------------------------------------------------------------------


async def _dial(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    result = await async_pbx_call(
        runtime.client.dial(
            data[ATTR_CALLER],
            data[ATTR_CALLEE],
            dialpermission=data.get(ATTR_DIALPERMISSION),
            autoanswer=data[ATTR_AUTOANSWER],
        ),
    )
    return {"callid": result.callid}


async def _hangup(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    _exactly_one(data, ATTR_CALLID, ATTR_CHANNEL)
    await async_pbx_call(
        runtime.client.hangup(data.get(ATTR_CALLID), channel=data.get(ATTR_CHANNEL))
    )
    return None


async def _listen(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    result = await async_pbx_call(
        runtime.client.listen(
            data[ATTR_MONITOR], data[ATTR_EXTENSION], ListenMode(data[ATTR_MODE])
        ),
    )
    return {"callid": result.callid}


async def _queue_add(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    await async_pbx_call(runtime.client.queue_add(data[ATTR_QUEUE], data[ATTR_EXTENSION]))
    return None


async def _queue_remove(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    await async_pbx_call(runtime.client.queue_remove(data[ATTR_QUEUE], data[ATTR_EXTENSION]))
    return None


async def _queue_pause(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    await async_pbx_call(
        runtime.client.queue_pause(data.get(ATTR_QUEUE), data[ATTR_EXTENSION], data[ATTR_PAUSED])
    )
    return None


# --- field commands (FIELD.md): older firmware answers "unknown cmd" --------------------


async def _extension_call(runtime: SmartPbxData, extension: str) -> ExtensionCall | None:
    """``extcallinfo``, unless this PBX already said it lacks it (then at once)."""
    return await async_field_command(
        runtime.unsupported_commands,
        "extcallinfo",
        lambda: runtime.client.extension_call(extension),
    )


async def _get_extension_call(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    call = await _extension_call(runtime, data[ATTR_EXTENSION])
    if call is None:
        return {"in_call": False}
    return {
        "in_call": True,
        "callid": call.callid,
        "channel": call.channel,
        "peer_channel": call.peer_channel,
        "from": call.from_number,
        "to": call.to_number,
        "direction": call.direction.value,
        "direction_raw": call.direction_raw,
    }


async def _transfer_channel(runtime: SmartPbxData, data: dict[str, Any]) -> str:
    """The channel given, or the extension's own channel in its current call."""
    _exactly_one(data, ATTR_EXTENSION, ATTR_CHANNEL)
    if ATTR_CHANNEL in data:
        channel: str = data[ATTR_CHANNEL]
        return channel
    extension: str = data[ATTR_EXTENSION]
    call = await _extension_call(runtime, extension)
    if call is None or call.channel is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="no_active_call",
            translation_placeholders={"extension": extension},
        )
    return call.channel


async def _transfer(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    # Before the channel lookup: a command known to be missing sends nothing at all.
    raise_if_unsupported(runtime.unsupported_commands, "atxfer")
    channel = await _transfer_channel(runtime, data)
    await async_field_command(
        runtime.unsupported_commands,
        "atxfer",
        lambda: runtime.client.attended_transfer(channel, data[ATTR_TARGET]),
    )
    # The channel finishes the transfer (transfer_complete / transfer_cancel).
    return {"channel": channel}


def _transfer_operation(operation: TransferOperation) -> _Handler:
    async def handle(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
        raise_if_unsupported(runtime.unsupported_commands, "atxferoperate")
        channel = await _transfer_channel(runtime, data)
        await async_field_command(
            runtime.unsupported_commands,
            "atxferoperate",
            lambda: runtime.client.transfer_operate(channel, operation),
        )
        return None

    return handle


async def _conference_invite(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    await async_pbx_call(
        runtime.client.conf_invite(
            data[ATTR_CONFERENCE], data[ATTR_MEMBER], data[ATTR_DIALPERMISSION]
        ),
        _CONFERENCE_FIELDS,
    )
    return None


async def _conference_channels(runtime: SmartPbxData, data: dict[str, Any]) -> list[str]:
    """The channels a kick/mute/unmute acts on: the one given, or the member's own.

    A member number is looked up in a fresh ``conf_status``: channels change with every
    call, so a cached one could name somebody else's leg. A number that joined twice has
    two channels; the action applies to both.
    """
    _exactly_one(data, ATTR_CHANNEL, ATTR_MEMBER)
    if ATTR_CHANNEL in data:
        return [data[ATTR_CHANNEL]]
    conference: str = data[ATTR_CONFERENCE]
    member: str = data[ATTR_MEMBER]
    # Check the number before the lookup: nothing is published for a bad argument.
    await async_pbx_call(_validated_member(member))
    status = await async_pbx_call(runtime.client.conf_status(conference), _CONFERENCE_FIELDS)
    channels = [entry.channel for entry in status.members if entry.callerid == member]
    if not channels:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="member_not_in_conference",
            translation_placeholders={"member": member, "conference": conference},
        )
    return channels


async def _validated_member(member: str) -> str:
    # A coroutine so that _pbx_call maps the library's error to a translated one.
    return validation.validate_number(member, ATTR_MEMBER)


def _conference_member_action(
    method: Callable[[SmartPbxData], Callable[[str, str], Awaitable[CommandReply]]],
) -> _Handler:
    async def handle(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
        for channel in await _conference_channels(runtime, data):
            await async_pbx_call(
                method(runtime)(data[ATTR_CONFERENCE], channel), _CONFERENCE_FIELDS
            )
        return None

    return handle


async def _set_extension(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    await async_pbx_call(
        runtime.client.extension_set(
            data[ATTR_EXTENSION],
            logged_in=data[ATTR_LOGGED_IN],
            permission=PERMISSIONS[data[ATTR_PERMISSION]],
            fullname=data.get(ATTR_FULL_NAME),
        ),
        {"fullname": ATTR_FULL_NAME},
    )
    return None


async def _set_wakeup_call(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    start: dt_time = data[ATTR_TIME]
    await async_pbx_call(
        runtime.client.alarm_set(
            data[ATTR_EXTENSION],
            start=start.strftime("%H:%M"),
            clock_sound=data[ATTR_SOUND],
            cycle=data[ATTR_CYCLE],
            times=data[ATTR_TIMES],
            days=data[ATTR_DAYS],
        ),
        {"start": ATTR_TIME, "clock_sound": ATTR_SOUND},
    )
    return None


async def _get_live_calls(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    calls = await async_pbx_call(runtime.client.live_calls())
    return {"calls": _response(calls)}


async def _get_queue_status(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    status = await async_pbx_call(runtime.client.queue_status(data[ATTR_QUEUE]))
    response: dict[str, Any] = _response(status)
    return response


async def _get_conference_status(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    status = await async_pbx_call(
        runtime.client.conf_status(data[ATTR_CONFERENCE]), _CONFERENCE_FIELDS
    )
    response: dict[str, Any] = _response(status)
    return response


async def _lookup_number(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    found = runtime.caller_names.lookup(data[ATTR_NUMBER])
    return {"name": found.name, "source": found.source.value}


async def _send_command(runtime: SmartPbxData, data: dict[str, Any]) -> ServiceResponse:
    payload: dict[str, Any] = data[ATTR_PAYLOAD]
    reply = await async_pbx_call(
        runtime.client.command(data[ATTR_SUB_TOPIC], payload),
        {"cmd": ATTR_PAYLOAD},
    )
    return async_redact_data(reply.raw, _SECRET_REPLY_KEYS)


# --- refreshing what an action changed -----------------------------------------------------


async def _refresh_live_calls(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    # Debounced: the call's own events (invite, status changes) ask for the same poll.
    runtime.live_calls.async_schedule_refresh()


async def _refresh_queue(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    await runtime.queues.async_refresh_one(data[ATTR_QUEUE])


async def _refresh_queues(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    """The queue the action named, else every queue the agent is in (its paused switches)."""
    if ATTR_QUEUE in data:
        await runtime.queues.async_refresh_one(data[ATTR_QUEUE])
        return
    agent: str = data[ATTR_EXTENSION]
    for number, queue in list(runtime.queues.data.items()):
        if queue.status is not None and any(m.agent == agent for m in queue.status.members):
            await runtime.queues.async_refresh_one(number)


async def _refresh_conference(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    await runtime.conferences.async_refresh_one(data[ATTR_CONFERENCE])


async def _refresh_system(runtime: SmartPbxData, data: dict[str, Any]) -> None:
    await runtime.system.async_request_refresh()


ACTIONS: dict[str, _Action] = {
    "dial": _Action(DIAL_SCHEMA, _dial, SupportsResponse.OPTIONAL, _refresh_live_calls),
    "hangup": _Action(HANGUP_SCHEMA, _hangup, refresh=_refresh_live_calls),
    "listen": _Action(LISTEN_SCHEMA, _listen, SupportsResponse.OPTIONAL, _refresh_live_calls),
    "queue_add": _Action(QUEUE_MEMBER_SCHEMA, _queue_add, refresh=_refresh_queue),
    "queue_remove": _Action(QUEUE_MEMBER_SCHEMA, _queue_remove, refresh=_refresh_queue),
    "queue_pause": _Action(QUEUE_PAUSE_SCHEMA, _queue_pause, refresh=_refresh_queues),
    "conference_invite": _Action(
        CONFERENCE_INVITE_SCHEMA, _conference_invite, refresh=_refresh_conference
    ),
    "conference_kick": _Action(
        CONFERENCE_MEMBER_SCHEMA,
        _conference_member_action(lambda r: r.client.conf_kick),
        refresh=_refresh_conference,
    ),
    "conference_mute": _Action(
        CONFERENCE_MEMBER_SCHEMA,
        _conference_member_action(lambda r: r.client.conf_mute),
        refresh=_refresh_conference,
    ),
    "conference_unmute": _Action(
        CONFERENCE_MEMBER_SCHEMA,
        _conference_member_action(lambda r: r.client.conf_unmute),
        refresh=_refresh_conference,
    ),
    "set_extension": _Action(SET_EXTENSION_SCHEMA, _set_extension, refresh=_refresh_system),
    "set_wakeup_call": _Action(SET_WAKEUP_CALL_SCHEMA, _set_wakeup_call),
    "get_live_calls": _Action(GET_LIVE_CALLS_SCHEMA, _get_live_calls, SupportsResponse.ONLY),
    "get_queue_status": _Action(GET_QUEUE_STATUS_SCHEMA, _get_queue_status, SupportsResponse.ONLY),
    "get_conference_status": _Action(
        GET_CONFERENCE_STATUS_SCHEMA, _get_conference_status, SupportsResponse.ONLY
    ),
    "lookup_number": _Action(LOOKUP_NUMBER_SCHEMA, _lookup_number, SupportsResponse.ONLY),
    "send_command": _Action(SEND_COMMAND_SCHEMA, _send_command, SupportsResponse.OPTIONAL),
    "get_extension_call": _Action(
        GET_EXTENSION_CALL_SCHEMA, _get_extension_call, SupportsResponse.ONLY
    ),
    "transfer": _Action(TRANSFER_SCHEMA, _transfer, SupportsResponse.OPTIONAL, _refresh_live_calls),
    "transfer_complete": _Action(
        TRANSFER_OPERATE_SCHEMA,
        _transfer_operation(TransferOperation.COMPLETE),
        refresh=_refresh_live_calls,
    ),
    "transfer_cancel": _Action(
        TRANSFER_OPERATE_SCHEMA,
        _transfer_operation(TransferOperation.CANCEL),
        refresh=_refresh_live_calls,
    ),
}


def _make_service_handler(
    action: _Action,
) -> Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]:
    async def handle(call: ServiceCall) -> ServiceResponse:
        entry: SmartPbxConfigEntry = async_get_config_entry(
            call.hass, DOMAIN, call.data.get(ATTR_CONFIG_ENTRY_ID)
        )
        runtime = entry.runtime_data
        data = dict(call.data)
        response = await action.handler(runtime, data)
        if action.refresh is not None:
            await action.refresh(runtime, data)
        return response

    return handle


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register every action once, at integration set-up (not per config entry)."""
    for service, action in ACTIONS.items():
        hass.services.async_register(
            DOMAIN,
            service,
            _make_service_handler(action),
            schema=translated_schema(action.schema),
            supports_response=action.supports_response,
        )

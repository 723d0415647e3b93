"""Tolerant parsers from the PBX's JSON payloads to the typed models.

The vendor document's tables, its examples and the firmware in the field disagree in
places (see the module's tests for every variant). The parsers accept all of them:

* ``status`` compares case-insensitively (``Success``, ``success``, ``Failed``...);
* numbers arrive as strings, ints or floats, and ``""`` means "no value" (None);
* field names have variants: ``pused``/``paused``, ``called``/``callid``,
  ``Event``/``event``, ``dispositon``/``disposition``, ``recordurl``/``recordfile``,
  ``Duration``/``duration``; queue ``members`` sits inside or beside ``params``;
* missing optional fields get defaults, and every model keeps its whole payload in
  ``raw`` so fields a later firmware adds are never lost;
* a list entry that is not an object, or lacks its identifying field, or carries a
  field of the wrong type, is skipped (logged at debug level), never fatal.

Only a payload whose *top-level* shape is wrong (not an object, a list field that is not
a list, a scalar field that holds an object) raises :class:`MalformedPayloadError`.

State mapping choices worth knowing:

* ``InUse&Ringing`` (a call waiting on a busy extension) maps to RINGING: the new call is
  the actionable part, and ``state_raw`` still says the line is in use;
* ``InUse&Hold`` and ``Hold``/``OnHold`` map to ON_HOLD;
* CDR disposition ``CONGESTION`` (newer Asterisk) maps to FAILED: the call failed in the
  network, which is what FAILED means to a user;
* any text not recognised maps to UNKNOWN; the original text is kept in ``state_raw`` /
  ``disposition_raw``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
import logging
import math
import re
from typing import Any, Final

from .models import (
    CallDisposition,
    CallRecord,
    CommandReply,
    Conference,
    ConferenceMember,
    ConferenceStatus,
    DeviceInfo,
    DialResult,
    Extension,
    ExtensionState,
    ExtensionStatusEvent,
    ExtensionType,
    InviteEvent,
    IvrDtmfEvent,
    LiveCall,
    PbxEvent,
    Queue,
    QueueMember,
    QueueMemberState,
    QueueStatus,
    Trunk,
    TrunkState,
    TrunkType,
    UnknownEvent,
)

_LOGGER = logging.getLogger(__name__)


class MalformedPayloadError(ValueError):
    """A payload's shape is not what the API describes, beyond every known variant."""


# --- scalar coercion -------------------------------------------------------------------


def _pick(payload: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, Any]:
    """The first of ``keys`` present (and not None) in payload, as (key, value)."""
    for key in keys:
        value = payload.get(key)
        if value is not None:
            return key, value
    return keys[0], None


def _text(payload: Mapping[str, Any], *keys: str, default: str = "") -> str:
    """A string field; numbers become their decimal text (``"port": 5`` → ``"5"``)."""
    key, value = _pick(payload, keys)
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    raise MalformedPayloadError(f"{key!r} should be a string, got {type(value).__name__}")


def _optional_text(payload: Mapping[str, Any], *keys: str) -> str | None:
    """A string field where absent or blank means None."""
    value = _text(payload, *keys).strip()
    return value or None


def _number(payload: Mapping[str, Any], *keys: str) -> float | None:
    """A numeric field: int, float or numeric string. ``""`` or unparsable text → None."""
    key, value = _pick(payload, keys)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        raise MalformedPayloadError(f"{key!r} should be a number, got {type(value).__name__}")
    return number if math.isfinite(number) else None


def _integer(payload: Mapping[str, Any], *keys: str) -> int | None:
    """An integer field (floats are truncated toward zero, as the PBX means seconds)."""
    number = _number(payload, *keys)
    return None if number is None else int(number)


_TRUE_WORDS: Final = frozenset({"yes", "y", "true", "on", "1"})
_FALSE_WORDS: Final = frozenset({"no", "n", "false", "off", "0", ""})


def _boolean(payload: Mapping[str, Any], *keys: str, default: bool = False) -> bool:
    """A yes/no field: ``"Yes"``/``"no"``/``"1"``/``"0"``, JSON booleans or 0/1."""
    key, value = _pick(payload, keys)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        return default
    raise MalformedPayloadError(f"{key!r} should be yes/no, got {type(value).__name__}")


def _csv(payload: Mapping[str, Any], *keys: str) -> tuple[str, ...]:
    """A list of numbers sent as ``"2003,2004"`` (or as a JSON list of them)."""
    key, value = _pick(payload, keys)
    if value is None:
        return ()
    parts = (
        [_text({key: item}, key) for item in value]
        if isinstance(value, list)
        else (_text(payload, key).split(","))
    )
    return tuple(stripped for part in parts if (stripped := part.strip()))


# --- times -----------------------------------------------------------------------------

# "49:03:10", "1 day, 02:03:04", "3 days 02:03:04", "2d 02:03:04"; hours may exceed 24.
_DURATION_RE: Final = re.compile(
    r"^\s*(?:(?P<days>\d+)\s*(?:d|days?)\s*,?\s*)?"
    r"(?P<hours>\d+):(?P<minutes>\d{1,2}):(?P<seconds>\d{1,2}(?:\.\d+)?)\s*$",
    re.IGNORECASE,
)


def parse_duration(value: object) -> timedelta | None:
    """A duration: ``"HH:MM:SS"`` with optional days prefix, or a number of seconds.

    Returns None for anything unparsable (including ``""``), never raises.
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            return timedelta(seconds=value) if math.isfinite(value) and value >= 0 else None
        if not isinstance(value, str):
            return None
        text = value.strip()
        if match := _DURATION_RE.match(text):
            return timedelta(
                days=int(match["days"] or 0),
                hours=int(match["hours"]),
                minutes=int(match["minutes"]),
                seconds=float(match["seconds"]),
            )
        return parse_duration(float(text))
    except (ValueError, OverflowError):  # not a number, or beyond timedelta's range
        return None


_DATETIME_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S",  # CDR start/end
    "%a %b %d %H:%M:%S %Y",  # deviceInfo systemtime (C locale ctime)
    "%a %b %d %H:%M:%S %Z %Y",  # `date` output with a zone name
    "%Y/%m/%d %H:%M:%S",
)
# Zone names strptime's %Z does not know (e.g. "CST"): removed before a second try.
_ZONE_WORD_RE: Final = re.compile(r"\s[A-Z]{2,5}(?=\s+\d{4}$)")


def parse_datetime(value: object) -> datetime | None:
    """A PBX wall-clock time as a naive datetime (the PBX does not say its zone).

    Accepts ``"2022-12-30 11:53:55"``, ``"Fri Jun 10 11:37:23 2022"`` (also with a zone
    name before the year) and ISO 8601. An ISO offset is dropped, keeping the wall-clock
    reading, so every value compares with every other. Returns None when unparsable.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    candidates = (text, _ZONE_WORD_RE.sub("", text))
    for candidate in candidates:
        for fmt in _DATETIME_FORMATS:
            try:
                return datetime.strptime(candidate, fmt).replace(tzinfo=None)
            except ValueError:
                continue
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


# --- state texts -----------------------------------------------------------------------


def _state_key(text: str) -> str:
    """Normalise a state text for lookup: ``"In Use"``, ``"in_use"``, ``"InUse"`` → inuse."""
    return re.sub(r"[\s_\-]", "", text).lower()


_EXTENSION_STATES: Final = {
    "idle": ExtensionState.IDLE,
    "notinuse": ExtensionState.IDLE,
    "inuse": ExtensionState.IN_USE,
    "busy": ExtensionState.BUSY,
    "ringing": ExtensionState.RINGING,
    "ring": ExtensionState.RINGING,
    "inuse&ringing": ExtensionState.RINGING,
    "ringinuse": ExtensionState.RINGING,
    "hold": ExtensionState.ON_HOLD,
    "onhold": ExtensionState.ON_HOLD,
    "inuse&hold": ExtensionState.ON_HOLD,
    "unavailable": ExtensionState.UNAVAILABLE,
}

_TRUNK_STATES: Final = {
    "idle": TrunkState.IDLE,
    "inuse": TrunkState.IN_USE,
    "busy": TrunkState.BUSY,
    "disconnected": TrunkState.DISCONNECTED,
    "unavailable": TrunkState.UNAVAILABLE,
}

# The table numbers the types ("1.SIP 2.FXS"): accept the numbers as well as the names.
_EXTENSION_TYPES: Final = {
    "sip": ExtensionType.SIP,
    "1": ExtensionType.SIP,
    "fxs": ExtensionType.FXS,
    "2": ExtensionType.FXS,
}
_TRUNK_TYPES: Final = {
    "sip": TrunkType.SIP,
    "1": TrunkType.SIP,
    "fxo": TrunkType.FXO,
    "2": TrunkType.FXO,
}

# Asterisk device states (enum ast_device_state), the codes queue_status reports.
_QUEUE_MEMBER_CODES: Final = (
    QueueMemberState.UNKNOWN,
    QueueMemberState.NOT_IN_USE,
    QueueMemberState.IN_USE,
    QueueMemberState.BUSY,
    QueueMemberState.INVALID,
    QueueMemberState.UNAVAILABLE,
    QueueMemberState.RINGING,
    QueueMemberState.RING_IN_USE,
    QueueMemberState.ON_HOLD,
)
_QUEUE_MEMBER_WORDS: Final = {
    "notinuse": QueueMemberState.NOT_IN_USE,
    "idle": QueueMemberState.NOT_IN_USE,
    "inuse": QueueMemberState.IN_USE,
    "busy": QueueMemberState.BUSY,
    "invalid": QueueMemberState.INVALID,
    "unavailable": QueueMemberState.UNAVAILABLE,
    "ringing": QueueMemberState.RINGING,
    "ringinuse": QueueMemberState.RING_IN_USE,
    "inuse&ringing": QueueMemberState.RING_IN_USE,
    "onhold": QueueMemberState.ON_HOLD,
    "hold": QueueMemberState.ON_HOLD,
}

_DISPOSITIONS: Final = {
    "answered": CallDisposition.ANSWERED,
    "noanswer": CallDisposition.NO_ANSWER,
    "busy": CallDisposition.BUSY,
    "failed": CallDisposition.FAILED,
    "congestion": CallDisposition.FAILED,
}


def extension_state(text: str) -> ExtensionState:
    """Map an extension (Asterisk hint) state text to ExtensionState."""
    return _EXTENSION_STATES.get(_state_key(text), ExtensionState.UNKNOWN)


def trunk_state(text: str) -> TrunkState:
    """Map a trunk state text to TrunkState."""
    return _TRUNK_STATES.get(_state_key(text), TrunkState.UNKNOWN)


def queue_member_state(code: int | None, text: str = "") -> QueueMemberState:
    """Map an Asterisk device state code (or, failing that, its name) to QueueMemberState."""
    if code is not None:
        return (
            _QUEUE_MEMBER_CODES[code]
            if 0 <= code < len(_QUEUE_MEMBER_CODES)
            else (QueueMemberState.UNKNOWN)
        )
    return _QUEUE_MEMBER_WORDS.get(_state_key(text), QueueMemberState.UNKNOWN)


def call_disposition(text: str) -> CallDisposition:
    """Map an Asterisk CDR disposition text to CallDisposition."""
    return _DISPOSITIONS.get(_state_key(text), CallDisposition.UNKNOWN)


# --- shapes ----------------------------------------------------------------------------


def _require_object(payload: object, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise MalformedPayloadError(f"{what} should be a JSON object, got {_kind(payload)}")
    return payload


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _entries(source: Mapping[str, Any] | Sequence[Any], key: str) -> Sequence[Any]:
    """The list under ``key`` (or ``source`` itself when it already is the list)."""
    if isinstance(source, Mapping):
        value = source.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise MalformedPayloadError(f"{key!r} should be a list, got {_kind(value)}")
        return value
    if isinstance(source, list | tuple):
        return source
    raise MalformedPayloadError(f"expected an object or a list, got {_kind(source)}")


def _parse_list[T](
    source: Mapping[str, Any] | Sequence[Any],
    key: str,
    parse_entry: Callable[[Mapping[str, Any]], T | None],
) -> tuple[T, ...]:
    """Parse each object in a list, skipping (with a debug log) what cannot be used."""
    parsed: list[T] = []
    for index, entry in enumerate(_entries(source, key)):
        if not isinstance(entry, Mapping):
            _LOGGER.debug("Skipping %s[%d]: not an object but %s", key, index, _kind(entry))
            continue
        try:
            item = parse_entry(entry)
        except MalformedPayloadError as err:
            _LOGGER.debug("Skipping %s[%d]: %s", key, index, err)
            continue
        if item is None:
            _LOGGER.debug("Skipping %s[%d]: no identifying field", key, index)
            continue
        parsed.append(item)
    return tuple(parsed)


# --- replies ---------------------------------------------------------------------------

_FAILURE_WORDS: Final = frozenset({"failed", "fail", "failure", "error", "false"})


def parse_reply(payload: object) -> CommandReply:
    """The envelope of every reply: status, message and request_id.

    ``status`` is case-insensitive. A reply without ``status`` counts as a success (some
    of the document's examples omit it); any other word counts as a failure unless it
    reads like success (``Success``, ``succeeded``, ``ok``).
    """
    reply = _require_object(payload, "reply")
    status = _text(reply, "status").strip().lower()
    if not status:
        success = True
    elif status in _FAILURE_WORDS:
        success = False
    else:
        success = status.startswith("succ") or status in {"ok", "true"}
    return CommandReply(
        success=success,
        message=_text(reply, "message", "msg").strip(),
        request_id=_optional_text(reply, "request_id"),
        raw=dict(reply),
    )


def parse_device_info(payload: object) -> DeviceInfo:
    """``deviceInfo`` reply (the fields sit in ``deviceinfo``, or at top level)."""
    reply = _require_object(payload, "deviceInfo reply")
    nested = reply.get("deviceinfo", reply.get("deviceInfo"))
    info = reply if nested is None else _require_object(nested, "'deviceinfo'")
    return DeviceInfo(
        device_name=_text(info, "devicename", "device_name", "name"),
        serial=_text(info, "sn", "serial"),
        firmware=_text(info, "firmwarever", "firmware"),
        system_time=parse_datetime(_text(info, "systemtime")),
        uptime=parse_duration(_text(info, "uptime")),
        raw=dict(info),
    )


def _extension(entry: Mapping[str, Any]) -> Extension | None:
    number = _text(entry, "number", "extension").strip()
    if not number:
        return None
    state_raw = _text(entry, "status", "state")
    return Extension(
        number=number,
        type=_EXTENSION_TYPES.get(_text(entry, "type").strip().lower(), ExtensionType.UNKNOWN),
        name=_text(entry, "username", "name", "fullname"),
        state=extension_state(state_raw),
        state_raw=state_raw,
        port=_optional_text(entry, "port"),
        raw=dict(entry),
    )


def parse_extensions(payload: Mapping[str, Any] | Sequence[Any]) -> tuple[Extension, ...]:
    """``extension_list`` reply (or its ``extlist``)."""
    return _parse_list(payload, "extlist", _extension)


def _trunk(entry: Mapping[str, Any]) -> Trunk | None:
    name = _text(entry, "name").strip()
    if not name:
        return None
    state_raw = _text(entry, "status", "state")
    return Trunk(
        name=name,
        type=_TRUNK_TYPES.get(_text(entry, "type").strip().lower(), TrunkType.UNKNOWN),
        state=trunk_state(state_raw),
        state_raw=state_raw,
        port=_optional_text(entry, "port"),
        line_voltage=_number(entry, "vbat"),
        raw=dict(entry),
    )


def parse_trunks(payload: Mapping[str, Any] | Sequence[Any]) -> tuple[Trunk, ...]:
    """``trunk_list`` reply (or its ``trunklist``)."""
    return _parse_list(payload, "trunklist", _trunk)


def _live_call(entry: Mapping[str, Any]) -> LiveCall:
    return LiveCall(
        callid=_text(entry, "callid", "uniqueid").strip(),
        caller=_text(entry, "caller"),
        source=_text(entry, "source"),
        called=_text(entry, "called"),
        destination=_text(entry, "destination"),
        duration=parse_duration(_text(entry, "duration", "Duration")),
        state=_text(entry, "state", "status"),
        direction=_text(entry, "direction"),
        recording=_text(entry, "recording"),
        raw=dict(entry),
    )


def parse_live_calls(payload: Mapping[str, Any] | Sequence[Any]) -> tuple[LiveCall, ...]:
    """``livecall`` reply (or its ``livecall`` list)."""
    return _parse_list(payload, "livecall", _live_call)


def _queue(entry: Mapping[str, Any]) -> Queue | None:
    number = _text(entry, "number", "queue").strip()
    if not number:
        return None
    return Queue(
        number=number,
        description=_text(entry, "description"),
        members=_csv(entry, "members"),
        strategy=_text(entry, "strategy"),
        raw=dict(entry),
    )


def parse_queues(payload: Mapping[str, Any] | Sequence[Any]) -> tuple[Queue, ...]:
    """``queue_list`` reply (or its ``queuelist``)."""
    return _parse_list(payload, "queuelist", _queue)


def _queue_member(entry: Mapping[str, Any]) -> QueueMember | None:
    agent = _text(entry, "agent", "member", "extension").strip()
    if not agent:
        return None
    code = _integer(entry, "status")
    return QueueMember(
        agent=agent,
        state=queue_member_state(code, _text(entry, "status")),
        state_code=code,
        paused=_boolean(entry, "paused", "pused"),
        raw=dict(entry),
    )


def parse_queue_status(payload: object) -> QueueStatus:
    """``queue_status`` reply; ``members`` may sit inside or beside ``params``."""
    reply = _require_object(payload, "queue_status reply")
    params_value = reply.get("params")
    # The table types params as an Array: accept a one-object list as well.
    if isinstance(params_value, list) and params_value:
        params_value = params_value[0]
    params = {} if params_value in (None, []) else _require_object(params_value, "'params'")
    members_source = params if params.get("members") is not None else reply
    return QueueStatus(
        queue=_text(reply, "queue").strip(),
        strategy=_text(params, "strategy") or _text(reply, "strategy"),
        max_callers=_integer(params, "max"),
        calls=_integer(params, "calls"),
        hold_time=_integer(params, "holdtime"),
        talk_time=_integer(params, "talktime"),
        completed=_integer(params, "completed"),
        abandoned=_integer(params, "abandoned"),
        members=_parse_list(members_source, "members", _queue_member),
        raw=dict(reply),
    )


def _conference(entry: Mapping[str, Any]) -> Conference | None:
    number = _text(entry, "number", "conf").strip()
    if not number:
        return None
    return Conference(
        number=number,
        description=_text(entry, "description"),
        moderators=_csv(entry, "moderators"),
        allow_invite=_boolean(entry, "allowinvite"),
        wait_for_moderator=_boolean(entry, "waitformoderator"),
        participant_pin=_text(entry, "participantpassword"),
        moderator_pin=_text(entry, "moderatorpassword"),
        raw=dict(entry),
    )


def parse_conferences(payload: Mapping[str, Any] | Sequence[Any]) -> tuple[Conference, ...]:
    """``conf_list`` reply (or its ``conflist``)."""
    return _parse_list(payload, "conflist", _conference)


def _conference_member(entry: Mapping[str, Any]) -> ConferenceMember:
    return ConferenceMember(
        callerid=_text(entry, "callerid"),
        channel=_text(entry, "channel"),
        admin=_boolean(entry, "admin"),
        marked_user=_boolean(entry, "markeduser"),
        wait_marked=_boolean(entry, "waitmarked"),
        waiting=_boolean(entry, "waiting"),
        muted=_boolean(entry, "muted"),
        talking=_boolean(entry, "talking"),
        answered_time=parse_duration(_text(entry, "answeredtime")),
        raw=dict(entry),
    )


def parse_conference_status(payload: object) -> ConferenceStatus:
    """``conf_status`` reply; ``members`` beside ``conf`` (or inside ``params``)."""
    reply = _require_object(payload, "conf_status reply")
    params = reply.get("params")
    members_source = (
        params if isinstance(params, Mapping) and params.get("members") is not None else reply
    )
    return ConferenceStatus(
        conference=_text(reply, "conf", "conference").strip(),
        members=_parse_list(members_source, "members", _conference_member),
        raw=dict(reply),
    )


def parse_dial(payload: object) -> DialResult:
    """``dial`` and ``listen`` replies: the new call's id, when the PBX gives one."""
    reply = _require_object(payload, "dial reply")
    return DialResult(
        callid=_optional_text(reply, "callid", "called"),
        message=_text(reply, "message").strip(),
        raw=dict(reply),
    )


# --- events and CDRs -------------------------------------------------------------------


def parse_cdr(payload: object) -> CallRecord:
    """A call detail record, with the table's and the example's names both accepted.

    ``start``/``end`` that are not times (the document's example is shifted by one field,
    so its start reads ``"FXSV5"``) become None rather than an error.
    """
    record = _require_object(payload, "CDR")
    disposition_raw = _text(record, "disposition", "dispositon").strip()
    return CallRecord(
        callid=_optional_text(record, "callid", "uniqueid"),
        src=_text(record, "src"),
        src_channel=_text(record, "srctech"),
        dst=_text(record, "dst"),
        dst_channel=_text(record, "dsttech"),
        start=parse_datetime(_text(record, "start")),
        end=parse_datetime(_text(record, "end")),
        billsec=_integer(record, "billsec"),
        disposition=call_disposition(disposition_raw),
        disposition_raw=disposition_raw,
        direction=_text(record, "direction"),
        dtmf=_text(record, "dtmf"),
        record_file=_text(record, "recordfile", "recordurl"),
        raw=dict(record),
    )


def event_name(payload: Mapping[str, Any]) -> str:
    """The ``event`` (or ``Event``) field of an event payload, stripped."""
    return _text(payload, "event", "Event").strip()


def parse_event(payload: object) -> PbxEvent:
    """An event from the event topic; events this library does not model stay whole."""
    event = _require_object(payload, "event")
    name = event_name(event)
    match name.lower():
        case "extension_status":
            state_raw = _text(event, "status", "state")
            extension = _text(event, "extension").strip()
            # Without both it says nothing; taken as "state unknown" it would wipe a good
            # state (an unrecognised status text, on the other hand, is news: UNKNOWN).
            if not extension or not state_raw.strip():
                raise MalformedPayloadError("extension_status without extension or status")
            return ExtensionStatusEvent(
                extension=extension,
                state=extension_state(state_raw),
                state_raw=state_raw,
                ip_address=_optional_text(event, "ipaddr"),
                raw=dict(event),
            )
        case "invite":
            return InviteEvent(
                from_number=_text(event, "from"),
                to_number=_text(event, "to"),
                callid=_optional_text(event, "callid", "called"),
                raw=dict(event),
            )
        case "ivrdtmf":
            return IvrDtmfEvent(
                ivr=_text(event, "ivr"),
                caller=_text(event, "caller"),
                dtmf=_text(event, "dtmf"),
                callid=_optional_text(event, "callid", "called"),
                raw=dict(event),
            )
        case "cdr":
            return parse_cdr(event)
        case _:
            return UnknownEvent(event=name, raw=dict(event))

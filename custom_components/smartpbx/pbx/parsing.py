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

Field variants (FIELD.md). Each is marked in the code as a *field fact* (captured from
real firmware or from clients written against it) or a *constructed* guess (an
Asterisk-style variant nobody captured but a firmware of this kind plausibly sends):

* an empty list sent as ``{}`` (LuCI's Lua JSON encoder) reads as an empty list;
* a ``message`` that is not a string is kept as its JSON text;
* ``status`` as JSON ``true``/``false``;
* pause flags ``paused``/``pused`` and words (``"Paused"``, ``"(paused)"``): a word that
  cannot be read gives ``paused=None`` (unknown), never a silent "not paused";
* Asterisk device/trunk state texts (``Ring+Inuse``, ``Registered``, ``Unreachable``,
  ``OK (12 ms)``, ``Lagged``), extension type ``PJSIP``, agents like ``PJSIP/8004``;
* numbers with units (``"48V"``, ``"12 ms"``) and uptimes in human forms
  (``"3 days, 4:05"``, ``"up 12 min"``, ``"2d 3h 4m"``);
* live calls under ``calllist`` or a list-valued ``message`` when ``livecall`` is absent;
* ``direction`` ``Inbound``/``Outbound``/``Internal`` read into CallDirection.

Any enumerated text not recognised becomes UNKNOWN with the raw text kept, and is logged
once per distinct value at debug level (never an error: firmware may add states).

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
import json
import logging
import math
import re
from typing import Any, Final

from .models import (
    CallDirection,
    CallDisposition,
    CallRecord,
    CallStatusEvent,
    CommandReply,
    Conference,
    ConferenceMember,
    ConferenceStatus,
    DeviceInfo,
    DeviceStatus,
    DeviceStatusEvent,
    DialResult,
    Extension,
    ExtensionCall,
    ExtensionState,
    ExtensionStatusEvent,
    ExtensionType,
    HangupEvent,
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


def _loose_text(payload: Mapping[str, Any], *keys: str) -> str:
    """Free text that may arrive as anything: objects and lists become their JSON text.

    Constructed: a ``message`` that is not a string (an object, a list). It is kept as
    text rather than failing the whole reply.
    """
    key, value = _pick(payload, keys)
    if isinstance(value, Mapping | list):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # e.g. nested too deep; keep something readable
            return repr(value)
    return _text(payload, key)


def _optional_text(payload: Mapping[str, Any], *keys: str) -> str | None:
    """A string field where absent or blank means None."""
    value = _text(payload, *keys).strip()
    return value or None


_NUMBER_WITH_UNIT_RE: Final = re.compile(
    r"^\s*(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:[A-Za-z%]{1,4})?\s*$"
)


def _number(payload: Mapping[str, Any], *keys: str) -> float | None:
    """A numeric field: int, float or numeric string. ``""`` or unparsable text → None."""
    key, value = _pick(payload, keys)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        # Constructed: a unit after the number ("48V", "48.5 V", "12 ms").
        match = _NUMBER_WITH_UNIT_RE.match(value)
        if match is None:
            return None
        try:
            number = float(match["number"])
        except ValueError:
            return None
    else:
        raise MalformedPayloadError(f"{key!r} should be a number, got {type(value).__name__}")
    return number if math.isfinite(number) else None


_INT64: Final = range(-(2**63), 2**63)


def _integer(payload: Mapping[str, Any], *keys: str) -> int | None:
    """An integer field (floats are truncated toward zero, as the PBX means seconds).

    Out of 64-bit range is garbage: no duration is that long, and Home Assistant's JSON
    encoder refuses to store such a number.
    """
    _, value = _pick(payload, keys)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in _INT64 else None
    number = _number(payload, *keys)
    if number is None or not -(2.0**63) <= number < 2.0**63:
        return None
    return int(number)


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


# Uptime in the forms people and tools print it (uptime(1), Asterisk "core show uptime",
# LuCI). Constructed, except the document's "00:22:27": "3 days, 4:05", "up 12 min",
# "1 day, 2:03:04", "2d 3h 4m 5s", "3 days 4 hours 5 minutes". A bare "H:MM" is hours
# and minutes here (uptime(1)), unlike call durations.
_UPTIME_UNITS: Final = {
    "w": 7 * 86400,
    "wk": 7 * 86400,
    "week": 7 * 86400,
    "d": 86400,
    "day": 86400,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "m": 60,
    "min": 60,
    "minute": 60,
    "s": 1,
    "sec": 1,
    "second": 1,
}
_UPTIME_PART_RE: Final = re.compile(
    r"(?P<clock>\d+:\d{1,2}(?::\d{1,2}(?:\.\d+)?)?)|(?P<count>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]+)"
)
_UPTIME_FILLER_RE: Final = re.compile(r"^(?:up|uptime|system|:|,|and|\s)*$")


def parse_uptime(value: object) -> timedelta | None:
    """How long the PBX has been up, from any of the forms above; None if unreadable."""
    if isinstance(value, str) and (text := value.strip().lower()):
        if (exact := parse_duration(text)) is not None:
            return exact
        seconds = 0.0
        position = 0
        for match in _UPTIME_PART_RE.finditer(text):
            if not _UPTIME_FILLER_RE.match(text[position : match.start()]):
                break
            position = match.end()
            if clock := match["clock"]:
                parts = [float(part) for part in clock.split(":")]
                # "4:05" is hours:minutes in uptime's output; "4:05:06" adds seconds.
                seconds += parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)
                continue
            unit = match["unit"].rstrip("s") if match["unit"] != "s" else "s"
            factor = _UPTIME_UNITS.get(unit)
            if factor is None:
                break
            seconds += float(match["count"]) * factor
        else:
            if position and _UPTIME_FILLER_RE.match(text[position:]):
                try:
                    return timedelta(seconds=seconds)
                except OverflowError:
                    return None
        _log_unknown("uptime", value)
        return None
    return parse_duration(value)


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
    """Normalise a state text for lookup: ``"In Use"``, ``"in_use"``, ``"(InUse)"`` → inuse."""
    return re.sub(r"[\s_\-()]", "", text).lower()


_UNKNOWN_LOGGED: set[tuple[str, str]] = set()
_UNKNOWN_LOG_LIMIT: Final = 256
"""Distinct unknown values remembered (and so logged once each); later ones are not logged."""


def _log_unknown(what: str, value: object) -> None:
    """Log an unrecognised enumerated value at debug level, once per distinct value."""
    key = (what, str(value)[:64])
    if key in _UNKNOWN_LOGGED or len(_UNKNOWN_LOGGED) >= _UNKNOWN_LOG_LIMIT:
        return
    _UNKNOWN_LOGGED.add(key)
    _LOGGER.debug("Unrecognised %s %r: read as unknown (raw text kept)", what, key[1])


def _lookup[E](table: Mapping[str, E], text: str, unknown: E, what: str) -> E:
    """``table[_state_key(text)]``, or ``unknown`` (logged once) for a text not in it.

    An empty text is "not sent", not news: it is not logged.
    """
    key = _state_key(text)
    found = table.get(key)
    if found is None:
        if key:
            _log_unknown(what, text)
        return unknown
    return found


_EXTENSION_STATES: Final = {
    "idle": ExtensionState.IDLE,
    "notinuse": ExtensionState.IDLE,
    "inuse": ExtensionState.IN_USE,
    "busy": ExtensionState.BUSY,
    "ringing": ExtensionState.RINGING,
    "ring": ExtensionState.RINGING,
    "inuse&ringing": ExtensionState.RINGING,
    "ringinuse": ExtensionState.RINGING,
    "ring+inuse": ExtensionState.RINGING,  # constructed: Asterisk's device state text
    "inuse+ringing": ExtensionState.RINGING,  # constructed
    "hold": ExtensionState.ON_HOLD,
    "onhold": ExtensionState.ON_HOLD,
    "inuse&hold": ExtensionState.ON_HOLD,
    "unavailable": ExtensionState.UNAVAILABLE,
}

_TRUNK_STATES: Final = {
    # Document (field fact too): FXO and SIP trunks.
    "idle": TrunkState.IDLE,
    "inuse": TrunkState.IN_USE,
    "busy": TrunkState.BUSY,
    "disconnected": TrunkState.DISCONNECTED,
    "unavailable": TrunkState.UNAVAILABLE,
    # Constructed: Asterisk SIP registration and qualify texts. A registered or reachable
    # trunk is ready for calls (IDLE: a SIP trunk does not report per-call use); "OK (12 ms)"
    # is read below; "Lagged" answers qualify slowly but does answer.
    "registered": TrunkState.IDLE,
    "reachable": TrunkState.IDLE,
    "ok": TrunkState.IDLE,
    "lagged": TrunkState.IDLE,
    "unreachable": TrunkState.UNAVAILABLE,
    "unregistered": TrunkState.DISCONNECTED,
    "rejected": TrunkState.DISCONNECTED,
    "failed": TrunkState.DISCONNECTED,
    "noauthentication": TrunkState.DISCONNECTED,
    "requestsent": TrunkState.DISCONNECTED,
    "timeout": TrunkState.DISCONNECTED,
}
# Constructed: Asterisk's qualify result "OK (12 ms)" / "LAGGED (1500 ms)".
_QUALIFY_RE: Final = re.compile(
    r"^\s*(?P<word>[A-Za-z]+)\s*\(\s*(?P<ms>\d+(?:\.\d+)?)\s*ms\s*\)\s*$"
)

# The table numbers the types ("1.SIP 2.FXS"): accept the numbers as well as the names.
_EXTENSION_TYPES: Final = {
    "sip": ExtensionType.SIP,
    "pjsip": ExtensionType.SIP,  # constructed: Asterisk's channel driver name
    "1": ExtensionType.SIP,
    "fxs": ExtensionType.FXS,
    "2": ExtensionType.FXS,
}
_TRUNK_TYPES: Final = {
    "sip": TrunkType.SIP,
    "pjsip": TrunkType.SIP,  # constructed
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
    "ring+inuse": QueueMemberState.RING_IN_USE,  # constructed: Asterisk's own text
    "inuse&ringing": QueueMemberState.RING_IN_USE,
    "onhold": QueueMemberState.ON_HOLD,
    "hold": QueueMemberState.ON_HOLD,
    "unknown": QueueMemberState.UNKNOWN,
}

_DIRECTIONS: Final = {
    "internal": CallDirection.INTERNAL,  # the document
    "local": CallDirection.INTERNAL,
    "inbound": CallDirection.INBOUND,  # field fact
    "incoming": CallDirection.INBOUND,
    "in": CallDirection.INBOUND,
    "outbound": CallDirection.OUTBOUND,  # document and field fact
    "outgoing": CallDirection.OUTBOUND,
    "out": CallDirection.OUTBOUND,
}

_DEVICE_STATUSES: Final = {
    "online": DeviceStatus.ONLINE,  # field fact
    "offline": DeviceStatus.OFFLINE,  # field fact
    "connected": DeviceStatus.ONLINE,
    "disconnected": DeviceStatus.OFFLINE,
    "1": DeviceStatus.ONLINE,
    "0": DeviceStatus.OFFLINE,
    "true": DeviceStatus.ONLINE,
    "false": DeviceStatus.OFFLINE,
}

_DISPOSITIONS: Final = {
    "answered": CallDisposition.ANSWERED,
    "noanswer": CallDisposition.NO_ANSWER,
    "busy": CallDisposition.BUSY,
    "failed": CallDisposition.FAILED,
    "congestion": CallDisposition.FAILED,
}


_EXTENSION_STATE_TEXTS: dict[str, ExtensionState] = {}
"""Recognised state texts as sent, mapped: every status event carries one of a handful."""
_EXTENSION_STATE_TEXTS_MAX: Final = 256


def extension_state(text: str) -> ExtensionState:
    """Map an extension (Asterisk hint) state text to ExtensionState."""
    if (known := _EXTENSION_STATE_TEXTS.get(text)) is not None:
        return known
    state = _lookup(_EXTENSION_STATES, text, ExtensionState.UNKNOWN, "extension state")
    # Unrecognised texts are not remembered: _lookup decides whether to log them.
    if (
        state is not ExtensionState.UNKNOWN
        and len(_EXTENSION_STATE_TEXTS) < _EXTENSION_STATE_TEXTS_MAX
    ):
        _EXTENSION_STATE_TEXTS[text] = state
    return state


def trunk_state(text: str) -> TrunkState:
    """Map a trunk state text (``Idle``, ``Registered``, ``OK (12 ms)``...) to TrunkState."""
    if qualify := _QUALIFY_RE.match(text):
        text = qualify["word"]
    return _lookup(_TRUNK_STATES, text, TrunkState.UNKNOWN, "trunk state")


def trunk_latency_ms(text: str) -> float | None:
    """The qualify round trip in ``OK (12 ms)`` / ``LAGGED (1500 ms)``, else None."""
    qualify = _QUALIFY_RE.match(text)
    return float(qualify["ms"]) if qualify else None


def call_direction(text: str) -> CallDirection:
    """Map a live call's or CDR's ``direction`` text to CallDirection."""
    return _lookup(_DIRECTIONS, text, CallDirection.UNKNOWN, "call direction")


def device_status(text: str) -> DeviceStatus:
    """Map the ``status`` topic's word to DeviceStatus."""
    return _lookup(_DEVICE_STATUSES, text, DeviceStatus.UNKNOWN, "device status")


def queue_member_state(code: int | None, text: str = "") -> QueueMemberState:
    """Map an Asterisk device state code (or, failing that, its name) to QueueMemberState."""
    if code is not None:
        return (
            _QUEUE_MEMBER_CODES[code]
            if 0 <= code < len(_QUEUE_MEMBER_CODES)
            else (QueueMemberState.UNKNOWN)
        )
    return _lookup(_QUEUE_MEMBER_WORDS, text, QueueMemberState.UNKNOWN, "queue member state")


def call_disposition(text: str) -> CallDisposition:
    """Map an Asterisk CDR disposition text to CallDisposition."""
    return _lookup(_DISPOSITIONS, text, CallDisposition.UNKNOWN, "call disposition")


# Pause flags. The document's example says "pused": "0"/"1"; a field client reads
# "paused" (field fact); Asterisk prints "(paused)" / "paused" beside a member and the
# command takes "yes"/"no" (constructed as replies). A word none of these matches is
# unknown (None), never a silent "not paused".
_PAUSED_WORDS: Final = frozenset({"paused", "pause", "onpause", "inpause"})
_UNPAUSED_WORDS: Final = frozenset({"unpaused", "notpaused", "active", "ready", "available"})


def pause_flag(value: object) -> bool | None:
    """Read one pause flag value; None when it cannot be read."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        word = _state_key(value)
        if word in _TRUE_WORDS or word in _PAUSED_WORDS:
            return True
        if (word in _FALSE_WORDS and word) or word in _UNPAUSED_WORDS:
            return False
        if word:
            _log_unknown("pause flag", value)
    return None


# --- shapes ----------------------------------------------------------------------------


def _require_object(payload: object, what: str) -> Mapping[str, Any]:
    if type(payload) is dict:  # what JSON decoding gives: no ABC check (every event)
        return payload
    if not isinstance(payload, Mapping):
        raise MalformedPayloadError(f"{what} should be a JSON object, got {_kind(payload)}")
    return payload


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _as_list(value: object, key: str) -> Sequence[Any]:
    """A JSON list, or what Lua's JSON encoder writes for one.

    Inferred from the platform (LuCI, field fact that the web UI is LuCI): an empty table
    is written ``{}``, so ``{}`` is an empty list. Constructed: a table with keys
    ``"1"``, ``"2"``... is a list in that order.
    """
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        if not value:
            return ()
        if all(isinstance(k, str) and k.isdigit() for k in value):
            return [value[k] for k in sorted(value, key=int)]
    raise MalformedPayloadError(f"{key!r} should be a list, got {_kind(value)}")


def _entries(source: Mapping[str, Any] | Sequence[Any], key: str) -> Sequence[Any]:
    """The list under ``key`` (or ``source`` itself when it already is the list)."""
    if isinstance(source, Mapping):
        value = source.get(key)
        if value is None:
            return ()
        return _as_list(value, key)
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
    status_value = reply.get("status")
    # Constructed: status as a JSON boolean.
    status = (
        ("true" if status_value else "false")
        if isinstance(status_value, bool)
        else _text(reply, "status").strip().lower()
    )
    if not status:
        success = True
    elif status in _FAILURE_WORDS:
        success = False
    else:
        success = status.startswith("succ") or status in {"ok", "true", "yes", "1"}
    return CommandReply(
        success=success,
        message=_loose_text(reply, "message", "msg").strip(),
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
        uptime=parse_uptime(_text(info, "uptime")),
        raw=dict(info),
    )


def _extension(entry: Mapping[str, Any]) -> Extension | None:
    number = _text(entry, "number", "extension").strip()
    if not number:
        return None
    state_raw = _text(entry, "status", "state")
    return Extension(
        number=number,
        type=_lookup(
            _EXTENSION_TYPES, _text(entry, "type"), ExtensionType.UNKNOWN, "extension type"
        ),
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
        type=_lookup(_TRUNK_TYPES, _text(entry, "type"), TrunkType.UNKNOWN, "trunk type"),
        state=trunk_state(state_raw),
        state_raw=state_raw,
        port=_optional_text(entry, "port"),
        line_voltage=_number(entry, "vbat"),
        latency_ms=trunk_latency_ms(state_raw),
        raw=dict(entry),
    )


def parse_trunks(payload: Mapping[str, Any] | Sequence[Any]) -> tuple[Trunk, ...]:
    """``trunk_list`` reply (or its ``trunklist``)."""
    return _parse_list(payload, "trunklist", _trunk)


def _live_call(entry: Mapping[str, Any]) -> LiveCall:
    # callstatus entries (field fact) name the direction "calltype"; the values are
    # not documented, so they are read as a direction when they are one.
    direction = _text(entry, "direction", "calltype")
    return LiveCall(
        callid=_text(entry, "callid", "uniqueid").strip(),
        caller=_text(entry, "caller", "from"),
        source=_text(entry, "source", "channel", "channelid"),
        called=_text(entry, "called", "to"),
        destination=_text(entry, "destination", "peerchannel", "peerchannelid"),
        duration=parse_duration(_text(entry, "duration", "Duration")),
        state=_text(entry, "state", "status"),
        direction=direction,
        recording=_text(entry, "recording"),
        raw=dict(entry),
        direction_kind=call_direction(direction),
    )


def live_calls_key(payload: Mapping[str, Any]) -> str | None:
    """Where a reply keeps its live calls: ``livecall``, else ``calllist``, else a
    list-valued ``message`` (both field facts: a field client looks there too)."""
    for key in ("livecall", "calllist"):
        if payload.get(key) is not None:
            return key
    return "message" if isinstance(payload.get("message"), list) else None


def parse_live_calls(payload: Mapping[str, Any] | Sequence[Any]) -> tuple[LiveCall, ...]:
    """``livecall`` reply (or its list); see :func:`live_calls_key` for the variants."""
    if isinstance(payload, Mapping):
        key = live_calls_key(payload)
        return () if key is None else _parse_list(payload, key, _live_call)
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


# Constructed: an agent written as its interface, "PJSIP/8004", "SIP/8004",
# "Local/8004@from-queue/n"; the extension number is what identifies the member.
_INTERFACE_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/(?P<number>\+?[0-9*#]+)(?:[@/;-].*)?$")


def _agent_number(agent_raw: str) -> str:
    match = _INTERFACE_RE.match(agent_raw)
    return match["number"] if match else agent_raw


def _queue_member(entry: Mapping[str, Any]) -> QueueMember | None:
    agent_raw = _text(entry, "agent", "member", "extension", "interface").strip()
    if not agent_raw:
        return None
    state_raw = _text(entry, "status", "state")
    code = _integer(entry, "status")
    # "paused" is a field fact, "pused" the document's example spelling.
    paused_key, paused_value = _pick(entry, ("paused", "pused"))
    if isinstance(paused_value, Mapping | list):
        raise MalformedPayloadError(f"{paused_key!r} should be a flag, got {_kind(paused_value)}")
    return QueueMember(
        agent=_agent_number(agent_raw),
        state=queue_member_state(code, state_raw),
        state_code=code,
        paused=pause_flag(paused_value),
        raw=dict(entry),
        agent_raw=agent_raw,
        state_raw=state_raw,
        paused_raw=_text(entry, paused_key),
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
    direction = _text(record, "direction")
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
        direction=direction,
        dtmf=_text(record, "dtmf"),
        record_file=_text(record, "recordfile", "recordurl"),
        raw=dict(record),
        direction_kind=call_direction(direction),
    )


def event_name(payload: Mapping[str, Any]) -> str:
    """The ``event`` (or ``Event``) field of an event payload, stripped."""
    return _text(payload, "event", "Event").strip()


def parse_event(payload: object) -> PbxEvent:
    """An event from the event topic; events this library does not model stay whole."""
    event = _require_object(payload, "event")
    # Nearly every event is this one, spelled this way (bursts of thousands): no
    # normalising of the name first.
    if event.get("event") == "extension_status":
        return _extension_status(event)
    name = event_name(event)
    match name.lower():
        case "extension_status":
            return _extension_status(event)
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
        case "callstatus" | "call_status":  # field fact, both spellings
            return CallStatusEvent(
                event=name,
                raw=dict(event),
                calls=parse_live_calls(event),
            )
        case "hangup":  # field fact: the name; the fields below are constructed guesses
            return HangupEvent(
                event=name,
                raw=dict(event),
                callid=_optional_text(event, "callid", "uniqueid"),
                channel=_optional_text(event, "channel", "channelid"),
                caller=_optional_text(event, "caller", "from"),
                called=_optional_text(event, "called", "to"),
            )
        case _:
            return UnknownEvent(event=name, raw=dict(event))


def _extension_status(event: Mapping[str, Any]) -> ExtensionStatusEvent:
    # Plain strings (what the PBX sends) skip the general coercion of _text.
    state_raw = event.get("status")
    if type(state_raw) is not str:
        state_raw = _text(event, "status", "state")
    extension = event.get("extension")
    extension = (extension if type(extension) is str else _text(event, "extension")).strip()
    # Without both it says nothing; taken as "state unknown" it would wipe a good
    # state (an unrecognised status text, on the other hand, is news: UNKNOWN).
    if not extension or not state_raw.strip():
        raise MalformedPayloadError("extension_status without extension or status")
    ip_address = event.get("ipaddr")
    ip_address = (
        ip_address.strip() or None if type(ip_address) is str else _optional_text(event, "ipaddr")
    )
    return ExtensionStatusEvent(
        extension=extension,
        state=extension_state(state_raw),
        state_raw=state_raw,
        ip_address=ip_address,
        raw=dict(event),
    )


def parse_device_status(payload: object) -> DeviceStatusEvent:
    """A message on the ``status`` topic.

    Field fact: ``{"status": "online" | "offline"}``. Also read: the bare word as plain
    text or a JSON string, and JSON booleans (constructed).
    """
    if isinstance(payload, Mapping):
        raw: dict[str, Any] = dict(payload)
        value = payload.get("status", payload.get("state"))
    else:
        raw = {"payload": payload}
        value = payload
    if isinstance(value, bool):
        status_raw = "true" if value else "false"
    elif isinstance(value, str | int | float):
        status_raw = _text({"status": value}, "status").strip()
    else:
        status_raw = ""
    return DeviceStatusEvent(
        event="status", raw=raw, status=device_status(status_raw), status_raw=status_raw
    )


def parse_extension_call(extension: str, payload: object) -> ExtensionCall | None:
    """``extcallinfo`` reply (field fact: ``callid, channelid, peerchannelid, from, to,
    direction``). None when the extension is in no call (no call id and no channel)."""
    reply = _require_object(payload, "extcallinfo reply")
    # Constructed: the fields nested in an object ("callinfo", "data"), as deviceinfo is.
    for nest in ("callinfo", "extcallinfo", "data"):
        if isinstance(nested := reply.get(nest), Mapping):
            reply = nested
            break
    callid = _optional_text(reply, "callid", "uniqueid")
    channel = _optional_text(reply, "channelid", "channel")
    if callid is None and channel is None:
        return None
    direction = _text(reply, "direction")
    return ExtensionCall(
        extension=extension,
        callid=callid,
        channel=channel,
        peer_channel=_optional_text(reply, "peerchannelid", "peerchannel"),
        from_number=_text(reply, "from", "caller"),
        to_number=_text(reply, "to", "called"),
        direction=call_direction(direction),
        direction_raw=direction,
        raw=dict(reply),
    )

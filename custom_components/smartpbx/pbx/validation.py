"""Argument validation, run before anything is published.

A command reaches a real telephone system, so every argument is checked up front and a
bad one raises :class:`PbxInvalidArgumentError` (naming the field) with nothing sent.
The rules are deliberately narrow where the PBX's own values are known (numbers, call
ids, channels, times) and generic elsewhere (no control characters, bounded length).
"""

from __future__ import annotations

from collections.abc import Mapping
import math
import re
from typing import Any, Final

from .errors import PbxInvalidArgumentError
from .models import ListenMode, Permission, TransferOperation
from .topics import API_VERSION, CommandTopic

MAX_TOKEN_LENGTH: Final = 128
MAX_NUMBER_LENGTH: Final = 32
MAX_CALLID_LENGTH: Final = 96
MAX_CHANNEL_LENGTH: Final = 128
MAX_NAME_LENGTH: Final = 64
MAX_TEXT_LENGTH: Final = 1024
MAX_COMMAND_BYTES: Final = 64 * 1024
MAX_ALARM_COUNT: Final = 9999
MAX_NESTING: Final = 8

# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What a phone can dial: digits, * and #, with an optional leading + (E.164).
_NUMBER_RE: Final = re.compile(r"\+?[0-9*#]+")
# Asterisk uniqueid: epoch.sequence, optionally prefixed by the PBX's systemname.
_CALLID_RE: Final = re.compile(r"(?:[A-Za-z0-9_.-]{1,64}-)?[0-9]{1,20}\.[0-9]{1,10}")
# Technology/resource, e.g. PJSIP/8001-00000002, FXS/5, SIP/trunk-0000a1b2.
_CHANNEL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*/[^\s+#]+")
_ALARM_START_RE: Final = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_SUB_TOPIC_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_COMMAND_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_FILE_NAME_FORBIDDEN: Final = frozenset("/\\")
# What a PBX publishes its events and CDRs on.
_PUBLICATION_RE: Final = re.compile(
    rf"device/(?P<token>[^/]+)/api/{re.escape(API_VERSION)}/(?:event|cdr)"
)


def _fail(field: str, reason: str) -> PbxInvalidArgumentError:
    return PbxInvalidArgumentError(field, reason)


def validate_text(
    value: object,
    field: str,
    *,
    max_length: int = MAX_TEXT_LENGTH,
    allow_empty: bool = False,
) -> str:
    """A string without control characters, at most ``max_length`` characters long."""
    if not isinstance(value, str):
        raise _fail(field, f"must be a string, not {type(value).__name__}")
    if not value and not allow_empty:
        raise _fail(field, "must not be empty")
    if len(value) > max_length:
        raise _fail(field, f"longer than {max_length} characters")
    if _CONTROL_RE.search(value):
        raise _fail(field, "contains control characters")
    return value


def validate_token(token: object) -> str:
    """The PBX token: it becomes a topic level, so no wildcards, slashes or spaces."""
    text = validate_text(token, "token", max_length=MAX_TOKEN_LENGTH)
    if any(char in "+#/" for char in text):
        raise _fail("token", "must not contain '+', '#' or '/'")
    if not text.isprintable() or any(char.isspace() for char in text):
        raise _fail("token", "must not contain whitespace or unprintable characters")
    return text


def token_of_publication(topic: str) -> str | None:
    """The valid token of an event or CDR topic a PBX publishes on; None for other topics."""
    match = _PUBLICATION_RE.fullmatch(topic)
    try:
        return validate_token(match["token"]) if match else None
    except PbxInvalidArgumentError:
        return None


def validate_number(value: object, field: str = "number") -> str:
    """An extension, queue, conference or phone number: ``[0-9*#]`` with optional ``+``."""
    text = validate_text(value, field, max_length=MAX_NUMBER_LENGTH)
    if not _NUMBER_RE.fullmatch(text):
        raise _fail(field, "may contain only digits, '*' and '#', with an optional leading '+'")
    return text


def validate_callid(value: object, field: str = "callid") -> str:
    """An Asterisk uniqueid such as ``1673071399.25``."""
    text = validate_text(value, field, max_length=MAX_CALLID_LENGTH)
    if not _CALLID_RE.fullmatch(text):
        raise _fail(field, "must look like an Asterisk call id, e.g. 1673071399.25")
    return text


def validate_channel(value: object, field: str = "channel") -> str:
    """An Asterisk channel name such as ``PJSIP/8001-00000002`` or ``FXS/5``."""
    text = validate_text(value, field, max_length=MAX_CHANNEL_LENGTH)
    if not _CHANNEL_RE.fullmatch(text):
        raise _fail(field, "must look like TECH/resource, e.g. PJSIP/8001-00000002")
    return text


def validate_listen_mode(value: object) -> ListenMode:
    """listen, whisper or barge (an enum member or its text)."""
    try:
        return ListenMode(value)  # type: ignore[arg-type]  # anything else raises ValueError
    except ValueError:
        raise _fail("mode", f"must be one of {', '.join(ListenMode)}") from None


def validate_transfer_operation(value: object) -> TransferOperation:
    """complete or cancel (an enum member or its text)."""
    try:
        return TransferOperation(value)  # type: ignore[arg-type]  # else ValueError
    except ValueError:
        raise _fail("operation", f"must be one of {', '.join(TransferOperation)}") from None


def validate_permission(value: object) -> Permission:
    """Outbound permission 0-4, as a Permission, an int or its text."""
    if isinstance(value, bool):
        raise _fail("permission", "must be 0-4, not a boolean")
    try:
        return Permission(str(value) if isinstance(value, int) else value)  # type: ignore[arg-type]
    except ValueError:
        raise _fail("permission", "must be 0-4") from None


def validate_flag(value: object, field: str) -> bool:
    """A real boolean (``paused``, ``logged_in``...): truthy strings are refused."""
    if not isinstance(value, bool):
        raise _fail(field, f"must be True or False, not {type(value).__name__}")
    return value


def validate_alarm_start(value: object) -> str:
    """A wake-up time ``HH:MM`` (24 h), returned zero-padded."""
    text = validate_text(value, "start", max_length=5)
    match = _ALARM_START_RE.fullmatch(text)
    if match is None:
        raise _fail("start", "must be a 24-hour time HH:MM")
    return f"{int(match[1]):02d}:{match[2]}"


def validate_count(value: object, field: str, *, minimum: int = 0) -> int:
    """A small whole number (alarm cycle, times, days)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be an integer, not {type(value).__name__}")
    if not minimum <= value <= MAX_ALARM_COUNT:
        raise _fail(field, f"must be between {minimum} and {MAX_ALARM_COUNT}")
    return value


def validate_file_name(value: object, field: str) -> str:
    """A file name on the PBX (e.g. a wake-up sound): no path separators."""
    text = validate_text(value, field, max_length=MAX_NAME_LENGTH * 2)
    if any(char in _FILE_NAME_FORBIDDEN for char in text) or text in {".", ".."}:
        raise _fail(field, "must be a plain file name without '/' or '\\'")
    return text


def validate_timeout(value: object) -> float:
    """A per-command timeout in seconds: a positive, finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("timeout", f"must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise _fail("timeout", "must be a positive, finite number of seconds")
    return float(value)


def validate_sub_topic(value: object) -> str:
    """A command sub-topic: system, cfg, call, queue, conf, or another simple word."""
    text = validate_text(value, "sub_topic", max_length=32)
    if text in CommandTopic.__members__.values() or _SUB_TOPIC_RE.fullmatch(text):
        return text
    raise _fail("sub_topic", "must be a lowercase word (system, cfg, call, queue, conf)")


def _check_json_value(value: object, field: str, depth: int) -> None:
    if depth > MAX_NESTING:
        raise _fail(field, f"nested deeper than {MAX_NESTING} levels")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(field, "must be a finite number")
        return
    if isinstance(value, str):
        validate_text(value, field, allow_empty=True)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(field, "object keys must be strings")
            validate_text(key, f"{field}.<key>", max_length=64)
            _check_json_value(item, f"{field}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_value(item, f"{field}[{index}]", depth + 1)
        return
    raise _fail(field, f"{type(value).__name__} cannot be sent as JSON")


def validate_raw_command(payload: object) -> dict[str, Any]:
    """A raw command: an object with a ``cmd`` name and JSON-safe values.

    Returns a shallow copy without any ``request_id`` (the client sets its own).
    """
    if not isinstance(payload, Mapping):
        raise _fail("payload", f"must be a mapping, not {type(payload).__name__}")
    command = payload.get("cmd")
    if not isinstance(command, str) or not _COMMAND_NAME_RE.fullmatch(command):
        raise _fail("cmd", "must be a command name such as 'deviceInfo' or 'queue_list'")
    _check_json_value(payload, "payload", 0)
    return {key: value for key, value in payload.items() if key != "request_id"}

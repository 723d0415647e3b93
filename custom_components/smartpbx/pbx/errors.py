"""Errors raised by the Smart PBX client library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PbxError(Exception):
    """Base class of every error this library raises."""


class PbxConnectionError(PbxError):
    """The MQTT broker could not be reached, or the connection was lost."""


class PbxAuthError(PbxConnectionError):
    """The MQTT broker refused the credentials."""


class PbxNotConnectedError(PbxError):
    """A command was issued while the transport is not connected."""


class PbxTimeoutError(PbxError):
    """The PBX did not answer a command within its timeout."""

    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(f"PBX did not answer {command!r} within {timeout:g} s")
        self.command = command
        self.timeout = timeout


class PbxCommandFailedError(PbxError):
    """The PBX answered a command with status Failed."""

    def __init__(self, command: str, message: str, reply: Mapping[str, Any]) -> None:
        super().__init__(f"PBX rejected {command!r}: {message or 'no message given'}")
        self.command = command
        self.message = message
        self.reply = reply


class PbxUnsupportedCommandError(PbxCommandFailedError):
    """The PBX's firmware does not know the command (it answered "unknown cmd").

    A subclass of PbxCommandFailedError, so code that handles failures in general still
    handles it; catch it first to say "this firmware does not support X" instead.
    """

    def __init__(self, command: str, message: str, reply: Mapping[str, Any]) -> None:
        super().__init__(command, message, reply)
        self.args = (f"the PBX's firmware does not support {command!r} ({message})",)


class PbxInvalidArgumentError(PbxError, ValueError):
    """An argument failed validation; nothing was published."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PbxBusyError(PbxError):
    """Too many commands are awaiting replies; the new one was not sent."""


class PbxMalformedReplyError(PbxError):
    """The PBX answered, but the reply's shape is beyond every known variant."""

    def __init__(self, command: str, reason: str, reply: Mapping[str, Any]) -> None:
        super().__init__(f"PBX sent an unreadable reply to {command!r}: {reason}")
        self.command = command
        self.reason = reason
        self.reply = reply

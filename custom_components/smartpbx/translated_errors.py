"""The client library's errors as translated Home Assistant errors.

One mapping serves the actions (services.py), the buttons and switches (entity.py) and
the coordinators' failed polls (coordinator.py), so each error reads the same wherever
it surfaces; the actions' schemas reject arguments in the same words. Errors name the
PBX command (``conf_kick``, not the action) since that is what the PBX answered, and
what its message refers to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import voluptuous as vol

from .const import DOMAIN
from .pbx.errors import (
    PbxBusyError,
    PbxCommandFailedError,
    PbxConnectionError,
    PbxError,
    PbxInvalidArgumentError,
    PbxNotConnectedError,
    PbxTimeoutError,
    PbxUnsupportedCommandError,
)


def pbx_error_translation(
    err: PbxError, fields: Mapping[str, str] | None = None
) -> tuple[str, dict[str, str] | None]:
    """Translation key and placeholders for ``err``.

    ``fields`` renames the library's argument names to the ones the user typed.
    """
    match err:
        case PbxInvalidArgumentError():
            field = (fields or {}).get(err.field, err.field)
            return "invalid_argument", {"field": field, "reason": err.reason}
        case PbxUnsupportedCommandError():  # before its base class, PbxCommandFailedError
            return "command_unsupported", {"command": err.command}
        case PbxCommandFailedError():
            return "command_failed", {
                "command": err.command,
                "message": err.message or "no reason given",
            }
        case PbxTimeoutError():
            return "command_timeout", {"command": err.command, "timeout": f"{err.timeout:g}"}
        case PbxBusyError():
            return "pbx_busy", None
        case PbxNotConnectedError() | PbxConnectionError():
            return "pbx_not_connected", None
        case _:  # e.g. a reply the library could not read
            return "unexpected_error", {"error": str(err)}


async def async_pbx_call[T](call: Awaitable[T], fields: Mapping[str, str] | None = None) -> T:
    """Await one library call, turning its errors into translated Home Assistant errors.

    A bad argument is the caller's mistake (ServiceValidationError); anything else is
    the PBX's or the connection's (HomeAssistantError).
    """
    try:
        return await call
    except PbxError as err:
        key, placeholders = pbx_error_translation(err, fields)
        error_type = (
            ServiceValidationError
            if isinstance(err, PbxInvalidArgumentError)
            else HomeAssistantError
        )
        raise error_type(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders=placeholders,
        ) from err


def unsupported_command_error(command: str) -> HomeAssistantError:
    """The translated error for a command this PBX's firmware answered "unknown cmd" to."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="command_unsupported",
        translation_placeholders={"command": command},
    )


def raise_if_unsupported(unsupported: set[str], command: str) -> None:
    """Fail at once for a command this PBX's firmware already said it lacks."""
    if command in unsupported:
        raise unsupported_command_error(command)


async def async_field_command[T](
    unsupported: set[str],
    command: str,
    call: Callable[[], Awaitable[T]],
    fields: Mapping[str, str] | None = None,
) -> T:
    """Run a command older firmware may lack (FIELD.md), at most once per reload.

    ``unsupported`` (the entry's runtime data) remembers every command the PBX answered
    "unknown cmd" to; asking for one of those again fails at once, without publishing,
    so neither an action nor a poll repeats a failure the firmware will repeat too.
    ``call`` makes the library call only when it is to be sent.
    """
    raise_if_unsupported(unsupported, command)
    try:
        return await async_pbx_call(call(), fields)
    except HomeAssistantError as err:
        if isinstance(err.__cause__, PbxUnsupportedCommandError):
            unsupported.add(err.__cause__.command)
        raise


def translated_schema(schema: vol.Schema) -> Any:
    """Wrap a schema so its rejections become translated ServiceValidationErrors.

    Home Assistant passes an action schema's own ``vol.Invalid`` through untranslated;
    the wrapper names the offending field in the user's language instead.
    """

    def validate(data: Any) -> Any:
        try:
            return schema(data)
        except vol.Invalid as err:
            errors = getattr(err, "errors", None) or [err]
            first = errors[0]
            field = ".".join(str(part) for part in first.path) or "data"
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="invalid_argument",
                translation_placeholders={"field": field, "reason": first.error_message},
            ) from err

    # Typed Any: Home Assistant declares probatio's schema types, which type checkers do
    # not equate with the voluptuous names this module imports (aliased at run time).
    return vol.All(validate)

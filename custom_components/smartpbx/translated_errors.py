"""The client library's errors as translated Home Assistant errors, the same wherever they surface.

They name the PBX command (``conf_kick``, not the action): what the PBX's message refers to.
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
    """Translation key and placeholders for ``err``; ``fields`` renames argument names."""
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
    """Await one library call, its errors translated (a bad argument: ServiceValidationError)."""
    try:
        return await call
    except PbxError as err:
        key, placeholders = pbx_error_translation(err, fields)
        invalid = isinstance(err, PbxInvalidArgumentError)
        raise (ServiceValidationError if invalid else HomeAssistantError)(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders=placeholders,
        ) from err


def raise_if_unsupported(unsupported: set[str], command: str) -> None:
    """Fail at once for a command this PBX's firmware already said it lacks."""
    if command in unsupported:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_unsupported",
            translation_placeholders={"command": command},
        )


async def async_field_command[T](
    unsupported: set[str], command: str, call: Callable[[], Awaitable[T]]
) -> T:
    """Run a command older firmware may lack (FIELD.md), sending it at most once per reload.

    ``unsupported`` (runtime data) remembers each command the PBX answered "unknown cmd" to.
    """
    raise_if_unsupported(unsupported, command)
    try:
        return await async_pbx_call(call())
    except HomeAssistantError as err:
        if isinstance(err.__cause__, PbxUnsupportedCommandError):
            unsupported.add(command)
        raise


def translated_schema(schema: vol.Schema) -> Any:
    """``schema``, rejecting in a translated ServiceValidationError that names the field
    (Home Assistant would pass ``vol.Invalid`` through untranslated)."""

    def validate(data: Any) -> Any:
        try:
            return schema(data)
        except vol.Invalid as err:
            first = (getattr(err, "errors", None) or [err])[0]
            field = ".".join(str(part) for part in first.path) or "data"
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="invalid_argument",
                translation_placeholders={"field": field, "reason": first.error_message},
            ) from err

    # Typed Any: HA declares probatio's schema types, which are not voluptuous's to mypy.
    return vol.All(validate)

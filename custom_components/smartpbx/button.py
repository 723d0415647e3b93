"""Buttons of the Smart PBX integration."""

from __future__ import annotations

from typing import Any

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .coordinator import SmartPbxConfigEntry, SmartPbxCoordinator
from .entity import ExtensionEntity, async_add_subject_entities
from .pbx.errors import PbxCommandFailedError
from .pbx.models import ExtensionCall, calls_of_extension
from .translated_errors import async_field_command, async_pbx_call

# Each press sends commands to the PBX; one at a time per platform is plenty.
PARALLEL_UPDATES = 1

# Disabled by default: a button on every extension costs memory and entities (Home
# Assistant caps an entry at 10,000) on a large PBX, and the hangup action does the same.
HANG_UP = ButtonEntityDescription(
    key="hang_up", translation_key="hang_up", entity_registry_enabled_default=False
)


class HangUpButton(ExtensionEntity[SmartPbxCoordinator[Any]], ButtonEntity):
    _follows_status_events = False  # acts on live calls, not on the status

    async def async_press(self) -> None:
        """Hang up the extension's own channel (``extcallinfo``: other calls of its peer stay),
        else, on firmware that lacks or refuses it, the live calls it is in."""
        client = self.runtime.client
        own: ExtensionCall | None = None
        try:
            own = await async_field_command(
                self.runtime.unsupported_commands,
                "extcallinfo",
                lambda: client.extension_call(self.number),
            )
        except HomeAssistantError as err:
            # Anything but the PBX's refusal (Failed, or remembered as unsupported) stands.
            refused = isinstance(err.__cause__, PbxCommandFailedError)
            if not refused and err.translation_key != "command_unsupported":
                raise
        if own is not None and own.channel is not None:
            await async_pbx_call(client.hangup(channel=own.channel))
        else:
            # Ask now rather than trust the last poll: the call may have just started.
            mine = calls_of_extension(await async_pbx_call(client.live_calls()), self.number)
            if not mine:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="no_active_call",
                    translation_placeholders={"extension": self.number},
                )
            for call in mine:
                await async_pbx_call(client.hangup(call.callid))
        self.runtime.live_calls.async_schedule_refresh()


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartPbxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    data = entry.runtime_data
    async_add_subject_entities(
        entry,
        async_add_entities,
        extensions=lambda extension: [HangUpButton(data.system, data, HANG_UP, extension)],
    )

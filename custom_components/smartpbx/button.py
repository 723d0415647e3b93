"""Buttons of the Smart PBX integration."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .coordinator import (
    SmartPbxConfigEntry,
    SmartPbxCoordinator,
    SmartPbxData,
    calls_of_extension,
)
from .entity import ExtensionEntity, PbxEntity, async_add_entities_for_new_keys
from .translated_errors import async_pbx_call

# Each press sends commands to the PBX; one at a time per platform is plenty.
PARALLEL_UPDATES = 1

REFRESH = ButtonEntityDescription(
    key="refresh",
    translation_key="refresh",
    entity_category=EntityCategory.DIAGNOSTIC,
)

# Disabled by default: a button on every extension costs memory and entities (Home
# Assistant caps an entry at 10,000) on a large PBX, and the hangup action does the same.
HANG_UP = ButtonEntityDescription(
    key="hang_up", translation_key="hang_up", entity_registry_enabled_default=False
)


class RefreshButton(PbxEntity[SmartPbxCoordinator[Any]], ButtonEntity):
    """Poll everything now, without waiting for the poll interval."""

    def __init__(self, runtime: SmartPbxData) -> None:
        super().__init__(runtime.system, runtime, REFRESH)

    @property
    def available(self) -> bool:
        # Pressable while the PBX is silent: that is when asking again is useful.
        return self.runtime.health.connected

    async def async_press(self) -> None:
        await asyncio.gather(
            *(coordinator.async_refresh() for coordinator in self.runtime.coordinators)
        )


class HangUpButton(ExtensionEntity[SmartPbxCoordinator[Any]], ButtonEntity):
    """End the call(s) this extension is on."""

    _follows_status_events = False  # acts on live calls, not on the status

    async def async_press(self) -> None:
        client = self.runtime.client
        timeout = self.runtime.command_timeout
        # Ask now rather than trust the last poll: the call may have just started.
        calls = await async_pbx_call(client.live_calls(timeout=timeout))
        mine = calls_of_extension(calls, self.number)
        if not mine:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="no_active_call",
                translation_placeholders={"extension": self.number},
            )
        for call in mine:
            await async_pbx_call(client.hangup(call.callid, timeout=timeout))
        self.runtime.live_calls.async_schedule_refresh()


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartPbxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the PBX's refresh button and a hang-up button per extension."""
    data = entry.runtime_data
    async_add_entities([RefreshButton(data)])

    def extension_buttons(number: str) -> list[HangUpButton]:
        extension = data.system.data.extensions[number]
        return [HangUpButton(data.system, data, HANG_UP, extension)]

    async_add_entities_for_new_keys(
        entry,
        data.system,
        lambda: data.system.data.extensions,
        extension_buttons,
        async_add_entities,
    )

"""Binary sensors of the Smart PBX integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import SmartPbxConfigEntry, SmartPbxCoordinator, SmartPbxData
from .entity import (
    ExtensionEntity,
    PbxEntity,
    TrunkEntity,
    async_add_system_entities,
)
from .pbx.models import Extension, ExtensionState, Trunk, TrunkState

PARALLEL_UPDATES = 0

# Busy is Asterisk's "in use and at its call limit": on a call too. Ringing is not yet.
ON_CALL_STATES = frozenset({ExtensionState.IN_USE, ExtensionState.BUSY, ExtensionState.ON_HOLD})

PBX_CONNECTIVITY = BinarySensorEntityDescription(
    key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


class PbxConnectivitySensor(PbxEntity[SmartPbxCoordinator[Any]], BinarySensorEntity):
    """Whether the PBX answers over MQTT; itself always available, to show the outage."""

    def __init__(self, runtime: SmartPbxData) -> None:
        super().__init__(runtime.system, runtime, PBX_CONNECTIVITY)

    @property
    def available(self) -> bool:
        return True

    @property
    def is_on(self) -> bool:
        return (
            self.runtime.connected
            and self.runtime.pbx_online
            and self.coordinator.last_update_success
        )


@dataclass(frozen=True, kw_only=True)
class ExtensionBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A binary sensor of an extension device."""

    is_on_fn: Callable[[Extension], bool | None]


EXTENSION_BINARY_SENSORS: tuple[ExtensionBinarySensorEntityDescription, ...] = (
    ExtensionBinarySensorEntityDescription(
        key="on_call",
        translation_key="on_call",
        is_on_fn=lambda extension: (
            None if extension.state is ExtensionState.UNKNOWN else extension.state in ON_CALL_STATES
        ),
    ),
)


class ExtensionBinarySensor(ExtensionEntity[SmartPbxCoordinator[Any]], BinarySensorEntity):
    """A binary sensor of an extension, updated by its status events."""

    entity_description: ExtensionBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        if (extension := self.extension) is None:
            return None
        return self.entity_description.is_on_fn(extension)


@dataclass(frozen=True, kw_only=True)
class TrunkBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A binary sensor of a trunk device."""

    is_on_fn: Callable[[Trunk], bool | None]


TRUNK_BINARY_SENSORS: tuple[TrunkBinarySensorEntityDescription, ...] = (
    TrunkBinarySensorEntityDescription(
        key="connectivity",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        is_on_fn=lambda trunk: (
            None
            if trunk.state is TrunkState.UNKNOWN
            else trunk.state not in (TrunkState.DISCONNECTED, TrunkState.UNAVAILABLE)
        ),
    ),
)


class TrunkBinarySensor(TrunkEntity[SmartPbxCoordinator[Any]], BinarySensorEntity):
    """A binary sensor of a trunk."""

    entity_description: TrunkBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        if (trunk := self.trunk) is None:
            return None
        return self.entity_description.is_on_fn(trunk)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartPbxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the PBX's connectivity sensor and those of each extension and trunk."""
    data = entry.runtime_data
    async_add_entities([PbxConnectivitySensor(data)])

    async_add_system_entities(
        entry,
        async_add_entities,
        lambda system: system.extensions,
        lambda extension: [
            ExtensionBinarySensor(data.system, data, description, extension)
            for description in EXTENSION_BINARY_SENSORS
        ],
    )
    async_add_system_entities(
        entry,
        async_add_entities,
        lambda system: system.trunks,
        lambda trunk: [
            TrunkBinarySensor(data.system, data, description, trunk)
            for description in TRUNK_BINARY_SENSORS
        ],
    )

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
    SmartPbxEntity,
    TrunkEntity,
    async_add_subject_entities,
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
class SubjectBinarySensorEntityDescription[SubjectT](BinarySensorEntityDescription):
    """A binary sensor of an extension or trunk (its subject): on by ``is_on_fn``."""

    is_on_fn: Callable[[SubjectT], bool | None]


class SubjectBinarySensor[SubjectT](SmartPbxEntity[Any, SubjectT], BinarySensorEntity):
    entity_description: SubjectBinarySensorEntityDescription[SubjectT]

    @property
    def is_on(self) -> bool | None:
        if (subject := self.subject) is None:
            return None
        return self.entity_description.is_on_fn(subject)


class ExtensionBinarySensor(
    ExtensionEntity[SmartPbxCoordinator[Any]], SubjectBinarySensor[Extension]
):
    pass


class TrunkBinarySensor(TrunkEntity[SmartPbxCoordinator[Any]], SubjectBinarySensor[Trunk]):
    pass


ON_CALL = SubjectBinarySensorEntityDescription[Extension](
    key="on_call",
    translation_key="on_call",
    is_on_fn=lambda extension: (
        None if extension.state is ExtensionState.UNKNOWN else extension.state in ON_CALL_STATES
    ),
)
TRUNK_CONNECTIVITY = SubjectBinarySensorEntityDescription[Trunk](
    key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    is_on_fn=lambda trunk: (
        None
        if trunk.state is TrunkState.UNKNOWN
        else trunk.state not in (TrunkState.DISCONNECTED, TrunkState.UNAVAILABLE)
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartPbxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the PBX's connectivity sensor and those of each extension and trunk."""
    data = entry.runtime_data
    async_add_entities([PbxConnectivitySensor(data)])
    async_add_subject_entities(
        entry,
        async_add_entities,
        extensions=lambda extension: [ExtensionBinarySensor(data.system, data, ON_CALL, extension)],
        trunks=lambda trunk: [TrunkBinarySensor(data.system, data, TRUNK_CONNECTIVITY, trunk)],
    )

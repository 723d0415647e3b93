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


@dataclass(frozen=True, kw_only=True)
class SmartPbxBinarySensorEntityDescription[SubjectT](BinarySensorEntityDescription):
    is_on_fn: Callable[[SubjectT], bool | None]


class SmartPbxBinarySensor[SubjectT](SmartPbxEntity[Any, SubjectT], BinarySensorEntity):
    entity_description: SmartPbxBinarySensorEntityDescription[SubjectT]

    @property
    def is_on(self) -> bool | None:
        if (subject := self.subject) is None:
            return None
        return self.entity_description.is_on_fn(subject)


class PbxConnectivitySensor(
    PbxEntity[SmartPbxCoordinator[Any]], SmartPbxBinarySensor[SmartPbxData]
):
    """Whether the PBX answers over MQTT; itself always available, to show the outage."""

    @property
    def available(self) -> bool:
        return True


class ExtensionBinarySensor(
    ExtensionEntity[SmartPbxCoordinator[Any]], SmartPbxBinarySensor[Extension]
):
    pass


class TrunkBinarySensor(TrunkEntity, SmartPbxBinarySensor[Trunk]):
    pass


PBX_CONNECTIVITY = SmartPbxBinarySensorEntityDescription[SmartPbxData](
    key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
    is_on_fn=lambda data: data.connected and data.pbx_online and data.system.last_update_success,
)
ON_CALL = SmartPbxBinarySensorEntityDescription[Extension](
    key="on_call",
    translation_key="on_call",
    is_on_fn=lambda extension: (
        None if extension.state is ExtensionState.UNKNOWN else extension.state in ON_CALL_STATES
    ),
)
TRUNK_CONNECTIVITY = SmartPbxBinarySensorEntityDescription[Trunk](
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
    data = entry.runtime_data
    async_add_entities([PbxConnectivitySensor(data.system, data, PBX_CONNECTIVITY)])
    async_add_subject_entities(
        entry,
        async_add_entities,
        extensions=lambda extension: [ExtensionBinarySensor(data.system, data, ON_CALL, extension)],
        trunks=lambda trunk: [TrunkBinarySensor(data, TRUNK_CONNECTIVITY, trunk)],
    )

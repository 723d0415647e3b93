"""Sensors of the Smart PBX integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfElectricPotential, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .call_log import CALL_LOG_SENSORS, CallLogSensor
from .const import BOOT_TIME_TOLERANCE, MAX_CALLS_IN_ATTRIBUTES
from .coordinator import (
    ConferenceData,
    QueueData,
    SmartPbxConfigEntry,
    SmartPbxCoordinator,
    SmartPbxData,
)
from .entity import (
    ExtensionEntity,
    ListedEntity,
    PbxEntity,
    SmartPbxEntity,
    TrunkEntity,
    async_add_subject_entities,
)
from .pbx.models import (
    Extension,
    ExtensionState,
    QueueStatus,
    Trunk,
    TrunkState,
    TrunkType,
    calls_of_extension,
)

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class SmartPbxSensorEntityDescription[SubjectT](SensorEntityDescription):
    """State and attributes as functions of the sensor's subject and the runtime data."""

    value_fn: Callable[[SubjectT, SmartPbxData], StateType]
    attr_fn: Callable[[SubjectT, SmartPbxData], dict[str, Any] | None] = lambda *_: None
    supported_fn: Callable[[SubjectT], bool] = lambda _: True
    coordinator_fn: Callable[[SmartPbxData], SmartPbxCoordinator[Any]] = lambda data: data.system


class SmartPbxSensor[SubjectT](SmartPbxEntity[Any, SubjectT], SensorEntity):
    entity_description: SmartPbxSensorEntityDescription[SubjectT]
    # Lists change with every call or join; the count is what history is for.
    _unrecorded_attributes = frozenset({"calls", "participants"})

    @property
    def native_value(self) -> StateType:
        if (subject := self.subject) is None:
            return None
        return self.entity_description.value_fn(subject, self.runtime)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        if (subject := self.subject) is None:
            return None
        return self.entity_description.attr_fn(subject, self.runtime)


class PbxSensor(PbxEntity[SmartPbxCoordinator[Any]], SmartPbxSensor[SmartPbxData]):
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        # What the system feeds (extensions online) changes with extensions' status events too.
        if self.coordinator is self.runtime.system:
            self.async_on_remove(
                self.runtime.system.async_add_extension_listener(None, self._handle_status_event)
            )

    @callback
    def _handle_status_event(self) -> None:
        self.async_set_context(self.runtime.system.status_event_context)
        self._handle_coordinator_update()


class ExtensionSensor(ExtensionEntity[SmartPbxCoordinator[Any]], SmartPbxSensor[Extension]):
    def __init__(
        self,
        runtime: SmartPbxData,
        description: SmartPbxSensorEntityDescription[Extension],
        extension: Extension,
    ) -> None:
        coordinator = description.coordinator_fn(runtime)
        super().__init__(coordinator, runtime, description, extension)
        # What the live calls feed (the current peer) does not change with the status.
        self._follows_status_events = coordinator is runtime.system


class TrunkSensor(TrunkEntity, SmartPbxSensor[Trunk]):
    pass


class ListedSensor[DataT](ListedEntity[DataT], SmartPbxSensor[DataT]):
    pass


PBX_SENSORS: tuple[SmartPbxSensorEntityDescription[SmartPbxData], ...] = (
    SmartPbxSensorEntityDescription(
        key="active_calls",
        translation_key="active_calls",
        state_class=SensorStateClass.MEASUREMENT,
        coordinator_fn=lambda data: data.live_calls,
        value_fn=lambda data, _: len(data.live_calls.data),
        attr_fn=lambda data, _: {
            "calls": [
                call.attributes(data.caller_names.name)
                for call in data.live_calls.data[:MAX_CALLS_IN_ATTRIBUTES]
            ]
        },
    ),
    SmartPbxSensorEntityDescription(
        key="extensions_online",
        translation_key="extensions_online",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data, _: sum(
            extension.state is not ExtensionState.UNAVAILABLE
            for extension in data.system.data.extensions.values()
        ),
    ),
)


class LastBootSensor(PbxEntity[SmartPbxCoordinator[Any]], SensorEntity):
    """Now minus the PBX's uptime (its ``systemtime`` is in a zone it does not state); moves
    only by more than BOOT_TIME_TOLERANCE (a reboot, a clock set), not with poll wobble."""

    _attr_native_value: datetime | None = None

    def __init__(self, runtime: SmartPbxData) -> None:
        description = SensorEntityDescription(
            key="last_boot",
            translation_key="last_boot",
            device_class=SensorDeviceClass.TIMESTAMP,
            entity_category=EntityCategory.DIAGNOSTIC,
        )
        super().__init__(runtime.system, runtime, description)
        self._update_boot()

    def _update_boot(self) -> None:
        if (uptime := self.runtime.system.data.device_info.uptime) is None:
            return
        boot = (dt_util.utcnow() - uptime).replace(microsecond=0)
        last = self._attr_native_value
        if last is None or abs(boot - last) > BOOT_TIME_TOLERANCE:
            self._attr_native_value = boot

    @callback
    def _handle_coordinator_update(self) -> None:
        self._update_boot()
        super()._handle_coordinator_update()


def _current_peer(extension: Extension, data: SmartPbxData) -> str | None:
    calls = calls_of_extension(data.live_calls.data, extension.number)
    return calls[0].peer_of(extension.number) if calls else None


# Home Assistant reserves "unavailable" and "unknown" for the entity itself: a phone the
# PBX reports as Unavailable is "offline" here (shown as "Unavailable"), and a state the
# library does not know becomes HA's own unknown, with the PBX's text in an attribute.
OFFLINE = "offline"


_SPECIAL_STATES: Final = {"unknown": None, "unavailable": OFFLINE}


def _enum_state(state: ExtensionState | TrunkState) -> str | None:
    # str() of these StrEnums is their value, without Enum.value's descriptor (this runs
    # on every status event).
    value = str(state)
    return _SPECIAL_STATES.get(value, value)


def _enum_options(states: type[ExtensionState] | type[TrunkState]) -> list[str]:
    return [option for state in states if (option := _enum_state(state)) is not None]


EXTENSION_SENSORS: tuple[SmartPbxSensorEntityDescription[Extension], ...] = (
    SmartPbxSensorEntityDescription(
        key="status",
        translation_key="extension_status",
        device_class=SensorDeviceClass.ENUM,
        options=_enum_options(ExtensionState),
        value_fn=lambda extension, _: _enum_state(extension.state),
        attr_fn=lambda extension, _: {
            "type": extension.type.value,
            "port": extension.port,
            "pbx_status": extension.state_raw,
        },
    ),
    # Disabled by default: the active-calls sensor lists both parties of every call, and on a
    # large PBX each entity per extension costs ~10 KiB and one of the 10,000 per entry.
    SmartPbxSensorEntityDescription(
        key="current_peer",
        translation_key="current_peer",
        value_fn=_current_peer,
        attr_fn=lambda extension, data: {
            "peer_name": data.caller_names.name(_current_peer(extension, data))
        },
        coordinator_fn=lambda data: data.live_calls,
        entity_registry_enabled_default=False,
    ),
)

TRUNK_SENSORS: tuple[SmartPbxSensorEntityDescription[Trunk], ...] = (
    SmartPbxSensorEntityDescription(
        key="status",
        translation_key="trunk_status",
        device_class=SensorDeviceClass.ENUM,
        options=_enum_options(TrunkState),
        value_fn=lambda trunk, _: _enum_state(trunk.state),
    ),
    SmartPbxSensorEntityDescription(
        key="line_voltage",
        translation_key="line_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        value_fn=lambda trunk, _: trunk.line_voltage,
        supported_fn=lambda trunk: trunk.type is TrunkType.FXO,
    ),
)


def _queue_sensor(
    key: str,
    read: Callable[[QueueStatus], int | None],
    *,
    total: bool = False,
    seconds: bool = False,
) -> SmartPbxSensorEntityDescription[QueueData]:
    """``read`` of the queue's status; unknown while the PBX refuses the status."""
    return SmartPbxSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.DURATION if seconds else None,
        state_class=SensorStateClass.TOTAL_INCREASING if total else SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.SECONDS if seconds else None,
        value_fn=lambda queue, _: None if queue.status is None else read(queue.status),
    )


QUEUE_SENSORS: tuple[SmartPbxSensorEntityDescription[QueueData], ...] = (
    _queue_sensor("waiting_calls", lambda status: status.calls),
    _queue_sensor("completed_calls", lambda status: status.completed, total=True),
    _queue_sensor("abandoned_calls", lambda status: status.abandoned, total=True),
    _queue_sensor("hold_time", lambda status: status.hold_time, seconds=True),
    _queue_sensor("talk_time", lambda status: status.talk_time, seconds=True),
    SmartPbxSensorEntityDescription(
        key="strategy",
        translation_key="strategy",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda queue, _: (queue.status.strategy if queue.status else "")
        or queue.item.strategy
        or None,
    ),
)

# The room's PINs (on the Conference model) are deliberately never read here.
PARTICIPANTS = SmartPbxSensorEntityDescription[ConferenceData](
    key="participants",
    translation_key="participants",
    state_class=SensorStateClass.MEASUREMENT,
    value_fn=lambda room, _: None if room.status is None else len(room.status.members),
    attr_fn=lambda room, _: None
    if room.status is None
    else {
        "participants": [
            {"number": member.callerid, "muted": member.muted} for member in room.status.members
        ]
    },
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartPbxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    data = entry.runtime_data
    async_add_entities(
        [
            *(PbxSensor(d.coordinator_fn(data), data, d) for d in PBX_SENSORS),
            LastBootSensor(data),
            *(CallLogSensor(data, description) for description in CALL_LOG_SENSORS),
        ]
    )
    async_add_subject_entities(
        entry,
        async_add_entities,
        extensions=lambda extension: [
            ExtensionSensor(data, description, extension) for description in EXTENSION_SENSORS
        ],
        trunks=lambda trunk: [
            TrunkSensor(data, description, trunk)
            for description in TRUNK_SENSORS
            if description.supported_fn(trunk)
        ],
        queues=lambda queue: [
            ListedSensor(data.queues, data, description, queue.item.number)
            for description in QUEUE_SENSORS
        ],
        conferences=lambda room: [
            ListedSensor(data.conferences, data, PARTICIPANTS, room.item.number)
        ],
    )

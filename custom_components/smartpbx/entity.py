"""Devices, base entities and entity adding: the PBX is a device, and via it each extension,
trunk, queue and conference (identifiers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, MANUFACTURER
from .coordinator import (
    ConferenceData,
    QueueData,
    SmartPbxConfigEntry,
    SmartPbxCoordinator,
    SmartPbxData,
    SmartPbxSystemCoordinator,
)
from .identifiers import child_identifier, pbx_identifier
from .pbx.models import DeviceInfo as PbxDeviceInfo, Extension, ExtensionType, Trunk, TrunkType

_MODELS = {"queue": "Call queue", "conference": "Conference room"}
_EXTENSION_MODELS = {ExtensionType.SIP: "SIP extension", ExtensionType.FXS: "FXS extension"}
_TRUNK_MODELS = {TrunkType.SIP: "SIP trunk", TrunkType.FXO: "FXO trunk"}


def pbx_device_info(info: PbxDeviceInfo) -> DeviceInfo:
    return DeviceInfo(
        identifiers={pbx_identifier(info.serial)},
        manufacturer=MANUFACTURER,
        model=info.device_name or None,
        name=info.display_name,
        serial_number=info.serial,
        sw_version=info.firmware or None,
    )


def child_device_info(
    runtime: SmartPbxData, kind: str, key: str, model: str | None = None, name: str | None = None
) -> DeviceInfo:
    """The device of an extension, trunk, queue or conference (``kind``), e.g. "Queue 6666"."""
    return DeviceInfo(
        identifiers={child_identifier(runtime.serial, kind, key)},
        manufacturer=MANUFACTURER,
        model=model or _MODELS[kind],
        name=name or f"{kind.capitalize()} {key}",
        via_device_id=runtime.pbx_device_id,
    )


def extension_device_info(runtime: SmartPbxData, extension: Extension) -> DeviceInfo:
    """One object shared by the extension's entities while it stays the same, which on a
    PBX with thousands of extensions is noticeably less memory."""
    number = extension.number
    own_name = extension.own_name
    name = None if own_name is None else f"Extension {number} {own_name}"
    model = _EXTENSION_MODELS.get(extension.type, "Extension")
    info = child_device_info(runtime, "extension", number, model, name)
    if runtime.extension_devices.get(number) != info:
        runtime.extension_devices[number] = info
    return runtime.extension_devices[number]


def trunk_device_info(runtime: SmartPbxData, trunk: Trunk) -> DeviceInfo:
    model = _TRUNK_MODELS.get(trunk.type, "Trunk")
    return child_device_info(runtime, "trunk", trunk.name, model)


def _child_devices(data: SmartPbxData) -> dict[tuple[str, str], DeviceInfo]:
    """Every extension, trunk, queue and conference device the PBX lists now, by identifier."""
    infos: list[DeviceInfo] = [
        *(extension_device_info(data, ext) for ext in data.system.data.extensions.values()),
        *(trunk_device_info(data, trunk) for trunk in data.system.data.trunks.values()),
        *(child_device_info(data, "queue", number) for number in data.queues.data),
        *(child_device_info(data, "conference", number) for number in data.conferences.data),
    ]
    return {identifier: info for info in infos for identifier in info["identifiers"]}


def device_still_present(data: SmartPbxData, device: dr.DeviceEntry) -> bool:
    """Whether the PBX still lists what ``device`` stands for (or it is the PBX itself)."""
    listed = {pbx_identifier(data.serial), *_child_devices(data)}
    return not device.identifiers.isdisjoint(listed)


@callback
def async_sync_devices(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> None:
    """Keep the device registry in step with what the PBX lists; never create devices.

    After each update of a coordinator: rename what it lists, keep the PBX's firmware
    current and remove (with their entities) the devices two updates in a row missed: a
    PBX reloading its configuration lists nothing for a moment, and a removal costs the
    user the names, areas and history settings of every entity.
    """
    data = entry.runtime_data
    registry = dr.async_get(hass)

    def follow(coordinator: SmartPbxCoordinator[Any], *kinds: str) -> None:
        prefixes = tuple(child_identifier(data.serial, kind, "")[1] for kind in kinds)
        missing: set[str] = set()

        @callback
        def sync() -> None:
            nonlocal missing
            children = _child_devices(data)
            gone: set[str] = set()
            for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
                if coordinator is data.system and pbx_identifier(data.serial) in device.identifiers:
                    pbx = pbx_device_info(data.system.data.device_info)
                    # A no-op unless the firmware (or model) changed.
                    registry.async_update_device(
                        device.id, sw_version=pbx.get("sw_version"), model=pbx.get("model")
                    )
                elif any(
                    domain == DOMAIN and identifier.startswith(prefixes)
                    for domain, identifier in device.identifiers
                ):
                    info = next((children[i] for i in device.identifiers if i in children), None)
                    if info is None:
                        gone.add(device.id)
                    elif device.name != info.get("name"):
                        registry.async_update_device(device.id, name=info.get("name"))
            for device_id in gone & missing:
                registry.async_remove_device(device_id)
            missing = gone - missing

        entry.async_on_unload(coordinator.async_add_listener(sync))
        sync()

    follow(data.system, "extension", "trunk")
    follow(data.queues, "queue")
    follow(data.conferences, "conference")


class SmartPbxEntity[CoordinatorT: SmartPbxCoordinator[Any], SubjectT](
    CoordinatorEntity[CoordinatorT]
):
    """An entity of the PBX or of one extension, trunk, queue or conference: its subject,
    None (and the entity unavailable) once the PBX no longer lists it.

    Unique ids are ``<serial>_<device part>_<description key>``, e.g.
    ``XR1813_extension_8001_status``; the PBX's own entities omit the device part.
    """

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: CoordinatorT,
        runtime: SmartPbxData,
        description: EntityDescription,
        *,
        device_info: DeviceInfo,
        unique_part: str | None = None,
    ) -> None:
        super().__init__(coordinator)
        self.runtime = runtime
        self.entity_description = description
        self._attr_device_info = device_info
        parts = [runtime.serial, unique_part, description.key]
        self._attr_unique_id = "_".join(part for part in parts if part)

    @property
    def available(self) -> bool:
        """The one availability rule of the integration.

        An entity is available while the MQTT transport is connected, the PBX has not
        said "offline" on its status topic since (field firmware: its MQTT will, so the
        broker's word that the PBX is gone, before any poll could tell), its coordinator's
        last poll succeeded (a failed poll raises UpdateFailed; Home Assistant logs the
        failure and the recovery once each) and the PBX still lists its subject. The
        connection listener, the status topic and every poll notify the entities; the
        repair issue for a PBX that stays silent follows the system coordinator
        (``__init__.py``).
        """
        # Read on every state write (twice per status event): kept to plain attributes;
        # the coordinator's last_update_success is CoordinatorEntity's own rule.
        runtime = self.runtime
        return (
            runtime.connected
            and runtime.pbx_online
            and self.coordinator.last_update_success
            and self._present
        )

    @property
    def _present(self) -> bool:
        """Whether the PBX still lists this entity's subject."""
        return self.subject is not None

    @property
    def subject(self) -> SubjectT | None:
        raise NotImplementedError


class PbxEntity[CoordinatorT: SmartPbxCoordinator[Any]](SmartPbxEntity[CoordinatorT, SmartPbxData]):
    """An entity of the PBX device itself: its subject is the runtime data."""

    def __init__(
        self, coordinator: CoordinatorT, runtime: SmartPbxData, description: EntityDescription
    ) -> None:
        device_info = pbx_device_info(runtime.system.data.device_info)
        super().__init__(coordinator, runtime, description, device_info=device_info)

    @property
    def subject(self) -> SmartPbxData:
        return self.runtime


class ExtensionEntity[CoordinatorT: SmartPbxCoordinator[Any]](
    SmartPbxEntity[CoordinatorT, Extension]
):
    """An entity of one extension. Those whose state derives from its status
    (``_follows_status_events``) are rewritten at once by its status events; the others wait
    for their coordinator, so a burst of status events writes two entities per event."""

    _follows_status_events = True

    def __init__(
        self,
        coordinator: CoordinatorT,
        runtime: SmartPbxData,
        description: EntityDescription,
        extension: Extension,
    ) -> None:
        super().__init__(
            coordinator,
            runtime,
            description,
            device_info=extension_device_info(runtime, extension),
            unique_part=f"extension_{extension.number}",
        )
        self.number = extension.number
        self._last_written: tuple[Extension | None, bool] | None = None

    @property
    def subject(self) -> Extension | None:
        return self.runtime.system.data.extensions.get(self.number)

    @property
    def _present(self) -> bool:
        return self.number in self.runtime.system.data.extensions

    @callback
    def _handle_coordinator_update(self) -> None:
        if self._follows_status_events:
            # These entities' state is made of the extension and availability alone. A
            # system poll notifies every listener (deviceInfo's uptime changes anyway);
            # on a large PBX rewriting thousands of unchanged states is most of its cost.
            written = (self.subject, self.available)
            if written == self._last_written:
                return
            self._last_written = written
        super()._handle_coordinator_update()

    @callback
    def _handle_status_event(self) -> None:
        # A status event always changes the extension: write without comparing (this is
        # the hot path of event bursts), and let the next poll compare afresh.
        self._last_written = None
        self.async_set_context(self.runtime.system.status_event_context)
        self.async_write_ha_state()

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        if self._follows_status_events:
            # Status events update only this extension's entities, without a poll.
            self.async_on_remove(
                self.runtime.system.async_add_extension_listener(
                    self.number, self._handle_status_event
                )
            )


class TrunkEntity(SmartPbxEntity[SmartPbxSystemCoordinator, Trunk]):
    def __init__(self, runtime: SmartPbxData, description: EntityDescription, trunk: Trunk) -> None:
        device_info = trunk_device_info(runtime, trunk)
        unique_part = f"trunk_{trunk.name}"
        super().__init__(
            runtime.system, runtime, description, device_info=device_info, unique_part=unique_part
        )
        self.trunk_name = trunk.name

    @property
    def subject(self) -> Trunk | None:
        return self.runtime.system.data.trunks.get(self.trunk_name)


class ListedEntity[DataT](SmartPbxEntity[SmartPbxCoordinator[dict[str, DataT]], DataT]):
    """An entity of one queue or conference: ``number`` in its coordinator's data."""

    def __init__(
        self,
        coordinator: SmartPbxCoordinator[dict[str, DataT]],
        runtime: SmartPbxData,
        description: EntityDescription,
        number: str,
    ) -> None:
        kind = "queue" if coordinator is runtime.queues else "conference"
        super().__init__(
            coordinator,
            runtime,
            description,
            device_info=child_device_info(runtime, kind, number),
            unique_part=f"{kind}_{number}",
        )
        self.number = number

    @property
    def subject(self) -> DataT | None:
        return self.coordinator.data.get(self.number)


@callback
def async_add_entities_for_new_keys[KeyT](
    entry: SmartPbxConfigEntry,
    coordinator: SmartPbxCoordinator[Any],
    current_keys: Callable[[], Iterable[KeyT]],
    create: Callable[[KeyT], Iterable[Entity]],
    async_add_entities: Callable[[list[Entity]], None],
    on_vanished: Callable[[set[KeyT]], None] | None = None,
) -> None:
    """Add entities for every key now, and for keys that appear in later updates.

    A key whose entities were removed (with their device) gets new ones if it comes back.
    Keys without a device of their own (queue members) need ``on_vanished``: called with
    the keys two updates in a row did not list.
    """
    known: set[KeyT] = set()
    missing: set[KeyT] = set()

    @callback
    def forget(entity: Entity, key: KeyT) -> None:
        # Home Assistant also runs on-remove callbacks when it declines to add an entity
        # disabled in the registry and when it removes one the user disabled: forgetting the
        # key then would re-create its entities at every update (duplicate unique ids).
        if entity.registry_entry is None or not entity.registry_entry.disabled:
            known.discard(key)

    @callback
    def check() -> None:
        nonlocal missing
        current = set(current_keys())
        new_entities: list[Entity] = []
        for key in sorted(current - known, key=str):
            known.add(key)
            for entity in create(key):
                entity.async_on_remove(partial(forget, entity, key))
                new_entities.append(entity)
        if new_entities:
            async_add_entities(new_entities)
        if on_vanished is not None:
            gone = known - current
            if confirmed := gone & missing:
                on_vanished(confirmed)
            missing = gone - confirmed

    check()
    entry.async_on_unload(coordinator.async_add_listener(check))


@callback
def async_add_subject_entities(
    entry: SmartPbxConfigEntry,
    async_add_entities: Callable[[list[Entity]], None],
    *,
    extensions: Callable[[Extension], Iterable[Entity]] | None = None,
    trunks: Callable[[Trunk], Iterable[Entity]] | None = None,
    queues: Callable[[QueueData], Iterable[Entity]] | None = None,
    conferences: Callable[[ConferenceData], Iterable[Entity]] | None = None,
) -> None:
    """Add a platform's entities of each extension, trunk, queue and conference as they
    appear: each function makes the entities of one."""
    data = entry.runtime_data

    def add[SubjectT](
        coordinator: SmartPbxCoordinator[Any],
        listed: Callable[[], Mapping[str, SubjectT]],
        create: Callable[[SubjectT], Iterable[Entity]] | None,
    ) -> None:
        if create is not None:
            async_add_entities_for_new_keys(
                entry, coordinator, listed, lambda key: create(listed()[key]), async_add_entities
            )

    add(data.system, lambda: data.system.data.extensions, extensions)
    add(data.system, lambda: data.system.data.trunks, trunks)
    add(data.queues, lambda: data.queues.data, queues)
    add(data.conferences, lambda: data.conferences.data, conferences)

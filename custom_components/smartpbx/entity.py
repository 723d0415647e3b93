"""Devices, base entities and entity adding of the Smart PBX integration.

The PBX is a device, and via it each extension, trunk, queue and conference; identifiers
derive from the PBX serial (identifiers.py).
"""

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
from .identifiers import (
    conference_identifier,
    extension_identifier,
    pbx_identifier,
    queue_identifier,
    trunk_identifier,
)
from .pbx.models import DeviceInfo as PbxDeviceInfo, Extension, ExtensionType, Trunk, TrunkType

_EXTENSION_MODELS = {ExtensionType.SIP: "SIP extension", ExtensionType.FXS: "FXS extension"}
_TRUNK_MODELS = {TrunkType.SIP: "SIP trunk", TrunkType.FXO: "FXO trunk"}


def pbx_device_info(info: PbxDeviceInfo) -> DeviceInfo:
    return DeviceInfo(
        identifiers={pbx_identifier(info.serial)},
        manufacturer=MANUFACTURER,
        model=info.device_name or None,
        name=info.device_name or info.serial,
        serial_number=info.serial,
        sw_version=info.firmware or None,
    )


def _child_device_info(
    runtime: SmartPbxData, identifier: tuple[str, str], model: str, name: str
) -> DeviceInfo:
    return DeviceInfo(
        identifiers={identifier},
        manufacturer=MANUFACTURER,
        model=model,
        name=name,
        via_device_id=runtime.pbx_device_id,
    )


def extension_device_info(runtime: SmartPbxData, extension: Extension) -> DeviceInfo:
    """The extension's device: one object shared by its entities while it stays the same,
    which on a PBX with thousands of extensions is noticeably less memory."""
    name = f"Extension {extension.number}"
    # SIP names an extension by its number unless it was given a name of its own.
    if (own_name := extension.name.strip()) and own_name != extension.number:
        name = f"{name} {own_name}"
    model = _EXTENSION_MODELS.get(extension.type, "Extension")
    info = runtime.extension_devices.get(extension.number)
    if info is None or info.get("name") != name or info.get("model") != model:
        identifier = extension_identifier(runtime.serial, extension.number)
        info = _child_device_info(runtime, identifier, model, name)
        runtime.extension_devices[extension.number] = info
    return info


def trunk_device_info(runtime: SmartPbxData, trunk: Trunk) -> DeviceInfo:
    model = _TRUNK_MODELS.get(trunk.type, "Trunk")
    identifier = trunk_identifier(runtime.serial, trunk.name)
    return _child_device_info(runtime, identifier, model, f"Trunk {trunk.name}")


def queue_device_info(runtime: SmartPbxData, number: str) -> DeviceInfo:
    identifier = queue_identifier(runtime.serial, number)
    return _child_device_info(runtime, identifier, "Call queue", f"Queue {number}")


def conference_device_info(runtime: SmartPbxData, number: str) -> DeviceInfo:
    identifier = conference_identifier(runtime.serial, number)
    return _child_device_info(runtime, identifier, "Conference room", f"Conference {number}")


def _child_devices(data: SmartPbxData) -> dict[tuple[str, str], DeviceInfo]:
    """Every extension, trunk, queue and conference device the PBX lists now, by identifier."""
    infos: list[DeviceInfo] = [
        *(extension_device_info(data, ext) for ext in data.system.data.extensions.values()),
        *(trunk_device_info(data, trunk) for trunk in data.system.data.trunks.values()),
        *(queue_device_info(data, number) for number in data.queues.data),
        *(conference_device_info(data, number) for number in data.conferences.data),
    ]
    return {identifier: info for info in infos for identifier in info["identifiers"]}


def device_still_present(data: SmartPbxData, device: dr.DeviceEntry) -> bool:
    """Whether the PBX still lists what ``device`` stands for (or it is the PBX itself)."""
    listed = {pbx_identifier(data.serial), *_child_devices(data)}
    return not device.identifiers.isdisjoint(listed)


class DeviceSync:
    """Keeps the device registry in step with what the PBX lists; never creates devices.

    After each update of a coordinator: renames what it lists, keeps the PBX's firmware
    current and removes (with their entities) the devices two updates in a row missed: a
    PBX reloading its configuration lists nothing for a moment, and a removal costs the
    user the names, areas and history settings of every entity.
    """

    def __init__(self, hass: HomeAssistant, entry: SmartPbxConfigEntry) -> None:
        self._hass = hass
        self._entry = entry
        data = entry.runtime_data
        serial = data.serial
        # The identifier prefixes of the devices each coordinator lists (identifiers.py).
        self._prefixes: dict[SmartPbxCoordinator[Any], tuple[str, ...]] = {
            data.system: (f"{serial}_extension_", f"{serial}_trunk_"),
            data.queues: (f"{serial}_queue_",),
            data.conferences: (f"{serial}_conference_",),
        }
        self._missing: dict[SmartPbxCoordinator[Any], set[str]] = {}

    @callback
    def async_start(self) -> None:
        for coordinator in self._prefixes:
            self._entry.async_on_unload(
                coordinator.async_add_listener(partial(self.async_sync, coordinator))
            )
            self.async_sync(coordinator)

    @callback
    def async_sync(self, coordinator: SmartPbxCoordinator[Any]) -> None:
        data = self._entry.runtime_data
        registry = dr.async_get(self._hass)
        children = _child_devices(data)
        prefixes = self._prefixes[coordinator]
        gone: set[str] = set()
        for device in dr.async_entries_for_config_entry(registry, self._entry.entry_id):
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
        missing = self._missing.get(coordinator, set())
        for device_id in gone & missing:
            registry.async_remove_device(device_id)
        self._missing[coordinator] = gone - missing


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
    """An entity of one extension.

    Entities whose state derives from the extension's status (``_follows_status_events``)
    are rewritten at once by its status events; the others wait for their coordinator,
    so a burst of status events writes two entities per event, not every one.
    """

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
        device_info = queue_device_info if kind == "queue" else conference_device_info
        super().__init__(
            coordinator,
            runtime,
            description,
            device_info=device_info(runtime, number),
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

    A key is known while its entities exist: when they are removed (with their device, see
    DeviceSync) it is forgotten, so it gets new entities if it comes back. Keys without a
    device of their own (queue members) need ``on_vanished``, called with the keys that
    two updates in a row did not list.
    """
    known: set[KeyT] = set()
    missing: set[KeyT] = set()

    @callback
    def forget(entity: Entity, key: KeyT) -> None:
        # Home Assistant runs the on-remove callbacks also when it declines to add an
        # entity that is disabled in the registry, and when it removes one the user
        # disabled: forgetting the key then would re-create its entities at every update,
        # each a duplicate unique id.
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
    """A platform's entities of each extension, trunk, queue and conference the PBX lists,
    now and as it adds them: each function makes the entities of one."""
    data = entry.runtime_data
    system = data.system

    def add[SubjectT](
        coordinator: SmartPbxCoordinator[Any],
        listed: Callable[[], Mapping[str, SubjectT]],
        create: Callable[[SubjectT], Iterable[Entity]] | None,
    ) -> None:
        if create is not None:
            async_add_entities_for_new_keys(
                entry, coordinator, listed, lambda key: create(listed()[key]), async_add_entities
            )

    add(system, lambda: system.data.extensions, extensions)
    add(system, lambda: system.data.trunks, trunks)
    add(data.queues, lambda: data.queues.data, queues)
    add(data.conferences, lambda: data.conferences.data, conferences)

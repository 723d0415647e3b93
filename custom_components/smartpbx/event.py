"""Event entities: incoming calls, IVR keypresses and ended calls, fed by the relay that
fires the bus events (events.py), so an entity and its bus event always agree."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import LOGGER
from .coordinator import SmartPbxConfigEntry, SmartPbxSystemCoordinator
from .entity import ExtensionEntity, PbxEntity, async_add_subject_entities
from .events import pbx_event_signal
from .pbx.models import CallDisposition, CallRecord, InviteEvent, IvrDtmfEvent, PbxEvent

PARALLEL_UPDATES = 0

# DTMF keys as event types. "*" and "#" are spelled out: event types are translation
# keys, which Home Assistant allows to hold only a-z, 0-9, "-" and "_".
DTMF_EVENT_TYPES: dict[str, str] = {
    **{digit: digit for digit in "0123456789"},
    "*": "star",
    "#": "hash",
}
CALL_ENDED_EVENT_TYPES = [
    disposition.value
    for disposition in CallDisposition
    if disposition is not CallDisposition.UNKNOWN
]
INCOMING_CALL = "incoming_call"


def _ivr_keypress(event: PbxEvent) -> str | None:
    if not isinstance(event, IvrDtmfEvent):
        return None
    if (event_type := DTMF_EVENT_TYPES.get(event.dtmf.strip())) is None:
        LOGGER.debug("Ignoring IVR key %r from %s: not a phone key", event.dtmf, event.caller)
    return event_type


def _call_ended(event: PbxEvent) -> str | None:
    if not isinstance(event, CallRecord):
        return None
    if event.disposition is CallDisposition.UNKNOWN:
        LOGGER.debug("Ignoring CDR %s with disposition %r", event.callid, event.disposition_raw)
        return None
    return event.disposition.value


@dataclass(frozen=True, kw_only=True)
class SmartPbxEventEntityDescription(EventEntityDescription):
    """What an event entity records: ``event_type_fn`` gives a parsed event's type (None:
    not for this entity), ``attributes`` are the bus event data keys it keeps."""

    event_type_fn: Callable[[PbxEvent], str | None]
    attributes: tuple[str, ...]


PBX_INCOMING_CALL = SmartPbxEventEntityDescription(
    key="incoming_call",
    translation_key="incoming_call",
    event_types=[INCOMING_CALL],
    event_type_fn=lambda event: INCOMING_CALL if isinstance(event, InviteEvent) else None,
    attributes=("from", "from_name", "to", "to_name", "callid"),
)
PBX_EVENT_DESCRIPTIONS: tuple[SmartPbxEventEntityDescription, ...] = (
    PBX_INCOMING_CALL,
    SmartPbxEventEntityDescription(
        key="ivr_keypress",
        translation_key="ivr_keypress",
        event_types=list(DTMF_EVENT_TYPES.values()),
        event_type_fn=_ivr_keypress,
        attributes=("ivr", "caller", "caller_name", "dtmf", "callid"),
    ),
    SmartPbxEventEntityDescription(
        key="call_ended",
        translation_key="call_ended",
        event_types=CALL_ENDED_EVENT_TYPES,
        event_type_fn=_call_ended,
        attributes=(
            "src",
            "src_name",
            "dst",
            "dst_name",
            "callid",
            "billsec",
            "direction",
            "disposition_raw",
            "start",
            "end",
        ),
    ),
)
# Disabled by default, like the hang-up button: the PBX's own incoming-call entity and the
# smartpbx_invite event (with the extension's device id) serve every extension.
EXTENSION_INCOMING_CALL = replace(PBX_INCOMING_CALL, entity_registry_enabled_default=False)


class _PbxEventMixin(EventEntity):
    """Records the events the relay dispatches that this entity's description accepts."""

    entity_description: SmartPbxEventEntityDescription
    coordinator: SmartPbxSystemCoordinator

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        # An extension's entity gets only the invites to it (events.py), the PBX's all events.
        number = self.number if isinstance(self, ExtensionEntity) else None
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                pbx_event_signal(self.coordinator.config_entry.entry_id, number),
                self._async_handle_pbx_event,
            )
        )

    @callback
    def _async_handle_pbx_event(self, event: PbxEvent, data: Mapping[str, Any]) -> None:
        description = self.entity_description
        if (event_type := description.event_type_fn(event)) is not None:
            self._trigger_event(event_type, {key: data.get(key) for key in description.attributes})
            self.async_write_ha_state()


class SmartPbxEventEntity(_PbxEventMixin, PbxEntity[SmartPbxSystemCoordinator]):
    """An event entity of the PBX device."""


class SmartPbxExtensionEventEntity(_PbxEventMixin, ExtensionEntity[SmartPbxSystemCoordinator]):
    """An extension's own incoming-call entity."""

    _follows_status_events = False  # records invites, not status changes


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartPbxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    runtime = entry.runtime_data
    system = runtime.system
    async_add_entities(
        SmartPbxEventEntity(system, runtime, description) for description in PBX_EVENT_DESCRIPTIONS
    )

    async_add_subject_entities(
        entry,
        async_add_entities,
        extensions=lambda extension: [
            SmartPbxExtensionEventEntity(system, runtime, EXTENSION_INCOMING_CALL, extension)
        ],
    )

"""PBX events on Home Assistant's event bus, and to the event entities.

Every event is fired synchronously from the client's listener, in the PBX's order: no
task per event, so a burst arrives whole and in order. Extension status changes are not
bus events (the status sensor's history and logbook carry them); events this integration
does not model are fired as ``smartpbx_event`` with their payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.storage import Store
from homeassistant.util.signal_type import SignalType

from .const import (
    ATTR_CONFIG_ENTRY_ID,
    DOMAIN,
    EVENT_CDR,
    EVENT_INVITE,
    EVENT_IVR_DTMF,
    EVENT_UNKNOWN,
)
from .coordinator import SmartPbxConfigEntry
from .identifiers import child_identifier
from .pbx.models import (
    CallDirection,
    CallRecord,
    ExtensionStatusEvent,
    HangupEvent,
    InviteEvent,
    IvrDtmfEvent,
    PbxEvent,
)
from .pbx.redelivery import EventHub

ATTR_DEVICE_ID = "device_id"
ATTR_EXTENSION_DEVICE_ID = "extension_device_id"

_SAVE_DELAY: Final = 10.0
"""Seconds between saves of the call records seen (and on unload at once)."""

_EVENT_TYPES: Final[dict[type[PbxEvent], str]] = {
    InviteEvent: EVENT_INVITE,
    IvrDtmfEvent: EVENT_IVR_DTMF,
    CallRecord: EVENT_CDR,
}
_PARTIES: Final[dict[type[PbxEvent], tuple[str, ...]]] = {
    InviteEvent: ("to", "from"),
    IvrDtmfEvent: ("caller",),
    CallRecord: ("dst", "src"),
    HangupEvent: ("called", "caller"),
}
"""The keys of each event's numbers; the first that is an extension names its device."""


def _store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    return Store(hass, 1, f"{DOMAIN}.{entry_id}.seen_call_records")


class EventIngress(EventHub):
    """The entry's event hub (pbx/redelivery.py), with the call records it saw saved so that
    one redelivered after a restart is not counted again."""

    def __init__(self, store: Store[dict[str, Any]], seen: list[str]) -> None:
        self._store = store
        super().__init__(seen, on_call_record=self._async_save_later)

    @classmethod
    async def async_load(cls, hass: HomeAssistant, entry_id: str) -> EventIngress:
        store = _store(hass, entry_id)
        seen = (await store.async_load() or {}).get("call_records")
        return cls(store, [str(item) for item in seen] if isinstance(seen, list) else [])

    @staticmethod
    async def async_remove_saved(hass: HomeAssistant, entry_id: str) -> None:
        """Remove what a removed entry saved."""
        await _store(hass, entry_id).async_remove()

    @callback
    def _async_save_later(self) -> None:
        self._store.async_delay_save(self._stored, _SAVE_DELAY)

    async def async_save(self) -> None:
        """Save the call records seen now (on unload)."""
        await self._store.async_save(self._stored())

    def _stored(self) -> dict[str, Any]:
        return {"call_records": self.seen_records()}


def pbx_event_signal(
    entry_id: str, extension: str | None = None
) -> SignalType[PbxEvent, Mapping[str, Any]]:
    """The signal event entities get (parsed event, bus event data) on; with ``extension``
    only the invites to it, so an invite does not wake every extension's entity."""
    suffix = f"_{extension}" if extension is not None else ""
    return SignalType(f"{DOMAIN}_{entry_id}_pbx_event{suffix}")


class _EventRelay:
    """Turns the client's parsed events into bus events and entity signals."""

    def __init__(self, hass: HomeAssistant, entry: SmartPbxConfigEntry) -> None:
        self._hass = hass
        self._entry = entry
        self._runtime = entry.runtime_data
        self._device_registry = dr.async_get(hass)
        self._signal = pbx_event_signal(entry.entry_id)

    def _extension_device_id(self, numbers: Iterable[str | None]) -> str | None:
        """The device of the first of ``numbers`` that is an extension of this PBX."""
        for number in numbers:
            if number and (
                device := self._device_registry.async_get_device_by_identifier(
                    child_identifier(self._runtime.serial, "extension", number),
                    self._entry.entry_id,
                )
            ):
                return device.id
        return None

    @callback
    def async_handle(self, event: PbxEvent) -> None:
        if isinstance(event, ExtensionStatusEvent):
            return
        plain = event.as_dict()
        data: dict[str, Any] = {
            ATTR_CONFIG_ENTRY_ID: self._entry.entry_id,
            ATTR_DEVICE_ID: self._runtime.pbx_device_id,
        }
        if parties := _PARTIES.get(type(event), ()):
            data[ATTR_EXTENSION_DEVICE_ID] = self._extension_device_id(
                plain[key] for key in parties
            )
        data |= plain
        if (event_type := _EVENT_TYPES.get(type(event), EVENT_UNKNOWN)) != EVENT_UNKNOWN:
            # Modelled events name their parties; an outbound call's destination was dialled.
            outbound = (
                isinstance(event, CallRecord) and event.direction_kind is CallDirection.OUTBOUND
            )
            for key in parties:
                data[f"{key}_name"] = self._runtime.caller_names.name(
                    plain[key], dialled=outbound and key == "dst"
                )
        self._hass.bus.async_fire(event_type, data)
        async_dispatcher_send(self._hass, self._signal, event, data)
        if isinstance(event, InviteEvent):
            signal = pbx_event_signal(self._entry.entry_id, event.to_number)
            async_dispatcher_send(self._hass, signal, event, data)


@callback
def async_setup_events(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> CALLBACK_TYPE:
    """Relay the entry's PBX events to the bus and its event entities; returns the undo."""
    return entry.runtime_data.events.add_consumer(_EventRelay(hass, entry).async_handle)

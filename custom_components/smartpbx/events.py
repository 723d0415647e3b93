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
    CallRecord,
    ExtensionStatusEvent,
    HangupEvent,
    InviteEvent,
    IvrDtmfEvent,
    PbxEvent,
)
from .pbx.redelivery import EventHub

_RELAYED: Final[dict[type[PbxEvent], tuple[str, tuple[str, ...]]]] = {
    InviteEvent: (EVENT_INVITE, ("to", "from")),
    IvrDtmfEvent: (EVENT_IVR_DTMF, ("caller",)),
    CallRecord: (EVENT_CDR, ("dst", "src")),
    HangupEvent: (EVENT_UNKNOWN, ("called", "caller")),
}
"""Each event's bus event type and the keys of its numbers: the first that is an extension
names its device; the modelled events' (not ``smartpbx_event``) parties get names."""


def _store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    return Store(hass, 1, f"{DOMAIN}.{entry_id}.seen_call_records")


class EventIngress(EventHub):
    """The entry's event hub (pbx/redelivery.py), with the call records it saw saved so that
    one redelivered after a restart is not counted again."""

    def __init__(self, store: Store[dict[str, Any]], seen: list[str]) -> None:
        self._store = store
        # At most one save in 10 s; on unload at once (async_save).
        super().__init__(seen, on_call_record=lambda: store.async_delay_save(self._stored, 10))

    @classmethod
    async def async_load(cls, hass: HomeAssistant, entry_id: str) -> EventIngress:
        store = _store(hass, entry_id)
        seen = (await store.async_load() or {}).get("call_records")
        return cls(store, [str(item) for item in seen] if isinstance(seen, list) else [])

    @staticmethod
    async def async_remove_saved(hass: HomeAssistant, entry_id: str) -> None:
        """Remove what a removed entry saved."""
        await _store(hass, entry_id).async_remove()

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


@callback
def async_setup_events(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> CALLBACK_TYPE:
    """Relay the entry's PBX events to the bus and its event entities; returns the undo."""
    runtime = entry.runtime_data
    device_registry = dr.async_get(hass)
    signal = pbx_event_signal(entry.entry_id)

    def extension_device_id(numbers: Iterable[str | None]) -> str | None:
        """The device of the first of ``numbers`` that is an extension of this PBX."""
        for number in numbers:
            if number and (
                device := device_registry.async_get_device_by_identifier(
                    child_identifier(runtime.serial, "extension", number), entry.entry_id
                )
            ):
                return device.id
        return None

    @callback
    def relay(event: PbxEvent) -> None:
        if isinstance(event, ExtensionStatusEvent):
            return
        plain = event.as_dict()
        event_type, parties = _RELAYED.get(type(event), (EVENT_UNKNOWN, ()))
        data: dict[str, Any] = {
            ATTR_CONFIG_ENTRY_ID: entry.entry_id,
            "device_id": runtime.pbx_device_id,
        }
        if parties:
            data["extension_device_id"] = extension_device_id(plain[key] for key in parties)
        data |= plain
        if event_type != EVENT_UNKNOWN:
            for key in parties:
                dialled = key == "dst" and isinstance(event, CallRecord) and event.outbound
                data[f"{key}_name"] = runtime.caller_names.name(plain[key], dialled=dialled)
        hass.bus.async_fire(event_type, data)
        async_dispatcher_send(hass, signal, event, data)
        if isinstance(event, InviteEvent):
            invited = pbx_event_signal(entry.entry_id, event.to_number)
            async_dispatcher_send(hass, invited, event, data)

    return runtime.events.add_consumer(relay)

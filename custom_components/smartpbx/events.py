"""PBX events on Home Assistant's event bus, and to the event entities.

Every event the client parses is fired on the bus synchronously, from the client's
listener, in the order the PBX published them: no task per event, so a burst of a
thousand calls arrives as a thousand bus events in order, and nothing is dropped.
Extension status changes are not bus events: the status sensor's state history and
logbook carry each of them. Events this integration does not model are fired as
``smartpbx_event`` with their payload, so automations can use firmware features before
we model them.

Every event enters through one :class:`EventIngress`, the only listener on the client:
it drops redeliveries (pbx/redelivery.py says what counts as one; the call records'
identities are saved, so one redelivered after a restart is not counted again) and
hands each event to the integration's consumers. It listens before the broker
connection is made, so a persistent session's queued messages, delivered right after
CONNACK, are not missed: consumers that exist from the start (coordinators, call log)
get them at once; consumers added during set-up (the bus relay, after the platforms)
get the ones they missed first, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
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
    LOGGER,
)
from .coordinator import SmartPbxConfigEntry
from .identifiers import extension_identifier
from .pbx.models import (
    CallDirection,
    CallRecord,
    CallStatusEvent,
    ExtensionStatusEvent,
    HangupEvent,
    InviteEvent,
    IvrDtmfEvent,
    PbxEvent,
    UnknownEvent,
)
from .pbx.redelivery import RedeliveryFilter

ATTR_DEVICE_ID = "device_id"
ATTR_EXTENSION_DEVICE_ID = "extension_device_id"

MAX_STARTUP_EVENTS: Final = 10_000
"""Events kept for consumers added during set-up (a long outage's queue); oldest go first."""
_SAVE_DELAY: Final = 10.0
"""Seconds between saves of the call records seen (and on unload at once)."""

type EventConsumer = Callable[[PbxEvent], None]


class EventIngress:
    """The integration's one listener on the client: no redeliveries, nothing missed."""

    def __init__(self, hass: HomeAssistant, store: Store[dict[str, Any]], seen: list[str]) -> None:
        self._hass = hass
        self._store = store
        self._filter = RedeliveryFilter(seen)
        self._consumers: list[EventConsumer] = []
        self._startup: deque[PbxEvent] | None = deque(maxlen=MAX_STARTUP_EVENTS)
        self.redeliveries = 0
        """Redelivered events dropped (for diagnostics and tests)."""

    @staticmethod
    def _store_of(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
        return Store(hass, 1, f"{DOMAIN}.{entry_id}.seen_call_records")

    @classmethod
    async def async_load(cls, hass: HomeAssistant, entry_id: str) -> EventIngress:
        store = cls._store_of(hass, entry_id)
        stored = await store.async_load() or {}
        seen = stored.get("call_records")
        return cls(hass, store, [str(item) for item in seen] if isinstance(seen, list) else [])

    @callback
    def async_handle(self, event: PbxEvent) -> None:
        """The client's event listener."""
        if self._filter.is_redelivery(event):
            self.redeliveries += 1
            LOGGER.debug("Dropped a redelivered %s", type(event).__name__)
            return
        if isinstance(event, CallRecord):
            self._store.async_delay_save(self._stored, _SAVE_DELAY)
        if self._startup is not None:
            self._startup.append(event)
        for consumer in tuple(self._consumers):
            consumer(event)

    @callback
    def async_add_consumer(self, consumer: EventConsumer) -> CALLBACK_TYPE:
        """Hand ``consumer`` every event from now on, after the ones since start-up
        (until :meth:`async_started`) it missed."""
        for event in self._startup or ():
            consumer(event)
        self._consumers.append(consumer)
        return lambda: self._consumers.remove(consumer) if consumer in self._consumers else None

    @callback
    def async_started(self) -> None:
        """Set-up is complete: every consumer is in place, forget the start-up events."""
        self._startup = None

    @classmethod
    async def async_remove_saved(cls, hass: HomeAssistant, entry_id: str) -> None:
        """Remove what a removed entry saved."""
        await cls._store_of(hass, entry_id).async_remove()

    async def async_save(self) -> None:
        """Save the call records seen now (on unload; otherwise saved with a delay)."""
        await self._store.async_save(self._stored())

    def _stored(self) -> dict[str, Any]:
        return {"call_records": self._filter.seen_records()}


def pbx_event_signal(
    entry_id: str, extension: str | None = None
) -> SignalType[PbxEvent, Mapping[str, Any]]:
    """The signal event entities get (parsed event, bus event data) on.

    Without ``extension``: the PBX's own event entities (every invite, keypress and CDR).
    With it: the invites to that one extension, so an invite does not wake every
    extension's entity.
    """
    suffix = f"_{extension}" if extension is not None else ""
    return SignalType(f"{DOMAIN}_{entry_id}_pbx_event{suffix}")


def _iso(value: datetime | None) -> str | None:
    # The PBX prints its local wall-clock time without a zone: keep it naive, as sent.
    return None if value is None else value.isoformat()


class _EventRelay:
    """Turns the client's parsed events into bus events and entity signals."""

    def __init__(self, hass: HomeAssistant, entry: SmartPbxConfigEntry) -> None:
        self._hass = hass
        self._entry = entry
        self._serial = entry.runtime_data.serial
        self._device_registry = dr.async_get(hass)
        self._signal = pbx_event_signal(entry.entry_id)

    def _extension_device_id(self, *numbers: str) -> str | None:
        """The device of the first of ``numbers`` that is an extension of this PBX."""
        for number in numbers:
            if number and (
                device := self._device_registry.async_get_device_by_identifier(
                    extension_identifier(self._serial, number), self._entry.entry_id
                )
            ):
                return device.id
        return None

    def _name(self, number: str, *, dialled: bool = False) -> str | None:
        return self._entry.runtime_data.caller_names.name(number, dialled=dialled)

    def _base(self, *numbers: str) -> dict[str, Any]:
        return {
            ATTR_CONFIG_ENTRY_ID: self._entry.entry_id,
            ATTR_DEVICE_ID: self._entry.runtime_data.pbx_device_id,
            ATTR_EXTENSION_DEVICE_ID: self._extension_device_id(*numbers),
        }

    @callback
    def async_handle(self, event: PbxEvent) -> None:
        if isinstance(event, ExtensionStatusEvent):
            # The status sensor's own history and logbook carry every change.
            return
        event_type, data = self._describe(event)
        self._hass.bus.async_fire(event_type, data)
        async_dispatcher_send(self._hass, self._signal, event, data)
        if isinstance(event, InviteEvent):
            async_dispatcher_send(
                self._hass,
                pbx_event_signal(self._entry.entry_id, event.to_number),
                event,
                data,
            )

    def _describe(
        self, event: InviteEvent | IvrDtmfEvent | CallRecord | UnknownEvent
    ) -> tuple[str, dict[str, Any]]:
        match event:
            case InviteEvent():
                # The called party is the extension the invite pops up on.
                return EVENT_INVITE, {
                    **self._base(event.to_number, event.from_number),
                    "from": event.from_number,
                    "to": event.to_number,
                    "callid": event.callid,
                    "from_name": self._name(event.from_number),
                    "to_name": self._name(event.to_number),
                }
            case IvrDtmfEvent():
                return EVENT_IVR_DTMF, {
                    **self._base(event.caller),
                    "ivr": event.ivr,
                    "caller": event.caller,
                    "caller_name": self._name(event.caller),
                    "dtmf": event.dtmf,
                    "callid": event.callid,
                }
            case CallRecord():
                return EVENT_CDR, {
                    **self._base(event.dst, event.src),
                    "callid": event.callid,
                    "src": event.src,
                    "src_name": self._name(event.src),
                    "src_channel": event.src_channel,
                    "dst": event.dst,
                    "dst_name": self._name(
                        event.dst, dialled=event.direction_kind is CallDirection.OUTBOUND
                    ),
                    "dst_channel": event.dst_channel,
                    "start": _iso(event.start),
                    "end": _iso(event.end),
                    "billsec": event.billsec,
                    "disposition": event.disposition.value,
                    "disposition_raw": event.disposition_raw,
                    "direction": event.direction,
                    "dtmf": event.dtmf,
                    "record_file": event.record_file,
                }
            # Field firmware's events (FIELD.md): smartpbx_event as before they were
            # modelled, with their fields typed beside the payload.
            case CallStatusEvent():
                return EVENT_UNKNOWN, {
                    ATTR_CONFIG_ENTRY_ID: self._entry.entry_id,
                    ATTR_DEVICE_ID: self._entry.runtime_data.pbx_device_id,
                    # One name for both spellings (call_status too); the payload keeps it.
                    "event": "callstatus",
                    "calls": [
                        {
                            "callid": call.callid,
                            "caller": call.caller,
                            "called": call.called,
                            "state": call.state,
                            "direction": call.direction_kind.value,
                        }
                        for call in event.calls
                    ],
                    "payload": _plain(event.raw),
                }
            case HangupEvent():
                caller, called = event.caller or "", event.called or ""
                return EVENT_UNKNOWN, {
                    **self._base(called, caller),
                    "event": event.event,
                    "callid": event.callid,
                    "channel": event.channel,
                    "caller": event.caller,
                    "called": event.called,
                    "payload": _plain(event.raw),
                }
            case _:
                return EVENT_UNKNOWN, {
                    ATTR_CONFIG_ENTRY_ID: self._entry.entry_id,
                    ATTR_DEVICE_ID: self._entry.runtime_data.pbx_device_id,
                    "event": event.event,
                    "payload": _plain(event.raw),
                }


def _plain(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict copy, so listeners can never mutate the client's parsed payload."""
    return {
        key: _plain(value) if isinstance(value, Mapping) else value
        for key, value in payload.items()
    }


@callback
def async_setup_events(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> CALLBACK_TYPE:
    """Relay the entry's PBX events to the bus and its event entities; returns the undo."""
    relay = _EventRelay(hass, entry)
    return entry.runtime_data.events.async_add_consumer(relay.async_handle)

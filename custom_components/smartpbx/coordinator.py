"""Coordinators that poll the PBX, and a config entry's runtime data.

One coordinator per kind of data, so a slow or failing kind never holds up the others
(what each polls: README, "How data is updated"). Events patch data in place or schedule
one debounced ``livecall`` poll; they never poll the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.device_registry import DeviceInfo as HaDeviceInfo
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .const import (
    DOMAIN,
    LIVE_CALL_REFRESH_COOLDOWN,
    LOGGER,
    POLL_INTERVAL,
    SETUP_ANSWER_WITHIN,
    STATUS_FETCH_CONCURRENCY,
)
from .pbx.client import SmartPbxClient
from .pbx.concurrency import gather_bounded
from .pbx.errors import PbxCommandFailedError, PbxError
from .pbx.models import (
    CallRecord,
    CallStatusEvent,
    Conference,
    ConferenceStatus,
    ExtensionState,
    ExtensionStatusEvent,
    HangupEvent,
    InviteEvent,
    LiveCall,
    PbxEvent,
    Queue,
    QueueStatus,
    SystemSnapshot,
)
from .pbx.transport import Transport
from .translated_errors import pbx_error_translation

if TYPE_CHECKING:
    from .call_log import CallLog
    from .caller_names import CallerNames
    from .events import EventIngress

type SmartPbxConfigEntry = ConfigEntry[SmartPbxData]


@dataclass(frozen=True, slots=True)
class Listed[ItemT, StatusT]:
    """A queue or conference from its list command, with its status (None: refused)."""

    item: ItemT
    status: StatusT | None


type QueueData = Listed[Queue, QueueStatus]
type ConferenceData = Listed[Conference, ConferenceStatus]


async def _as_update_failed[T](request: Awaitable[T]) -> T:
    """Library errors as UpdateFailed, translated with the keys the actions' errors use too."""
    try:
        return await request
    except PbxError as err:
        key, placeholders = pbx_error_translation(err)
        raise UpdateFailed(
            translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
        ) from err


class SmartPbxCoordinator[DataT](DataUpdateCoordinator[DataT]):
    """Common ground: the poll interval, and library errors as translated UpdateFailed."""

    config_entry: SmartPbxConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        kind: str,
        fetch: Callable[[], Awaitable[DataT]],
        *,
        request_refresh_debouncer: Debouncer[Any] | None = None,
        always_update: bool = True,
    ) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"Smart PBX {kind}",
            update_interval=POLL_INTERVAL,
            update_method=fetch,
            request_refresh_debouncer=request_refresh_debouncer,
            always_update=always_update,
        )
        self.poll_count = 0
        """Polls sent to the PBX (tests use it to prove that a push did not poll)."""

    async def _async_update_data(self) -> DataT:
        self.poll_count += 1
        return await _as_update_failed(super()._async_update_data())


class SmartPbxSystemCoordinator(SmartPbxCoordinator[SystemSnapshot]):
    """deviceInfo, extension_list and trunk_list; patched in place by extension events."""

    def __init__(
        self, hass: HomeAssistant, entry: SmartPbxConfigEntry, client: SmartPbxClient
    ) -> None:
        super().__init__(hass, entry, "system", self._async_fetch)
        self._client = client
        self._extension_listeners: dict[str | None, set[CALLBACK_TYPE]] = {}
        # Extension events that arrive while a poll is in flight are newer than the
        # poll's answer may be; they win over it.
        self._pushed_during_poll: dict[str, ExtensionStatusEvent] | None = None
        self.status_event_context = Context()
        """The context of the last status event applied, shared by the writes it causes."""

    async def _async_setup(self) -> None:
        """Before the first poll, make sure replies reach us at all (asked with growing waits)."""
        await _as_update_failed(self._client.device_info_within(SETUP_ANSWER_WITHIN))

    async def _async_fetch(self) -> SystemSnapshot:
        pushed: dict[str, ExtensionStatusEvent] = {}
        self._pushed_during_poll = pushed
        try:
            snapshot = await self._client.system_snapshot()
        finally:
            self._pushed_during_poll = None
        for event in pushed.values():
            snapshot.apply(event)
        return snapshot

    @callback
    def async_add_extension_listener(
        self, number: str | None, update_callback: CALLBACK_TYPE
    ) -> CALLBACK_TYPE:
        """Call ``update_callback`` when an event changes extension ``number``; with
        ``number`` None, when one takes any extension online or offline (for PBX-wide counts)."""
        listeners = self._extension_listeners.setdefault(number, set())
        listeners.add(update_callback)
        return partial(listeners.discard, update_callback)

    @callback
    def async_handle_extension_status(self, event: ExtensionStatusEvent) -> None:
        """Apply an extension_status event to that extension only; no poll."""
        if self._pushed_during_poll is not None:
            self._pushed_during_poll[event.extension] = event
        # None until the first poll answered (the annotation hides that).
        data: SystemSnapshot | None = self.data
        if data is None or (before := data.apply(event)) is None:
            return
        # One cause, one context: the state changes of one event share it, as those of
        # one action call do (and a state write without one makes its own).
        self.status_event_context = Context()
        for update_callback in tuple(self._extension_listeners.get(event.extension, ())):
            update_callback()
        went_offline = event.state is ExtensionState.UNAVAILABLE
        if (before.state is ExtensionState.UNAVAILABLE) != went_offline:
            for update_callback in tuple(self._extension_listeners.get(None, ())):
                update_callback()


class SmartPbxListCoordinator[ItemT: Queue | Conference, StatusT](
    SmartPbxCoordinator[dict[str, "Listed[ItemT, StatusT]"]]
):
    """A list command, then one status command per listed item (queues, conferences); an
    item whose status the PBX refuses (deleted between the two commands) keeps None."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        kind: str,
        list_items: Callable[[], Awaitable[Sequence[ItemT]]],
        request_status: Callable[[str], Awaitable[StatusT]],
    ) -> None:
        super().__init__(hass, entry, kind, self._async_fetch)
        self._list_items = list_items
        self._request_status = request_status
        # Held by every poll's fetch and by async_refresh_one: a poll already in flight
        # may carry the state from before a command, and must not land after the
        # fresher answer (Home Assistant stores it before a waiter for the lock runs).
        self._fetch_lock = asyncio.Lock()

    async def _async_fetch(self) -> dict[str, Listed[ItemT, StatusT]]:
        async with self._fetch_lock:
            items = await self._list_items()
            statuses = await gather_bounded(
                [item.number for item in items], self._async_status, STATUS_FETCH_CONCURRENCY
            )
        return {item.number: Listed(item, statuses[item.number]) for item in items}

    async def _async_status(self, number: str) -> StatusT | None:
        try:
            return await self._request_status(number)
        except PbxCommandFailedError as err:
            LOGGER.debug("PBX refused %s of %s: %s", err.command, number, err.message)
            return None

    async def async_refresh_one(self, number: str) -> None:
        """Fetch one item's status (after a command changed it) instead of all of them."""
        if self.data is None or number not in self.data:
            await self.async_request_refresh()
            return
        async with self._fetch_lock:
            try:
                status = await self._async_status(number)
            except PbxError as err:
                # The command itself succeeded; the next poll catches up.
                LOGGER.debug("Could not refresh %s %s: %s", self.name, number, err)
                return
            if (current := self.data.get(number)) is not None:
                self.async_set_updated_data({**self.data, number: Listed(current.item, status)})


type SmartPbxQueueCoordinator = SmartPbxListCoordinator[Queue, QueueStatus]

_POLL_AFTER: Final = (ExtensionStatusEvent, InviteEvent, CallRecord)
"""Call events that change the live calls only through the poll they schedule."""


class SmartPbxLiveCallCoordinator(SmartPbxCoordinator[tuple[LiveCall, ...]]):
    """livecall, at the poll interval and (debounced) after every call event."""

    def __init__(
        self, hass: HomeAssistant, entry: SmartPbxConfigEntry, client: SmartPbxClient
    ) -> None:
        # Not immediate: one poll after a call's burst of events settles sees the result.
        self._after_call_events: Debouncer[Any] = Debouncer(
            hass, LOGGER, cooldown=LIVE_CALL_REFRESH_COOLDOWN, immediate=False
        )
        # Polled after every burst of call events: only a change is worth writing.
        # (The others always notify: device removal counts their updates.)
        super().__init__(
            hass,
            entry,
            "live calls",
            client.live_calls,
            request_refresh_debouncer=self._after_call_events,
            always_update=False,
        )

    @callback
    def async_schedule_refresh(self) -> None:
        """Poll livecall once the current burst of call events has settled."""
        self._after_call_events.async_schedule_call()

    @callback
    def async_handle_event(self, event: PbxEvent) -> None:
        """A call event schedules a poll; ``callstatus`` and ``hangup`` (field firmware)
        change the live calls at once, and that poll confirms them."""
        if isinstance(event, _POLL_AFTER):  # first: status events come in bursts
            self.async_schedule_refresh()
            return
        calls: tuple[LiveCall, ...] | None = self.data
        if isinstance(event, CallStatusEvent):
            # Field clients read its list as the PBX's current calls; should it name only
            # those that changed, the poll corrects it.
            self._async_set_pushed(event.merged_with(calls or ()))
        elif isinstance(event, HangupEvent):
            remaining = tuple(call for call in calls or () if not event.ends(call))
            if calls is not None and len(remaining) != len(calls):
                self._async_set_pushed(remaining)
        else:
            return
        self.async_schedule_refresh()

    @callback
    def _async_set_pushed(self, calls: tuple[LiveCall, ...]) -> None:
        # Not async_set_updated_data: it cancels the debounced poll (and the interval's),
        # so events closer together than the debounce would keep the poll from ever
        # running; and an event is no answered poll (availability follows the polls).
        self.data = calls
        self.async_update_listeners()


@dataclass(slots=True)
class SmartPbxData:
    """Everything a loaded config entry holds (``entry.runtime_data``)."""

    client: SmartPbxClient
    transport: Transport
    serial: str
    system: SmartPbxSystemCoordinator
    queues: SmartPbxQueueCoordinator
    conferences: SmartPbxListCoordinator[Conference, ConferenceStatus]
    live_calls: SmartPbxLiveCallCoordinator
    call_log: CallLog
    caller_names: CallerNames
    pbx_device_id: str
    """The via_device of every other device."""
    connected: bool
    """What the transport last reported (its ``connected`` property may lag behind)."""
    events: EventIngress
    """Where the PBX's events enter, without redeliveries (add consumers there)."""
    extension_devices: dict[str, HaDeviceInfo] = field(default_factory=dict)
    """One DeviceInfo per extension, shared by its entities (see entity.py)."""
    pbx_online: bool = True
    """What the PBX last said on its ``status`` topic (field firmware); True until "offline"."""
    unsupported_commands: set[str] = field(default_factory=set)
    """Commands the firmware answered "unknown cmd" to: not sent again until a reload."""

    @property
    def coordinators(self) -> tuple[SmartPbxCoordinator[Any], ...]:
        return (self.system, self.queues, self.conferences, self.live_calls)

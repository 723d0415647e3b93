"""Coordinators that poll the PBX, and a config entry's runtime data.

One coordinator per kind of data, so a slow or failing kind never holds up the others
and each polls with its own bounded cost. MQTT requests per poll (one command and its
reply each), independent of traffic:

- system: 3 (``deviceInfo``, ``extension_list``, ``trunk_list``, sent together);
- queues: 1 + number of queues (``queue_list``, then ``queue_status`` of each);
- conferences: 1 + number of conferences (``conf_list``, then ``conf_status`` of each);
- live calls: 1 (``livecall``).

Per-queue and per-conference status requests run concurrently, at most
``STATUS_FETCH_CONCURRENCY`` at a time. ``DataUpdateCoordinator`` keeps at most one poll
of each kind in flight. Events never trigger a poll of the system, queue or conference
data: an ``extension_status`` event patches that one extension in place and notifies only
the entities listening to it; call events (``extension_status``, ``invite``, CDRs)
schedule one debounced ``livecall`` poll.

Every coordinator polls on its own and a failed poll is a failed update (UpdateFailed):
what that means for entities, logs and the repair issue is decided in one place, the
base entity (entity.py) and ``__init__.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
import contextlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

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
from .pbx.errors import PbxCommandFailedError, PbxError
from .pbx.models import (
    CallStatusEvent,
    Conference,
    ConferenceStatus,
    DeviceInfo,
    Extension,
    ExtensionState,
    ExtensionStatusEvent,
    HangupEvent,
    LiveCall,
    Queue,
    QueueStatus,
    Trunk,
)
from .pbx.transport import Transport
from .probe import async_ask_device_info
from .translated_errors import pbx_error_translation

if TYPE_CHECKING:
    from .call_log import CallLog
    from .caller_names import CallerNames
    from .events import EventIngress

type SmartPbxConfigEntry = ConfigEntry[SmartPbxData]


@dataclass(slots=True)
class SystemData:
    """What the system coordinator knows: the PBX itself, its extensions and trunks."""

    device_info: DeviceInfo
    extensions: dict[str, Extension]
    """By extension number."""
    trunks: dict[str, Trunk]
    """By trunk name."""


@dataclass(frozen=True, slots=True)
class Listed[ItemT, StatusT]:
    """A queue or conference from its list command, with its status (None: refused)."""

    item: ItemT
    status: StatusT | None


type QueueData = Listed[Queue, QueueStatus]
type ConferenceData = Listed[Conference, ConferenceStatus]


def update_failed(err: PbxError) -> UpdateFailed:
    """A translated UpdateFailed for a library error (its key reaches ConfigEntryNotReady).

    The keys are shared with the actions' errors (translated_errors.py): one text serves both.
    """
    key, placeholders = pbx_error_translation(err)
    return UpdateFailed(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


@contextlib.contextmanager
def _first_failure_of_task_group() -> Iterator[None]:
    """Raise the first error of a task group inside it as itself, not wrapped."""
    try:
        yield
    except ExceptionGroup as group_error:
        # A task group wraps failures; callers want the library error itself.
        first = group_error.exceptions[0]
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _gather_bounded[K, T](
    keys: Iterable[K], fetch: Callable[[K], Awaitable[T]], limit: int
) -> dict[K, T]:
    """Run ``fetch`` for every key, at most ``limit`` at a time; results by key.

    On the first failure the rest are cancelled and that error is raised.
    """
    semaphore = asyncio.Semaphore(limit)

    async def one(key: K) -> T:
        async with semaphore:
            return await fetch(key)

    with _first_failure_of_task_group():
        async with asyncio.TaskGroup() as group:
            tasks = {key: group.create_task(one(key)) for key in keys}
    return {key: task.result() for key, task in tasks.items()}


class SmartPbxCoordinator[DataT](DataUpdateCoordinator[DataT]):
    """Common ground: the poll interval, and library errors as translated UpdateFailed."""

    config_entry: SmartPbxConfigEntry
    kind: ClassVar[str]

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        client: SmartPbxClient,
        *,
        request_refresh_debouncer: Debouncer[Any] | None = None,
        always_update: bool = True,
    ) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"Smart PBX {self.kind}",
            update_interval=POLL_INTERVAL,
            request_refresh_debouncer=request_refresh_debouncer,
            always_update=always_update,
        )
        self.client = client
        self.poll_count = 0
        """Polls sent to the PBX (tests use it to prove that a push did not poll)."""

    async def _async_update_data(self) -> DataT:
        self.poll_count += 1
        try:
            return await self._async_fetch()
        except PbxError as err:
            raise update_failed(err) from err

    async def _async_fetch(self) -> DataT:
        raise NotImplementedError


class SmartPbxSystemCoordinator(SmartPbxCoordinator[SystemData]):
    """deviceInfo, extension_list and trunk_list; patched in place by extension events."""

    kind = "system"

    def __init__(
        self, hass: HomeAssistant, entry: SmartPbxConfigEntry, client: SmartPbxClient
    ) -> None:
        super().__init__(hass, entry, client)
        self._extension_listeners: dict[str | None, set[CALLBACK_TYPE]] = {}
        # Extension events that arrive while a poll is in flight are newer than the
        # poll's answer may be; they win over it.
        self._pushed_during_poll: dict[str, ExtensionStatusEvent] | None = None
        self.status_event_context = Context()
        """The context of the last status event applied, shared by the writes it causes."""

    async def _async_setup(self) -> None:
        """Before the first poll, make sure replies reach us at all (see probe.py)."""
        try:
            await async_ask_device_info(self.client, within=SETUP_ANSWER_WITHIN)
        except PbxError as err:
            raise update_failed(err) from err

    async def _async_fetch(self) -> SystemData:
        self._pushed_during_poll = {}
        try:
            # Together, not one after another: each round trip can cost ~40 ms on a
            # broker with Nagle's algorithm on. A failure cancels the other two.
            with _first_failure_of_task_group():
                async with asyncio.TaskGroup() as group:
                    device_info_task = group.create_task(self.client.device_info())
                    extensions_task = group.create_task(self.client.extension_list())
                    trunks_task = group.create_task(self.client.trunk_list())
            device_info = device_info_task.result()
            extensions = extensions_task.result()
            trunks = trunks_task.result()
            by_number = {extension.number: extension for extension in extensions}
            for number, event in self._pushed_during_poll.items():
                if (polled := by_number.get(number)) is not None:
                    by_number[number] = _with_state(polled, event)
        finally:
            self._pushed_during_poll = None
        return SystemData(
            device_info=device_info,
            extensions=by_number,
            trunks={trunk.name: trunk for trunk in trunks},
        )

    @callback
    def async_add_extension_listener(
        self, number: str | None, update_callback: CALLBACK_TYPE
    ) -> CALLBACK_TYPE:
        """Call ``update_callback`` when an event changes extension ``number``.

        With ``number`` None: when an event takes any extension online or offline (what
        PBX-wide counts depend on); other status changes do not wake those listeners.
        """
        self._extension_listeners.setdefault(number, set()).add(update_callback)

        @callback
        def remove() -> None:
            self._extension_listeners.get(number, set()).discard(update_callback)

        return remove

    @callback
    def async_handle_extension_status(self, event: ExtensionStatusEvent) -> None:
        """Apply an extension_status event to that extension only; no poll."""
        if self._pushed_during_poll is not None:
            self._pushed_during_poll[event.extension] = event
        # None until the first poll answered (the annotation hides that).
        data: SystemData | None = self.data
        if data is None:
            return
        current = data.extensions.get(event.extension)
        if current is None:
            # Not (yet) listed; the next poll brings it with its device and entities.
            LOGGER.debug("Status event for unlisted extension %s", event.extension)
            return
        if current.state == event.state and current.state_raw == event.state_raw:
            return
        data.extensions[event.extension] = _with_state(current, event)
        # One cause, one context: the state changes of one event share it, as those of
        # one action call do (and a state write without one makes its own).
        self.status_event_context = Context()
        for update_callback in tuple(self._extension_listeners.get(event.extension, ())):
            update_callback()
        went_offline = event.state is ExtensionState.UNAVAILABLE
        if (current.state is ExtensionState.UNAVAILABLE) != went_offline:
            for update_callback in tuple(self._extension_listeners.get(None, ())):
                update_callback()


def _with_state(extension: Extension, event: ExtensionStatusEvent) -> Extension:
    # Spelled out rather than dataclasses.replace, which inspects the fields on every
    # call: this runs for every status event.
    return Extension(
        number=extension.number,
        type=extension.type,
        name=extension.name,
        state=event.state,
        state_raw=event.state_raw,
        port=extension.port,
        raw=extension.raw,
    )


class _Numbered(Protocol):
    @property
    def number(self) -> str: ...


class _ListAndStatusCoordinator[ItemT: _Numbered, StatusT](
    SmartPbxCoordinator[dict[str, "Listed[ItemT, StatusT]"]]
):
    """A list command, then one status command per listed item (queues, conferences).

    Statuses are fetched ``STATUS_FETCH_CONCURRENCY`` at a time. An item whose status the
    PBX refuses (deleted between the two commands) keeps a status of None.
    """

    status_command: ClassVar[str]

    def __init__(
        self, hass: HomeAssistant, entry: SmartPbxConfigEntry, client: SmartPbxClient
    ) -> None:
        super().__init__(hass, entry, client)
        # Held by every poll's fetch and by async_refresh_one: a poll already in flight
        # may carry the state from before a command, and must not land after the
        # fresher answer. (Home Assistant stores the poll's answer right after the fetch
        # returns, before a waiter for the lock can run.)
        self._fetch_lock = asyncio.Lock()

    async def _async_list(self) -> Sequence[ItemT]:
        raise NotImplementedError

    async def _async_request_status(self, number: str) -> StatusT:
        raise NotImplementedError

    async def _async_fetch(self) -> dict[str, Listed[ItemT, StatusT]]:
        async with self._fetch_lock:
            items = await self._async_list()
            statuses = await _gather_bounded(
                [item.number for item in items], self._async_status, STATUS_FETCH_CONCURRENCY
            )
        return {item.number: Listed(item, statuses[item.number]) for item in items}

    async def _async_status(self, number: str) -> StatusT | None:
        try:
            return await self._async_request_status(number)
        except PbxCommandFailedError as err:
            LOGGER.debug("PBX refused %s of %s: %s", self.status_command, number, err.message)
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
                LOGGER.debug("Could not refresh %s %s: %s", self.kind, number, err)
                return
            if (current := self.data.get(number)) is not None:
                updated = Listed(current.item, status)
                self.async_set_updated_data({**self.data, number: updated})


class SmartPbxQueueCoordinator(_ListAndStatusCoordinator[Queue, QueueStatus]):
    """queue_list, then queue_status of every queue."""

    kind = "queues"
    status_command = "queue_status"

    async def _async_list(self) -> Sequence[Queue]:
        return await self.client.queue_list()

    async def _async_request_status(self, number: str) -> QueueStatus:
        return await self.client.queue_status(number)


class SmartPbxConferenceCoordinator(_ListAndStatusCoordinator[Conference, ConferenceStatus]):
    """conf_list, then conf_status of every conference."""

    kind = "conferences"
    status_command = "conf_status"

    async def _async_list(self) -> Sequence[Conference]:
        return await self.client.conf_list()

    async def _async_request_status(self, number: str) -> ConferenceStatus:
        return await self.client.conf_status(number)


class SmartPbxLiveCallCoordinator(SmartPbxCoordinator[tuple[LiveCall, ...]]):
    """livecall, at the poll interval and (debounced) after every call event."""

    kind = "live calls"

    def __init__(
        self, hass: HomeAssistant, entry: SmartPbxConfigEntry, client: SmartPbxClient
    ) -> None:
        # Not immediate: a call produces a burst of events (invite, several status
        # changes, a CDR); one poll after the burst settles sees the result. Kept to
        # schedule it from callbacks (async_request_refresh is a coroutine).
        self._after_call_events: Debouncer[Any] = Debouncer(
            hass, LOGGER, cooldown=LIVE_CALL_REFRESH_COOLDOWN, immediate=False
        )
        super().__init__(
            hass,
            entry,
            client,
            request_refresh_debouncer=self._after_call_events,
            # Polled after every burst of call events: only a change is worth writing.
            # (The others always notify: device removal counts their updates.)
            always_update=False,
        )

    async def _async_fetch(self) -> tuple[LiveCall, ...]:
        return await self.client.live_calls()

    @callback
    def async_schedule_refresh(self) -> None:
        """Poll livecall once the current burst of call events has settled."""
        self._after_call_events.async_schedule_call()

    @callback
    def async_handle_call_status(self, event: CallStatusEvent) -> None:
        """A ``callstatus`` event's calls become the live calls at once (field firmware).

        Field clients read its list as the PBX's current calls. Its entries carry no
        channels or durations: a call already known keeps those from the last poll and
        takes the event's state; the debounced ``livecall`` poll after it completes new
        calls, and corrects the list should the event have named only those that changed.
        """
        known = {call.callid: call for call in self.data or ()}
        self.async_set_updated_data(
            tuple(
                call if (old := known.get(call.callid)) is None else replace(old, state=call.state)
                for call in event.calls
            )
        )
        self.async_schedule_refresh()

    @callback
    def async_handle_hangup(self, event: HangupEvent) -> None:
        """Drop the call a ``hangup`` event ended at once; the next poll confirms."""
        calls: tuple[LiveCall, ...] | None = self.data
        if calls is not None:
            remaining = tuple(call for call in calls if not _ended_by(call, event))
            if len(remaining) != len(calls):
                self.async_set_updated_data(remaining)
        self.async_schedule_refresh()


def _ended_by(call: LiveCall, event: HangupEvent) -> bool:
    """Whether ``event`` names ``call``, by call id or by one of its channels."""
    if event.callid is not None and event.callid == call.callid:
        return True
    return event.channel is not None and event.channel in (call.source, call.destination)


def calls_of_extension(calls: Iterable[LiveCall], number: str) -> list[LiveCall]:
    """The live calls extension ``number`` takes part in, as caller or called party."""
    return [call for call in calls if number in (call.caller, call.called)]


def peer_of_extension(call: LiveCall, number: str) -> str:
    """The other party of ``call`` as seen from extension ``number``."""
    return call.called if call.caller == number else call.caller


# --- runtime data -----------------------------------------------------------------


@dataclass(slots=True)
class SmartPbxData:
    """Everything a loaded config entry holds (``entry.runtime_data``)."""

    client: SmartPbxClient
    transport: Transport
    """What the client talks through (closed on unload when it is our own connection)."""
    serial: str
    system: SmartPbxSystemCoordinator
    queues: SmartPbxQueueCoordinator
    conferences: SmartPbxConferenceCoordinator
    live_calls: SmartPbxLiveCallCoordinator
    call_log: CallLog
    caller_names: CallerNames
    """Names for numbers: the PBX's extensions, then the phonebook in the options."""
    pbx_device_id: str
    """Device registry id of the PBX, the via_device of every other device."""
    connected: bool
    """What the transport last reported: is the MQTT connection up."""
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

"""Coordinators that poll the PBX, the CDR call log, and a config entry's runtime data.

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

The system coordinator speaks for the PBX as a whole: while its poll fails (the PBX is
silent) or the MQTT connection is down, the other coordinators skip their polls and keep
their last data, so going away and coming back is logged once, not once per coordinator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
import contextlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Protocol

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.device_registry import DeviceInfo as HaDeviceInfo
from homeassistant.helpers.event import async_track_time_change
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .const import (
    CONNECTION_LOSS_GRACE,
    DOMAIN,
    FIRST_ANSWER_ATTEMPT,
    LIVE_CALL_REFRESH_COOLDOWN,
    LOGGER,
    STATUS_FETCH_CONCURRENCY,
)
from .pbx.client import SmartPbxClient
from .pbx.errors import (
    PbxCommandFailedError,
    PbxConnectionError,
    PbxError,
    PbxNotConnectedError,
    PbxTimeoutError,
)
from .pbx.models import (
    CallDisposition,
    CallRecord,
    Conference,
    ConferenceStatus,
    DeviceInfo,
    Extension,
    ExtensionState,
    ExtensionStatusEvent,
    LiveCall,
    Queue,
    QueueStatus,
    Trunk,
)
from .pbx.transport import Transport
from .translated_errors import pbx_error_translation

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
class QueueData:
    """A queue from ``queue_list`` and its ``queue_status`` (None if the PBX refused it)."""

    queue: Queue
    status: QueueStatus | None


@dataclass(frozen=True, slots=True)
class ConferenceData:
    """A conference from ``conf_list`` and its ``conf_status`` (None if refused)."""

    conference: Conference
    status: ConferenceStatus | None


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


async def _run_together[T](coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run all concurrently; on the first failure cancel the rest and raise that error."""
    with _first_failure_of_task_group():
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    return [task.result() for task in tasks]


async def _gather_bounded[K, T](
    keys: Iterable[K], fetch: Callable[[K], Awaitable[T]], limit: int
) -> dict[K, T]:
    """Run ``fetch`` for every key, at most ``limit`` at a time; results by key."""
    semaphore = asyncio.Semaphore(limit)

    async def one(key: K) -> tuple[K, T]:
        async with semaphore:
            return key, await fetch(key)

    return dict(await _run_together(one(key) for key in keys))


@dataclass(slots=True)
class PbxHealth:
    """Whether the PBX can be reached right now, shared by coordinators and entities."""

    connected: bool
    """Last state the MQTT transport reported."""
    system: SmartPbxSystemCoordinator | None = None
    _loss_waiters: list[asyncio.Future[None]] = field(default_factory=list, repr=False)

    @property
    def available(self) -> bool:
        """Connected, and the PBX answered its last system poll."""
        return self.connected and (self.system is None or self.system.last_update_success)

    def set_connected(self, connected: bool) -> None:
        """What the transport reports (its connection listener calls this)."""
        self.connected = connected
        if not connected:
            waiters, self._loss_waiters = self._loss_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def async_connection_lost(self, within: float) -> bool:
        """Whether the transport reports the connection lost, now or within ``within`` s.

        A command can fail on a broken socket a moment before the transport notices;
        this tells such a failure (reported in a moment) from a genuine one.
        """
        if not self.connected:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._loss_waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                await waiter
        except TimeoutError:
            return False
        finally:
            if waiter in self._loss_waiters:
                self._loss_waiters.remove(waiter)
        return True


class SmartPbxCoordinator[DataT](DataUpdateCoordinator[DataT]):
    """Common ground: options, translated errors, and deferring to the PBX's health."""

    config_entry: SmartPbxConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        client: SmartPbxClient,
        health: PbxHealth,
        *,
        kind: str,
        poll_interval: timedelta,
        command_timeout: float,
        request_refresh_debouncer: Debouncer[Any] | None = None,
        always_update: bool = True,
    ) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"Smart PBX {kind}",
            update_interval=poll_interval,
            request_refresh_debouncer=request_refresh_debouncer,
            always_update=always_update,
        )
        self.client = client
        self.health = health
        self.command_timeout = command_timeout
        self.poll_count = 0
        """Polls sent to the PBX (tests use it to prove that a push did not poll)."""

    def _skip_poll(self) -> bool:
        """Keep the last data while the PBX is known to be unreachable.

        The connection listener or the system coordinator has already reported the
        outage once, and entities show unavailable meanwhile; polling would only add a
        failure (and a log line) per coordinator.
        """
        return not self.health.available

    async def _async_update_data(self) -> DataT:
        if self.data is not None and self._skip_poll():
            return self.data
        self.poll_count += 1
        try:
            return await self._async_fetch()
        except (PbxNotConnectedError, PbxConnectionError) as err:
            if self.data is not None and await self.health.async_connection_lost(
                CONNECTION_LOSS_GRACE
            ):
                # The connection dropped half-way through this poll. The transport has
                # logged that once, entities are unavailable until it is back, and every
                # coordinator polls again then: as if this poll had been skipped.
                LOGGER.debug("%s poll cut short by the connection loss: %s", self.name, err)
                return self.data
            raise update_failed(err) from err
        except PbxTimeoutError as err:
            if self.data is not None and not await self._async_pbx_answers():
                # The PBX as a whole fell silent: the system coordinator reports that
                # (once) and makes every entity unavailable; this poll counts as skipped.
                LOGGER.debug("%s poll timed out, the PBX is silent: %s", self.name, err)
                return self.data
            raise update_failed(err) from err
        except PbxError as err:
            raise update_failed(err) from err

    async def _async_pbx_answers(self) -> bool:
        """The system coordinator's verdict on whether the PBX answers at all."""
        system = self.health.system
        if system is None or system is self:
            return True
        return await system.async_check_answering()

    async def _async_fetch(self) -> DataT:
        raise NotImplementedError


class SmartPbxSystemCoordinator(SmartPbxCoordinator[SystemData]):
    """deviceInfo, extension_list and trunk_list; patched in place by extension events."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        client: SmartPbxClient,
        health: PbxHealth,
        *,
        poll_interval: timedelta,
        command_timeout: float,
    ) -> None:
        super().__init__(
            hass,
            entry,
            client,
            health,
            kind="system",
            poll_interval=poll_interval,
            command_timeout=command_timeout,
        )
        self._extension_listeners: dict[str | None, set[CALLBACK_TYPE]] = {}
        # Extension events that arrive while a poll is in flight are newer than the
        # poll's answer may be; they win over it.
        self._pushed_during_poll: dict[str, ExtensionStatusEvent] | None = None
        self._polling = False
        """A poll is in flight (see async_check_answering)."""

    async def async_check_answering(self) -> bool:
        """Whether the PBX answers: the outcome of the system poll in flight, or a new one.

        Other coordinators ask when one of their commands timed out, so that a PBX that
        falls silent is found, and reported once, here, not by every coordinator polling
        at that moment. A PBX that answers this but not their command is their problem.
        """
        if self._polling:
            # Its outcome (and the availability update) lands when the lock is released.
            async with self._debounced_refresh.async_lock():
                pass
        else:
            await self.async_refresh()
        return self.last_update_success

    def _skip_poll(self) -> bool:
        # The system poll is the PBX's health check: it runs whenever the broker is
        # connected, also while the PBX is silent, to notice when it answers again.
        return not self.health.connected

    async def _async_setup(self) -> None:
        """Before the first poll, make sure replies reach us at all.

        Home Assistant's MQTT client sends subscriptions in batches a moment after they
        are requested, so the reply to a command published right after subscribing can
        be lost. Ask for deviceInfo with a short wait first and double it each time,
        within one command timeout in total: a PBX that answers costs one extra request.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.command_timeout
        attempt = FIRST_ANSWER_ATTEMPT
        while True:
            remaining = deadline - loop.time()
            try:
                await self.client.device_info(timeout=max(min(attempt, remaining), 0.01))
            except PbxTimeoutError as err:
                if deadline - loop.time() <= 0:
                    raise update_failed(PbxTimeoutError(err.command, self.command_timeout)) from err
                attempt *= 2
            except PbxError as err:
                raise update_failed(err) from err
            else:
                return

    async def _async_update_data(self) -> SystemData:
        self._polling = True
        try:
            return await super()._async_update_data()
        finally:
            self._polling = False

    async def _async_fetch(self) -> SystemData:
        timeout = self.command_timeout
        self._pushed_during_poll = {}
        try:
            # Together, not one after another: each round trip can cost ~40 ms on a
            # broker with Nagle's algorithm on, and this poll is also the health check.
            # A failure cancels the other two (their answers would be thrown away).
            with _first_failure_of_task_group():
                async with asyncio.TaskGroup() as group:
                    device_info_task = group.create_task(self.client.device_info(timeout=timeout))
                    extensions_task = group.create_task(self.client.extension_list(timeout=timeout))
                    trunks_task = group.create_task(self.client.trunk_list(timeout=timeout))
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


class _ListAndStatusCoordinator[ItemT: _Numbered, StatusT, DataT](
    SmartPbxCoordinator[dict[str, DataT]]
):
    """A list command, then one status command per listed item (queues, conferences).

    Statuses are fetched ``STATUS_FETCH_CONCURRENCY`` at a time. An item whose status the
    PBX refuses (deleted between the two commands) keeps a status of None.
    """

    _kind: ClassVar[str]
    _status_command: ClassVar[str]

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        client: SmartPbxClient,
        health: PbxHealth,
        *,
        poll_interval: timedelta,
        command_timeout: float,
    ) -> None:
        super().__init__(
            hass,
            entry,
            client,
            health,
            kind=self._kind,
            poll_interval=poll_interval,
            command_timeout=command_timeout,
        )

    async def _async_list(self) -> Sequence[ItemT]:
        raise NotImplementedError

    async def _async_request_status(self, number: str) -> StatusT:
        raise NotImplementedError

    def _combine(self, item: ItemT, status: StatusT | None) -> DataT:
        raise NotImplementedError

    def _with_status(self, current: DataT, status: StatusT | None) -> DataT:
        raise NotImplementedError

    async def _async_fetch(self) -> dict[str, DataT]:
        items = await self._async_list()
        statuses = await _gather_bounded(
            [item.number for item in items], self._async_status, STATUS_FETCH_CONCURRENCY
        )
        return {item.number: self._combine(item, statuses[item.number]) for item in items}

    async def _async_status(self, number: str) -> StatusT | None:
        try:
            return await self._async_request_status(number)
        except PbxCommandFailedError as err:
            LOGGER.debug("PBX refused %s of %s: %s", self._status_command, number, err.message)
            return None

    async def async_refresh_one(self, number: str) -> None:
        """Fetch one item's status (after a command changed it) instead of all of them."""
        if self.data is None or number not in self.data:
            await self.async_request_refresh()
            return
        # Under the poll's lock: a poll already in flight may carry the state from
        # before the command, and must not land after this fresher answer.
        async with self._debounced_refresh.async_lock():
            try:
                status = await self._async_status(number)
            except PbxError as err:
                # The command itself succeeded; the next poll catches up.
                LOGGER.debug("Could not refresh %s %s: %s", self._kind, number, err)
                return
            if (current := self.data.get(number)) is not None:
                updated = self._with_status(current, status)
                self.async_set_updated_data({**self.data, number: updated})


class SmartPbxQueueCoordinator(_ListAndStatusCoordinator[Queue, QueueStatus, QueueData]):
    """queue_list, then queue_status of every queue."""

    _kind = "queues"
    _status_command = "queue_status"

    async def _async_list(self) -> Sequence[Queue]:
        return await self.client.queue_list(timeout=self.command_timeout)

    async def _async_request_status(self, number: str) -> QueueStatus:
        return await self.client.queue_status(number, timeout=self.command_timeout)

    def _combine(self, item: Queue, status: QueueStatus | None) -> QueueData:
        return QueueData(queue=item, status=status)

    def _with_status(self, current: QueueData, status: QueueStatus | None) -> QueueData:
        return replace(current, status=status)


class SmartPbxConferenceCoordinator(
    _ListAndStatusCoordinator[Conference, ConferenceStatus, ConferenceData]
):
    """conf_list, then conf_status of every conference."""

    _kind = "conferences"
    _status_command = "conf_status"

    async def _async_list(self) -> Sequence[Conference]:
        return await self.client.conf_list(timeout=self.command_timeout)

    async def _async_request_status(self, number: str) -> ConferenceStatus:
        return await self.client.conf_status(number, timeout=self.command_timeout)

    def _combine(self, item: Conference, status: ConferenceStatus | None) -> ConferenceData:
        return ConferenceData(conference=item, status=status)

    def _with_status(
        self, current: ConferenceData, status: ConferenceStatus | None
    ) -> ConferenceData:
        return replace(current, status=status)


class SmartPbxLiveCallCoordinator(SmartPbxCoordinator[tuple[LiveCall, ...]]):
    """livecall, at the poll interval and (debounced) after every call event."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        client: SmartPbxClient,
        health: PbxHealth,
        *,
        poll_interval: timedelta,
        command_timeout: float,
    ) -> None:
        super().__init__(
            hass,
            entry,
            client,
            health,
            kind="live calls",
            poll_interval=poll_interval,
            command_timeout=command_timeout,
            # Not immediate: a call produces a burst of events (invite, several status
            # changes, a CDR); one poll after the burst settles sees the result.
            request_refresh_debouncer=Debouncer(
                hass, LOGGER, cooldown=LIVE_CALL_REFRESH_COOLDOWN, immediate=False
            ),
            # Polled after every burst of call events: only a change is worth writing.
            # (The others always notify: device removal counts their updates.)
            always_update=False,
        )

    async def _async_fetch(self) -> tuple[LiveCall, ...]:
        return await self.client.live_calls(timeout=self.command_timeout)

    @callback
    def async_schedule_refresh(self) -> None:
        """Poll livecall once the current burst of call events has settled."""
        self._debounced_refresh.async_schedule_call()


def calls_of_extension(calls: Iterable[LiveCall], number: str) -> list[LiveCall]:
    """The live calls extension ``number`` takes part in, as caller or called party."""
    return [call for call in calls if number in (call.caller, call.called)]


def peer_of_extension(call: LiveCall, number: str) -> str:
    """The other party of ``call`` as seen from extension ``number``."""
    return call.called if call.caller == number else call.caller


# --- call records ---------------------------------------------------------------


def is_missed(record: CallRecord) -> bool:
    """A call counts as missed when it was not answered, whatever its direction.

    Asterisk writes NO ANSWER, BUSY or FAILED (and occasionally other words, parsed as
    unknown) for calls nobody picked up; only ANSWERED calls were taken.
    """
    return record.disposition is not CallDisposition.ANSWERED


@dataclass(frozen=True, slots=True)
class LastCall:
    """The most recent CDR, stamped with when Home Assistant received it.

    The CDR's own times are the PBX's local wall clock in an unknown zone; the receive
    time is a true instant and, as the PBX sends the CDR when the call ends, the end time.
    """

    received: datetime
    attributes: dict[str, Any]

    @classmethod
    def from_record(cls, record: CallRecord, received: datetime) -> LastCall:
        return cls(
            received=received,
            attributes={
                "src": record.src,
                "dst": record.dst,
                "disposition": record.disposition.value,
                "billsec": record.billsec,
                "direction": record.direction,
                "callid": record.callid,
            },
        )


class CallLog:
    """Today's call and missed-call counts and the last call, fed by CDR events.

    Counts belong to the local day: they reset at local midnight. The sensors restore
    them after a restart, but only on the day they were saved.
    """

    COUNTERS = ("calls_today", "missed_calls_today")

    def __init__(self, hass: HomeAssistant) -> None:
        self._hass = hass
        self.day: date = dt_util.now().date()
        self.counts: dict[str, int] = dict.fromkeys(self.COUNTERS, 0)
        self.last_call: LastCall | None = None
        self._listeners: set[CALLBACK_TYPE] = set()
        self._restored: set[str] = set()

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Reset at every local midnight; returns the unsubscribe."""
        return async_track_time_change(self._hass, self._async_midnight, hour=0, minute=0, second=0)

    @callback
    def async_add_listener(self, update_callback: CALLBACK_TYPE) -> CALLBACK_TYPE:
        self._listeners.add(update_callback)
        return lambda: self._listeners.discard(update_callback)

    @callback
    def async_add_record(self, record: CallRecord) -> None:
        self._roll_over_if_new_day()
        self.counts["calls_today"] += 1
        if is_missed(record):
            self.counts["missed_calls_today"] += 1
        self.last_call = LastCall.from_record(record, dt_util.utcnow())
        self._notify()

    @callback
    def async_restore_count(self, counter: str, day: date, count: int) -> None:
        """Add a count saved before a restart, if it was saved today (once per counter)."""
        if counter in self._restored:
            return
        self._restored.add(counter)
        self._roll_over_if_new_day()
        if day == self.day and count > 0:
            # Added, not assigned: CDRs received since start-up count too.
            self.counts[counter] += count
            self._notify()

    @callback
    def async_restore_last_call(self, last_call: LastCall) -> None:
        if self.last_call is None:
            self.last_call = last_call
            self._notify()

    @callback
    def _async_midnight(self, now: datetime) -> None:
        self._roll_over_if_new_day()

    def _roll_over_if_new_day(self) -> None:
        today = dt_util.now().date()
        if today == self.day:
            return
        self.day = today
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self._notify()

    def _notify(self) -> None:
        for update_callback in tuple(self._listeners):
            update_callback()


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
    health: PbxHealth
    command_timeout: float
    pbx_device_id: str
    """Device registry id of the PBX, the via_device of every other device."""
    extension_devices: dict[str, HaDeviceInfo] = field(default_factory=dict)
    """One DeviceInfo per extension, shared by its entities (see entity.py)."""

    @property
    def coordinators(self) -> tuple[SmartPbxCoordinator[Any], ...]:
        return (self.system, self.queues, self.conferences, self.live_calls)

"""Recognising a message the broker delivered twice (MQTT QoS 1 is at least once).

Imports nothing from Home Assistant. Two kinds of memory, both bounded:

Call records
    A CDR is the same CDR when its call id and everything that tells the legs of one
    call apart (parties, channels, times, outcome, billed seconds) are equal: a queue
    call writes one CDR per leg under one call id, and those are distinct. A CDR without
    a call id is never taken for a redelivery (nothing tells two of them apart). The
    last ``max_records`` identities are kept, whenever they arrived, and can be saved
    and restored (:meth:`RedeliveryFilter.seen_records`) so that a CDR redelivered after
    a restart is not counted again.

Invites and keypresses
    ``invite`` and ``ivrdtmf`` carry no time or sequence number: a caller pressing the
    same key twice in one call sends the same payload twice. The same event (type, call
    id and every field) within ``window`` seconds of the first is taken for a
    redelivery; the same keypress later counts again. The window covers a redelivery
    after a reconnect (the transport retries within 30 s) at the cost of a genuine
    second press of the same key within it, which is dropped (a gate opens once).

Extension status events set a state (applying one twice changes nothing) and unknown
events have unknown meaning: both always pass.

:class:`EventHub` puts the filter in front of an application's consumers.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
import json
import logging
import time
from typing import Final

from .models import CallRecord, ExtensionStatusEvent, InviteEvent, IvrDtmfEvent, PbxEvent

MAX_RECORDS: Final = 2048
"""Call record identities kept (a busy PBX's day of calls)."""
EVENT_WINDOW: Final = 60.0
"""Seconds within which the same invite or keypress is a redelivery."""
_MAX_EVENTS: Final = 4096
MAX_STARTUP_EVENTS: Final = 10_000
"""Events an :class:`EventHub` keeps for late consumers (a long outage's queue); oldest go first."""

_LOGGER = logging.getLogger(__name__)

type EventConsumer = Callable[[PbxEvent], None]


def record_identity(record: CallRecord) -> str | None:
    """What makes a CDR this CDR (a string, for storage); None without a call id."""
    if not record.callid:
        return None
    return json.dumps(
        [
            record.callid,
            record.src,
            record.dst,
            record.src_channel,
            record.dst_channel,
            None if record.start is None else record.start.isoformat(),
            None if record.end is None else record.end.isoformat(),
            record.billsec,
            record.disposition_raw,
        ],
        separators=(",", ":"),
    )


def _event_identity(event: InviteEvent | IvrDtmfEvent) -> str:
    if isinstance(event, InviteEvent):
        fields = ["invite", event.callid, event.from_number, event.to_number]
    else:
        fields = ["ivrdtmf", event.callid, event.ivr, event.caller, event.dtmf]
    return json.dumps(fields, separators=(",", ":"))


class RedeliveryFilter:
    """Says whether an event is a redelivery of one already let through."""

    def __init__(
        self,
        seen_records: Iterable[str] = (),
        *,
        max_records: int = MAX_RECORDS,
        window: float = EVENT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self._max_records = max_records
        self._records: OrderedDict[str, None] = OrderedDict()
        for identity in seen_records:
            self._remember_record(identity)
        self._window = window
        self._clock = clock
        self._events: OrderedDict[str, float] = OrderedDict()
        """Invite and keypress identities by when they were let through, oldest first."""

    def is_redelivery(self, event: PbxEvent) -> bool:
        """True for a redelivery (drop it); otherwise remembers the event, False."""
        if type(event) is ExtensionStatusEvent:  # most events, checked first
            return False
        if isinstance(event, CallRecord):
            identity = record_identity(event)
            if identity is None:
                return False
            if identity in self._records:
                return True
            self._remember_record(identity)
            return False
        if isinstance(event, InviteEvent | IvrDtmfEvent):
            return self._is_recent(_event_identity(event))
        return False

    def seen_records(self) -> list[str]:
        """The call record identities kept, oldest first (for storage)."""
        return list(self._records)

    def _remember_record(self, identity: str) -> None:
        self._records[identity] = None
        if len(self._records) > self._max_records:
            self._records.popitem(last=False)

    def _is_recent(self, identity: str) -> bool:
        now = self._clock()
        while self._events:
            oldest, at = next(iter(self._events.items()))
            if now - at < self._window and len(self._events) < _MAX_EVENTS:
                break
            del self._events[oldest]
        if identity in self._events:
            return True
        self._events[identity] = now
        return False


class EventHub:
    """Hands every event that is no redelivery to its consumers, nothing missed.

    Meant to be the client's one event listener, added before the connection is made: a
    persistent session's queued messages arrive right after CONNACK. Until
    :meth:`started`, the events are also kept, so a consumer added later (during an
    application's set-up) first gets the ones it missed, in order.
    """

    def __init__(
        self,
        seen_records: Iterable[str] = (),
        *,
        on_call_record: Callable[[], None] | None = None,
    ) -> None:
        """``on_call_record`` is called for each call record let through (to save them)."""
        self._filter = RedeliveryFilter(seen_records)
        self._on_call_record = on_call_record
        self._consumers: list[EventConsumer] = []
        self._startup: deque[PbxEvent] | None = deque(maxlen=MAX_STARTUP_EVENTS)
        self.redeliveries = 0
        """Redelivered events dropped."""

    def handle(self, event: PbxEvent) -> None:
        """The client's event listener."""
        if self._filter.is_redelivery(event):
            self.redeliveries += 1
            _LOGGER.debug("Dropped a redelivered %s", type(event).__name__)
            return
        if isinstance(event, CallRecord) and self._on_call_record is not None:
            self._on_call_record()
        if self._startup is not None:
            self._startup.append(event)
        for consumer in tuple(self._consumers):
            consumer(event)

    def add_consumer(self, consumer: EventConsumer) -> Callable[[], None]:
        """Hand ``consumer`` the events it missed since start-up (until :meth:`started`),
        then every event; returns the undo."""
        for event in self._startup or ():
            consumer(event)
        self._consumers.append(consumer)
        return lambda: self._consumers.remove(consumer) if consumer in self._consumers else None

    def started(self) -> None:
        """Every consumer is in place: forget the start-up events."""
        self._startup = None

    def seen_records(self) -> list[str]:
        """The call record identities kept, oldest first (for storage)."""
        return self._filter.seen_records()

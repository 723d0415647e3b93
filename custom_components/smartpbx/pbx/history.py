"""The last calls, newest first, bounded; the last call; daily counts: as plain dicts.

Imports nothing from Home Assistant. A ``RecentCall`` holds only what a dashboard shows:
when, which way, who called whom (numbers and names), how it ended and how long it
talked. Nothing else of the CDR is kept: not the keys pressed during the call (``dtmf``
can hold a conference or voicemail PIN), not the recording's path, not the channels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from .models import CallDirection, CallDisposition, CallRecord

MAX_RECENT_CALLS: Final = 20


@dataclass(frozen=True, slots=True)
class RecentCall:
    """One finished call."""

    time: datetime
    """When it ended (when its CDR arrived): an aware instant."""
    direction: CallDirection
    from_number: str
    from_name: str | None
    to_number: str
    to_name: str | None
    disposition: CallDisposition
    duration: int | None
    """Seconds talked (the CDR's billsec); None when the PBX did not say."""
    callid: str | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("RecentCall.time must be timezone-aware")

    @classmethod
    def from_call_record(
        cls,
        record: CallRecord,
        received: datetime,
        *,
        src_name: str | None = None,
        dst_name: str | None = None,
    ) -> RecentCall:
        """The call a CDR describes, received at ``received`` (aware), with its names."""
        return cls(
            time=received,
            direction=record.direction_kind,
            from_number=record.src,
            from_name=src_name,
            to_number=record.dst,
            to_name=dst_name,
            disposition=record.disposition,
            duration=record.billsec,
            callid=record.callid,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: for a Store, a restore state or an entity attribute."""
        return {
            "time": self.time.isoformat(),
            "direction": self.direction.value,
            "from": self.from_number,
            "from_name": self.from_name,
            "to": self.to_number,
            "to_name": self.to_name,
            "disposition": self.disposition.value,
            "duration": self.duration,
            "callid": self.callid,
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> RecentCall | None:
        """The call ``as_dict`` wrote, or None if ``stored`` is not one (never raises)."""
        try:
            time = datetime.fromisoformat(stored["time"])
            duration = stored.get("duration")
            return cls(
                time=time,
                direction=_direction(stored.get("direction")),
                from_number=str(stored["from"]),
                from_name=_optional_text(stored.get("from_name")),
                to_number=str(stored["to"]),
                to_name=_optional_text(stored.get("to_name")),
                disposition=_disposition(stored.get("disposition")),
                duration=None if duration is None else int(duration),
                callid=_optional_text(stored.get("callid")),
            )
        except KeyError, TypeError, ValueError:
            return None


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _disposition(value: Any) -> CallDisposition:
    try:
        return CallDisposition(value)
    except ValueError:
        return CallDisposition.UNKNOWN


def _same_record(new: RecentCall, kept: RecentCall) -> bool:
    """The same CDR, whenever it arrived."""
    return (
        new.callid == kept.callid
        and new.from_number == kept.from_number
        and new.to_number == kept.to_number
        and new.disposition is kept.disposition
        and new.duration == kept.duration
        and new.direction is kept.direction
    )


class CallHistory:
    """The last ``max_calls`` calls, newest first (``calls`` given newest first too).

    A CDR delivered twice (MQTT QoS 1 is at least once) is kept once: a call with the
    call id, parties, outcome and duration of one already kept is not added again, even
    though it arrived later. Distinct CDRs of one call id (the legs of a queue call) are
    kept apart; calls without a call id are always kept (nothing tells them apart).
    """

    __slots__ = ("_calls", "max_calls")

    def __init__(self, calls: Iterable[RecentCall] = (), max_calls: int = MAX_RECENT_CALLS) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self.max_calls = max_calls
        self._calls: deque[RecentCall] = deque(maxlen=max_calls)
        # ``calls`` come newest first; added oldest first, the newest end up in front.
        for call in reversed(list(calls)):
            self.add(call)

    def add(self, call: RecentCall) -> bool:
        """Keep ``call`` as the newest; False if it was already kept (a redelivery)."""
        if call.callid is not None and any(_same_record(call, kept) for kept in self._calls):
            return False
        self._calls.appendleft(call)
        return True

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[RecentCall]:
        """Newest first."""
        return iter(self._calls)

    @property
    def calls(self) -> tuple[RecentCall, ...]:
        """Newest first."""
        return tuple(self._calls)

    def as_list(self) -> list[dict[str, Any]]:
        """Newest first, each call ``RecentCall.as_dict``: JSON-able."""
        return [call.as_dict() for call in self._calls]

    @classmethod
    def from_list(cls, stored: Any, max_calls: int = MAX_RECENT_CALLS) -> CallHistory:
        """What ``as_list`` wrote; entries that are not calls are left out (never raises)."""
        calls: list[RecentCall] = []
        if isinstance(stored, list):
            calls = [
                call
                for item in stored
                if isinstance(item, Mapping) and (call := RecentCall.from_dict(item)) is not None
            ]
        return cls(calls, max_calls=max_calls)


def _direction(value: Any) -> CallDirection:
    """A stored direction (our own lower-case value); anything else is UNKNOWN."""
    try:
        return CallDirection(value)
    except ValueError:
        return CallDirection.UNKNOWN


@dataclass(frozen=True, slots=True)
class LastCall:
    """The most recent CDR's fields and names, stamped with when it arrived.

    The CDR's own times are the PBX's wall clock in an unknown zone; the arrival is a true
    instant and, as the PBX sends the CDR when the call ends, the end time.
    """

    received: datetime
    attributes: dict[str, Any]

    @classmethod
    def from_call_record(
        cls,
        record: CallRecord,
        received: datetime,
        *,
        src_name: str | None = None,
        dst_name: str | None = None,
    ) -> LastCall:
        return cls(
            received=received,
            attributes={
                "src": record.src,
                "src_name": src_name,
                "dst": record.dst,
                "dst_name": dst_name,
                "disposition": record.disposition.value,
                "billsec": record.billsec,
                "direction": record.direction,
                "callid": record.callid,
            },
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: for a Store or a restore state."""
        return {"received": self.received.isoformat(), "attributes": self.attributes}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> LastCall | None:
        """What ``as_dict`` wrote, or None if ``stored`` is not that (never raises)."""
        try:
            return cls(datetime.fromisoformat(stored["received"]), dict(stored["attributes"]))
        except KeyError, TypeError, ValueError:
            return None


@dataclass(frozen=True, slots=True)
class DailyCount:
    """A count and the (local) day it belongs to."""

    day: date
    count: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: for a Store or a restore state."""
        return {"day": self.day.isoformat(), "count": self.count}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> DailyCount | None:
        """What ``as_dict`` wrote, or None if ``stored`` is not that (never raises)."""
        try:
            return cls(date.fromisoformat(stored["day"]), int(stored["count"]))
        except KeyError, TypeError, ValueError:
            return None

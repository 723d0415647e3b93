"""Today's call counts, the last call and the recent calls, fed by the PBX's call records (CDRs).

The call log and its sensors are not fed by polling; the sensor platform adds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_change
from homeassistant.helpers.restore_state import ExtraStoredData, RestoreEntity
from homeassistant.util import dt as dt_util

from .entity import pbx_device_info
from .pbx.history import CallHistory, RecentCall
from .pbx.models import CallDirection, CallDisposition, CallRecord

if TYPE_CHECKING:
    from .caller_names import CallerNames
    from .coordinator import SmartPbxData


def is_missed(record: CallRecord) -> bool:
    """A call counts as missed when it was not answered, whatever its direction.

    Asterisk writes NO ANSWER, BUSY or FAILED (and occasionally other words, parsed as
    unknown) for calls nobody picked up; only ANSWERED calls were taken.
    """
    return record.disposition is not CallDisposition.ANSWERED


@dataclass(frozen=True, slots=True)
class CallNames:
    """The names of a CDR's two parties (None: unknown)."""

    src: str | None
    dst: str | None

    @classmethod
    def of(cls, record: CallRecord, caller_names: CallerNames) -> CallNames:
        # The destination of an outbound call was dialled: it may carry the outside-line prefix.
        dialled = record.direction_kind is CallDirection.OUTBOUND
        return cls(caller_names.name(record.src), caller_names.name(record.dst, dialled=dialled))


@dataclass(frozen=True, slots=True)
class LastCall:
    """The most recent CDR, stamped with when Home Assistant received it.

    The CDR's own times are the PBX's local wall clock in an unknown zone; the receive
    time is a true instant and, as the PBX sends the CDR when the call ends, the end time.
    """

    received: datetime
    attributes: dict[str, Any]

    @classmethod
    def from_record(cls, record: CallRecord, received: datetime, names: CallNames) -> LastCall:
        return cls(
            received=received,
            attributes={
                "src": record.src,
                "src_name": names.src,
                "dst": record.dst,
                "dst_name": names.dst,
                "disposition": record.disposition.value,
                "billsec": record.billsec,
                "direction": record.direction,
                "callid": record.callid,
            },
        )


class CallLog:
    """Today's call and missed-call counts, the last call and the recent calls, fed by CDRs.

    Counts belong to the local day: they reset at local midnight. The sensors restore
    them after a restart, but only on the day they were saved. The recent calls (the
    last MAX_RECENT_CALLS) are restored whatever day they were saved.
    """

    COUNTERS = ("calls_today", "missed_calls_today")

    def __init__(self, hass: HomeAssistant, caller_names: CallerNames) -> None:
        self._hass = hass
        self._caller_names = caller_names
        self.history = CallHistory()
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
        received = dt_util.utcnow()
        names = CallNames.of(record, self._caller_names)
        self.last_call = LastCall.from_record(record, received, names)
        self.history.add(
            RecentCall.from_call_record(record, received, src_name=names.src, dst_name=names.dst)
        )
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
    def async_restore_history(self, saved: CallHistory) -> None:
        """Add the calls saved before a restart behind those received since start-up."""
        if "history" in self._restored:
            return
        self._restored.add("history")
        self.history = CallHistory([*self.history, *saved])
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


@dataclass(frozen=True, slots=True)
class DailyCount(ExtraStoredData):
    """A daily counter as saved across restarts: the count and the day it belongs to."""

    day: date
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "count": self.count}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> DailyCount | None:
        try:
            return cls(day=date.fromisoformat(stored["day"]), count=int(stored["count"]))
        except KeyError, TypeError, ValueError:
            return None


@dataclass(frozen=True, slots=True)
class StoredLastCall(ExtraStoredData):
    """The last call as saved across restarts."""

    last_call: LastCall

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.last_call.received.isoformat(),
            "attributes": self.last_call.attributes,
        }

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> LastCall | None:
        try:
            received = dt_util.parse_datetime(stored["received"])
            attributes = dict(stored["attributes"])
        except KeyError, TypeError, ValueError:
            return None
        if received is None:
            return None
        return LastCall(received=received, attributes=attributes)


@dataclass(frozen=True, slots=True)
class StoredRecentCalls(ExtraStoredData):
    """The recent calls as saved across restarts (what the attribute shows: no DTMF)."""

    history: CallHistory

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.history.as_list()}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> CallHistory:
        return CallHistory.from_list(stored.get("calls"))


# --- the sensors that show it (sensor platform) ---------------------------------------


CALL_COUNTERS: tuple[SensorEntityDescription, ...] = (
    SensorEntityDescription(
        key="calls_today",
        translation_key="calls_today",
        state_class=SensorStateClass.TOTAL_INCREASING,
    ),
    SensorEntityDescription(
        key="missed_calls_today",
        translation_key="missed_calls_today",
        state_class=SensorStateClass.TOTAL_INCREASING,
    ),
)

LAST_CALL = SensorEntityDescription(
    key="last_call",
    translation_key="last_call",
    device_class=SensorDeviceClass.TIMESTAMP,
)

RECENT_CALLS = SensorEntityDescription(key="recent_calls", translation_key="recent_calls")


class CallLogSensor(SensorEntity, RestoreEntity):
    """A sensor fed by CDR events, not by polling.

    It stays available while the PBX is unreachable: what it shows is history, still
    true, and CDRs the broker kept for us arrive when the connection returns.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, runtime: SmartPbxData, description: SensorEntityDescription) -> None:
        self.entity_description = description
        self.call_log: CallLog = runtime.call_log
        self._attr_unique_id = f"{runtime.serial}_{description.key}"
        self._attr_device_info = pbx_device_info(runtime.system.data.device_info)

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        if (stored := await self.async_get_last_extra_data()) is not None:
            self._restore(stored.as_dict())
        self.async_on_remove(self.call_log.async_add_listener(self.async_write_ha_state))

    def _restore(self, stored: dict[str, Any]) -> None:
        raise NotImplementedError


class CallCounterSensor(CallLogSensor):
    """Calls (or missed calls) today; zero again at local midnight."""

    @property
    def native_value(self) -> int:
        return self.call_log.counts[self.entity_description.key]

    @property
    def extra_restore_state_data(self) -> DailyCount:
        return DailyCount(day=self.call_log.day, count=self.native_value)

    def _restore(self, stored: dict[str, Any]) -> None:
        if (saved := DailyCount.from_dict(stored)) is not None:
            self.call_log.async_restore_count(self.entity_description.key, saved.day, saved.count)


class LastCallSensor(CallLogSensor):
    """When the last call ended, with the fields of its CDR."""

    @property
    def native_value(self) -> datetime | None:
        return None if self.call_log.last_call is None else self.call_log.last_call.received

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        return None if self.call_log.last_call is None else self.call_log.last_call.attributes

    @property
    def extra_restore_state_data(self) -> StoredLastCall | None:
        if self.call_log.last_call is None:
            return None
        return StoredLastCall(self.call_log.last_call)

    def _restore(self, stored: dict[str, Any]) -> None:
        if (saved := StoredLastCall.from_dict(stored)) is not None:
            self.call_log.async_restore_last_call(saved)


class RecentCallsSensor(CallLogSensor):
    """How many recent calls are kept; the calls themselves, newest first, as an attribute."""

    # The list changes with every call and the recorder would store all of it each time.
    _unrecorded_attributes = frozenset({"calls"})

    @property
    def native_value(self) -> int:
        return len(self.call_log.history)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        return {"calls": self.call_log.history.as_list()}

    @property
    def extra_restore_state_data(self) -> StoredRecentCalls:
        return StoredRecentCalls(self.call_log.history)

    def _restore(self, stored: dict[str, Any]) -> None:
        self.call_log.async_restore_history(StoredRecentCalls.from_dict(stored))

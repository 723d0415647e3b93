"""Today's call counts, the last call and the recent calls, fed by the PBX's call records (CDRs).

Counts belong to the local day: zero again at local midnight, restored after a restart only
on the day they were saved. The last call and the recent calls are restored whatever day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_change
from homeassistant.helpers.restore_state import RestoredExtraData, RestoreEntity
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .entity import pbx_device_info
from .pbx.history import CallHistory, DailyCount, LastCall, RecentCall
from .pbx.models import CallRecord

if TYPE_CHECKING:
    from .caller_names import CallerNames
    from .coordinator import SmartPbxData


class CallLog:
    """Today's call and missed-call counts, the last call and the recent calls."""

    COUNTERS = ("calls_today", "missed_calls_today")

    def __init__(self, hass: HomeAssistant, caller_names: CallerNames) -> None:
        self._hass = hass
        self._caller_names = caller_names
        self.history = CallHistory()
        self.day = dt_util.now().date()
        self.counts: dict[str, int] = dict.fromkeys(self.COUNTERS, 0)
        self.last_call: LastCall | None = None
        self._listeners: set[CALLBACK_TYPE] = set()
        self._restored: set[str] = set()

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Reset at every local midnight; returns the unsubscribe."""
        return async_track_time_change(
            self._hass, self._roll_over_if_new_day, hour=0, minute=0, second=0
        )

    @callback
    def async_add_listener(self, update_callback: CALLBACK_TYPE) -> CALLBACK_TYPE:
        self._listeners.add(update_callback)
        return lambda: self._listeners.discard(update_callback)

    @callback
    def async_add_record(self, record: CallRecord) -> None:
        self._roll_over_if_new_day()
        self.counts["calls_today"] += 1
        if record.missed:
            self.counts["missed_calls_today"] += 1
        received = dt_util.utcnow()
        names = {
            "src_name": self._caller_names.name(record.src),
            "dst_name": self._caller_names.name(record.dst, dialled=record.outbound),
        }
        self.last_call = LastCall.from_call_record(record, received, **names)
        self.history.add(RecentCall.from_call_record(record, received, **names))
        self._notify()

    @callback
    def async_restore_count(self, counter: str, stored: dict[str, Any]) -> None:
        """Add a count saved before a restart, if it was saved today (once per counter)."""
        if counter in self._restored:
            return
        self._restored.add(counter)
        self._roll_over_if_new_day()
        saved = DailyCount.from_dict(stored)
        if saved is not None and saved.day == self.day and saved.count > 0:
            # Added, not assigned: CDRs received since start-up count too.
            self.counts[counter] += saved.count
            self._notify()

    @callback
    def async_restore_last_call(self, stored: dict[str, Any]) -> None:
        """A CDR received since start-up is newer than the saved last call."""
        if self.last_call is None and (saved := LastCall.from_dict(stored)) is not None:
            self.last_call = saved
            self._notify()

    @callback
    def async_restore_history(self, stored: dict[str, Any]) -> None:
        """Add the calls saved before a restart behind those received since start-up."""
        if "history" in self._restored:
            return
        self._restored.add("history")
        self.history = CallHistory([*self.history, *CallHistory.from_list(stored.get("calls"))])
        self._notify()

    @callback
    def _roll_over_if_new_day(self, now: datetime | None = None) -> None:
        today = dt_util.now().date()
        if today == self.day:
            return
        self.day = today
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self._notify()

    def _notify(self) -> None:
        for update_callback in tuple(self._listeners):
            update_callback()


@dataclass(frozen=True, kw_only=True)
class CallLogSensorDescription(SensorEntityDescription):
    """What a call log sensor shows, what it saves across restarts and how it restores it."""

    value_fn: Callable[[CallLog], StateType | datetime]
    attributes_fn: Callable[[CallLog], dict[str, Any] | None] = lambda log: None
    save_fn: Callable[[CallLog], dict[str, Any] | None]
    restore_fn: Callable[[CallLog, dict[str, Any]], None]


def _counter(key: str) -> CallLogSensorDescription:
    return CallLogSensorDescription(
        key=key,
        translation_key=key,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda log: log.counts[key],
        save_fn=lambda log: DailyCount(log.day, log.counts[key]).as_dict(),
        restore_fn=lambda log, stored: log.async_restore_count(key, stored),
    )


def _recent_calls(log: CallLog) -> dict[str, Any]:
    return {"calls": log.history.as_list()}


CALL_LOG_SENSORS: tuple[CallLogSensorDescription, ...] = (
    *map(_counter, CallLog.COUNTERS),
    CallLogSensorDescription(
        key="last_call",
        translation_key="last_call",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda log: log.last_call.received if log.last_call is not None else None,
        attributes_fn=lambda log: log.last_call.attributes if log.last_call is not None else None,
        save_fn=lambda log: log.last_call.as_dict() if log.last_call is not None else None,
        restore_fn=CallLog.async_restore_last_call,
    ),
    CallLogSensorDescription(
        key="recent_calls",
        translation_key="recent_calls",
        value_fn=lambda log: len(log.history),
        attributes_fn=_recent_calls,
        save_fn=_recent_calls,
        restore_fn=CallLog.async_restore_history,
    ),
)


class CallLogSensor(SensorEntity, RestoreEntity):
    """Fed by CDRs, not polled; available while the PBX is unreachable: history stays true,
    and the CDRs the broker kept for us arrive when the connection returns."""

    entity_description: CallLogSensorDescription
    _attr_has_entity_name = True
    _attr_should_poll = False
    # The recent calls change with every call and the recorder would store all of them each time.
    _unrecorded_attributes = frozenset({"calls"})

    def __init__(self, runtime: SmartPbxData, description: CallLogSensorDescription) -> None:
        self.entity_description = description
        self.call_log = runtime.call_log
        self._attr_unique_id = f"{runtime.serial}_{description.key}"
        self._attr_device_info = pbx_device_info(runtime.system.data.device_info)

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        if (stored := await self.async_get_last_extra_data()) is not None:
            self.entity_description.restore_fn(self.call_log, stored.as_dict())
        self.async_on_remove(self.call_log.async_add_listener(self.async_write_ha_state))

    @property
    def native_value(self) -> StateType | datetime:
        return self.entity_description.value_fn(self.call_log)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        return self.entity_description.attributes_fn(self.call_log)

    @property
    def extra_restore_state_data(self) -> RestoredExtraData | None:
        saved = self.entity_description.save_fn(self.call_log)
        return None if saved is None else RestoredExtraData(saved)

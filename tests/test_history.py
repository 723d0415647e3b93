"""The recent-calls store: bounded, newest first, a JSON round trip, nothing secret kept;
the last call and the daily counts as they are saved across restarts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
import json

import pytest

from custom_components.smartpbx.pbx.history import (
    MAX_RECENT_CALLS,
    CallHistory,
    DailyCount,
    LastCall,
    RecentCall,
)
from custom_components.smartpbx.pbx.models import CallDirection, CallDisposition, CallRecord
from custom_components.smartpbx.pbx.parsing import parse_cdr

START = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _call(minute: int, **changes: object) -> RecentCall:
    fields: dict[str, object] = {
        "time": START + timedelta(minutes=minute),
        "direction": CallDirection.INBOUND,
        "from_number": f"+4930{minute:06d}",
        "from_name": f"Caller {minute}",
        "to_number": "2002",
        "to_name": "Luca Rossi",
        "disposition": CallDisposition.ANSWERED,
        "duration": minute,
        "callid": f"call-{minute}",
    }
    fields.update(changes)
    return RecentCall(**fields)  # type: ignore[arg-type]


def _record() -> CallRecord:
    return parse_cdr(
        {
            "event": "cdr",
            "callid": "1733212800.42",
            "src": "0612345678",
            "srctech": "SIP/trunk-0001",
            "dst": "2002",
            "dsttech": "PJSIP/2002-0002",
            "start": "2026-12-03 09:00:00",
            "end": "2026-12-03 09:01:05",
            "billsec": "61",
            "disposition": "NO ANSWER",
            "direction": "Inbound",
            "dtmf": "4711#",
            "recordfile": "/var/spool/asterisk/monitor/q.wav",
        }
    )


def test_the_history_keeps_the_last_calls_newest_first() -> None:
    history = CallHistory()
    for minute in range(MAX_RECENT_CALLS + 5):
        assert history.add(_call(minute))
    assert len(history) == MAX_RECENT_CALLS == 20
    assert [call.duration for call in history] == list(range(24, 4, -1))
    assert history.calls[0] == _call(24)


def test_a_smaller_bound() -> None:
    history = CallHistory(max_calls=3)
    for minute in range(5):
        history.add(_call(minute))
    assert [call.duration for call in history.calls] == [4, 3, 2]
    with pytest.raises(ValueError, match="at least 1"):
        CallHistory(max_calls=0)


def test_a_redelivered_cdr_is_kept_once_but_other_legs_of_a_call_are_kept() -> None:
    history = CallHistory()
    assert history.add(_call(1))
    assert not history.add(_call(1))
    # Redelivered after a reconnect: received later, still the same CDR.
    assert not history.add(_call(1, time=START + timedelta(minutes=5)))
    assert history.add(_call(1, to_number="2003", to_name=None))
    assert len(history) == 2


def test_calls_without_a_call_id_are_all_kept() -> None:
    history = CallHistory()
    assert history.add(_call(1, callid=None))
    assert history.add(_call(1, callid=None))
    assert len(history) == 2


def test_round_trip_through_json() -> None:
    history = CallHistory()
    for minute in range(MAX_RECENT_CALLS + 2):
        history.add(_call(minute, from_name=None if minute % 3 else f"Caller {minute}"))
    stored = json.loads(json.dumps(history.as_list()))
    restored = CallHistory.from_list(stored)
    assert restored.calls == history.calls
    assert restored.as_list() == stored


def test_from_call_record_keeps_no_pin_and_no_recording() -> None:
    call = RecentCall.from_call_record(
        _record(), START, src_name="Marie Dubois", dst_name="Luca Rossi"
    )
    assert call.as_dict() == {
        "time": "2026-12-03T08:00:00+00:00",
        "direction": "inbound",
        "from": "0612345678",
        "from_name": "Marie Dubois",
        "to": "2002",
        "to_name": "Luca Rossi",
        "disposition": "no_answer",
        "duration": 61,
        "callid": "1733212800.42",
    }
    text = json.dumps(call.as_dict())
    assert "4711" not in text
    assert "monitor" not in text


def test_times_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        _call(0, time=datetime(2026, 12, 3, 8, 0))


def test_restoring_leaves_out_what_is_not_a_call() -> None:
    good = _call(5).as_dict()
    stored = [
        good,
        {"time": "not a time", "from": "1", "to": "2"},
        {"time": "2026-12-03T08:00:00", "from": "1", "to": "2"},  # naive
        {"from": "1", "to": "2"},
        {**good, "duration": "a while"},
        "a string",
        None,
        {**good, "callid": "other", "disposition": "exploded", "direction": "up"},
    ]
    restored = CallHistory.from_list(stored)
    assert [call.callid for call in restored] == ["call-5", "other"]
    assert restored.calls[1].disposition is CallDisposition.UNKNOWN
    assert restored.calls[1].direction is CallDirection.UNKNOWN
    assert len(CallHistory.from_list({"calls": []})) == 0
    assert len(CallHistory.from_list(None)) == 0


def test_restoring_more_than_the_bound_keeps_the_newest() -> None:
    stored = [_call(minute).as_dict() for minute in range(30, 0, -1)]  # newest first
    restored = CallHistory.from_list(stored, max_calls=5)
    assert [call.duration for call in restored] == [30, 29, 28, 27, 26]


def test_the_last_call_keeps_the_cdr_fields_and_round_trips() -> None:
    last = LastCall.from_call_record(_record(), START, src_name="Marie Dubois")
    assert last.attributes == {
        "src": "0612345678",
        "src_name": "Marie Dubois",
        "dst": "2002",
        "dst_name": None,
        "disposition": "no_answer",
        "billsec": 61,
        "direction": "Inbound",
        "callid": "1733212800.42",
    }
    assert LastCall.from_dict(json.loads(json.dumps(last.as_dict()))) == last


def test_saved_forms_of_earlier_versions_still_restore() -> None:
    """Restore states written before these moved to the library: users keep their counts."""
    assert LastCall.from_dict(
        {"received": "2024-03-01T12:00:00+00:00", "attributes": {"src": "8001"}}
    ) == LastCall(datetime(2024, 3, 1, 12, tzinfo=UTC), {"src": "8001"})
    assert DailyCount.from_dict({"day": "2024-03-01", "count": 5}) == DailyCount(
        date(2024, 3, 1), 5
    )


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"received": None, "attributes": {}},
        {"received": "x", "attributes": {}},
        {"received": "2024-03-01T12:00:00+00:00", "attributes": 3},
    ],
)
def test_a_garbled_last_call_is_none(stored: dict[str, object]) -> None:
    assert LastCall.from_dict(stored) is None


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"day": "not a date", "count": 5},
        {"day": "2024-03-01", "count": "x"},
        {"day": 1, "count": 1},
    ],
)
def test_a_garbled_daily_count_is_none(stored: dict[str, object]) -> None:
    assert DailyCount.from_dict(stored) is None


def test_a_daily_count_round_trips() -> None:
    count = DailyCount(date(2026, 12, 3), 7)
    assert DailyCount.from_dict(json.loads(json.dumps(count.as_dict()))) == count

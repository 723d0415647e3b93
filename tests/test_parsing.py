"""The tolerant parsers: every vendor example and every NOTES.md variant."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
import json
import logging
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.smartpbx.pbx import jsoncodec
from custom_components.smartpbx.pbx.models import (
    CallDirection,
    CallDisposition,
    CallRecord,
    CallStatusEvent,
    Conference,
    DeviceStatus,
    ExtensionCall,
    ExtensionState,
    ExtensionStatusEvent,
    ExtensionType,
    HangupEvent,
    InviteEvent,
    IvrDtmfEvent,
    LiveCall,
    QueueMemberState,
    TrunkState,
    TrunkType,
    UnknownEvent,
    json_ready,
)
from custom_components.smartpbx.pbx.parsing import (
    MalformedPayloadError,
    call_disposition,
    extension_state,
    parse_cdr,
    parse_conference_status,
    parse_conferences,
    parse_datetime,
    parse_device_info,
    parse_device_status,
    parse_dial,
    parse_duration,
    parse_event,
    parse_extension_call,
    parse_extensions,
    parse_live_calls,
    parse_queue_status,
    parse_queues,
    parse_reply,
    parse_trunks,
    queue_member_state,
    trunk_state,
)

from .pbx_responder import (
    VENDOR_CDR,
    VENDOR_EVENTS,
    VENDOR_REPLIES,
    VENDOR_REQUESTS,
    vendor_reply,
)


def test_every_vendor_example_is_valid_json() -> None:
    for text in [*VENDOR_REQUESTS.values(), *VENDOR_REPLIES.values(), *VENDOR_EVENTS]:
        assert isinstance(json.loads(text), dict)
    assert isinstance(json.loads(VENDOR_CDR), dict)


# --- replies: the envelope ---------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(VENDOR_REPLIES))
def test_vendor_reply_envelopes(command: str) -> None:
    reply = parse_reply(vendor_reply(command))
    assert reply.success is (command != "alarm_set")
    assert reply.raw == vendor_reply(command)


@pytest.mark.parametrize(
    ("status", "success"),
    [
        ("Success", True),
        ("success", True),
        ("SUCCESS", True),
        (" Success ", True),
        ("succeeded", True),
        ("ok", True),
        ("Failed", False),
        ("failed", False),
        ("FAIL", False),
        ("error", False),
        ("weird", False),
        ("", True),
        (None, True),
    ],
)
def test_reply_status_is_case_insensitive(status: str | None, success: bool) -> None:
    payload: dict[str, Any] = {"message": "m"}
    if status is not None:
        payload["status"] = status
    assert parse_reply(payload).success is success


def test_reply_message_and_request_id_are_stripped() -> None:
    reply = parse_reply(vendor_reply("trunk_list"))
    assert reply.request_id == "e914b5997b762aa7"  # echoed as " e914b..." in the example
    assert parse_reply(vendor_reply("queue_paused")).message == "Interface paused successfully"
    assert parse_reply(vendor_reply("alarm_set")).message == "clock sound is not existing"


def test_reply_without_message_or_request_id() -> None:
    reply = parse_reply(vendor_reply("queue_status"))
    assert reply.message == ""
    assert parse_reply({"status": "Success"}).request_id is None
    assert parse_reply({"status": "Success", "request_id": ""}).request_id is None
    assert parse_reply({"status": "Success", "request_id": 42}).request_id == "42"


@pytest.mark.parametrize("payload", [None, [], "Success", 3, [{"status": "Success"}]])
def test_reply_that_is_not_an_object_raises(payload: object) -> None:
    with pytest.raises(MalformedPayloadError):
        parse_reply(payload)
    assert issubclass(MalformedPayloadError, ValueError)


def test_reply_with_a_wrongly_typed_status_raises() -> None:
    with pytest.raises(MalformedPayloadError, match="status"):
        parse_reply({"status": {"ok": True}})


# --- deviceInfo --------------------------------------------------------------------------


def test_device_info_vendor_example() -> None:
    info = parse_device_info(vendor_reply("deviceInfo"))
    assert info.device_name == "SPX1006O16S"
    assert info.serial == "XR18132110000787"
    assert info.firmware == "0.0.1-beta-20220610"
    assert info.system_time == datetime(2022, 6, 10, 11, 37, 23)
    assert info.system_time.tzinfo is None
    assert info.uptime == timedelta(minutes=22, seconds=27)
    assert info.raw["devicename"] == "SPX1006O16S"


def test_device_info_variants() -> None:
    info = parse_device_info(
        {
            "deviceinfo": {
                "devicename": "N-20",
                "sn": 12345,
                "firmwarever": "1.0",
                "systemtime": "2022-06-10 11:37:23",
                "uptime": "49:03:10",
                "temperature": "41",
            }
        }
    )
    assert info.serial == "12345"
    assert info.system_time == datetime(2022, 6, 10, 11, 37, 23)
    assert info.uptime == timedelta(hours=49, minutes=3, seconds=10)
    assert info.raw["temperature"] == "41"


def test_device_info_fields_at_top_level_and_missing() -> None:
    info = parse_device_info(
        {"status": "Success", "devicename": "flat", "uptime": "2 days, 01:00:00"}
    )
    assert info.device_name == "flat"
    assert info.uptime == timedelta(days=2, hours=1)
    empty = parse_device_info({"status": "Success", "deviceinfo": {}})
    assert (empty.device_name, empty.serial, empty.firmware) == ("", "", "")
    assert empty.system_time is None
    assert empty.uptime is None


def test_device_info_that_is_not_an_object_raises() -> None:
    with pytest.raises(MalformedPayloadError):
        parse_device_info({"deviceinfo": "SPX1006O16S"})
    with pytest.raises(MalformedPayloadError):
        parse_device_info("deviceinfo")


# --- times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:22:27", timedelta(minutes=22, seconds=27)),
        ("49:03:10", timedelta(hours=49, minutes=3, seconds=10)),
        ("1:02:03", timedelta(hours=1, minutes=2, seconds=3)),
        ("1 day, 02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("3 days, 02:03:04", timedelta(days=3, hours=2, minutes=3, seconds=4)),
        ("3 days 02:03:04", timedelta(days=3, hours=2, minutes=3, seconds=4)),
        ("2d 02:03:04", timedelta(days=2, hours=2, minutes=3, seconds=4)),
        ("2D 02:03:04", timedelta(days=2, hours=2, minutes=3, seconds=4)),
        ("00:00:06.5", timedelta(seconds=6.5)),
        ("2", timedelta(seconds=2)),
        (" 75 ", timedelta(seconds=75)),
        (2, timedelta(seconds=2)),
        (2.5, timedelta(seconds=2.5)),
        ("", None),
        ("soon", None),
        ("12:61", None),
        ("-5", None),
        (-5, None),
        (float("nan"), None),
        (True, None),
        (None, None),
        ([1], None),
        ("99999999999999999999", None),
        (10**20, None),
        ("99999999999 days, 01:00:00", None),
    ],
)
def test_parse_duration(text: object, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fri Jun 10 11:37:23 2022", datetime(2022, 6, 10, 11, 37, 23)),
        ("Fri Jun  3 01:02:03 2022", datetime(2022, 6, 3, 1, 2, 3)),
        ("Fri Jun 10 11:37:23 UTC 2022", datetime(2022, 6, 10, 11, 37, 23)),
        ("Fri Jun 10 11:37:23 CST 2022", datetime(2022, 6, 10, 11, 37, 23)),
        ("2022-06-10 11:37:23", datetime(2022, 6, 10, 11, 37, 23)),
        ("2022-12-30 11:53:55", datetime(2022, 12, 30, 11, 53, 55)),
        ("2022/12/30 11:53:55", datetime(2022, 12, 30, 11, 53, 55)),
        ("2022-06-10T11:37:23", datetime(2022, 6, 10, 11, 37, 23)),
        ("2022-06-10T11:37:23+08:00", datetime(2022, 6, 10, 11, 37, 23)),
        ("FXSV5", None),
        ("", None),
        ("   ", None),
        ("2022-13-40 99:99:99", None),
        (1672372428, None),
        (None, None),
    ],
)
def test_parse_datetime(text: object, expected: datetime | None) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is None


# --- extension_list ----------------------------------------------------------------------


def test_extension_list_vendor_example() -> None:
    extensions = parse_extensions(vendor_reply("extension_list"))
    assert len(extensions) == 13
    sip = extensions[0]
    assert (sip.number, sip.type, sip.name, sip.state, sip.state_raw, sip.port) == (
        "8001",
        ExtensionType.SIP,
        "8001",
        ExtensionState.UNAVAILABLE,
        "Unavailable",
        None,
    )
    fxs = extensions[1]
    assert (fxs.number, fxs.type, fxs.name, fxs.state, fxs.port) == (
        "2005",
        ExtensionType.FXS,
        "",
        ExtensionState.IDLE,
        "5",
    )
    assert [e.number for e in extensions[1:]] == [str(n) for n in range(2005, 2017)]


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Idle", ExtensionState.IDLE),
        ("idle", ExtensionState.IDLE),
        ("InUse", ExtensionState.IN_USE),
        ("In Use", ExtensionState.IN_USE),
        ("in_use", ExtensionState.IN_USE),
        ("Busy", ExtensionState.BUSY),
        ("Ringing", ExtensionState.RINGING),
        ("InUse&Ringing", ExtensionState.RINGING),
        ("Hold", ExtensionState.ON_HOLD),
        ("OnHold", ExtensionState.ON_HOLD),
        ("InUse&Hold", ExtensionState.ON_HOLD),
        ("Unavailable", ExtensionState.UNAVAILABLE),
        ("Registered", ExtensionState.UNKNOWN),
        ("", ExtensionState.UNKNOWN),
    ],
)
def test_extension_states(text: str, state: ExtensionState) -> None:
    assert extension_state(text) is state
    parsed = parse_extensions([{"number": "1", "status": text}])[0]
    assert parsed.state is state
    assert parsed.state_raw == text


def test_extension_variants_and_defaults() -> None:
    extensions = parse_extensions(
        {
            "extlist": [
                {"number": 8002, "type": "sip", "port": 5, "status": "InUse", "vendor_x": 1},
                {"number": "2001", "type": "2"},
                {"number": "2002", "type": "DECT", "port": ""},
            ]
        }
    )
    first, second, third = extensions
    assert (first.number, first.type, first.port, first.state) == (
        "8002",
        ExtensionType.SIP,
        "5",
        ExtensionState.IN_USE,
    )
    assert first.raw["vendor_x"] == 1
    assert (second.type, second.name, second.state, second.state_raw) == (
        ExtensionType.FXS,
        "",
        ExtensionState.UNKNOWN,
        "",
    )
    assert third.type is ExtensionType.UNKNOWN
    assert third.port is None


def test_extension_list_skips_unusable_entries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components.smartpbx.pbx.parsing")
    extensions = parse_extensions(
        {
            "extlist": [
                "8001",
                None,
                {"status": "Idle"},
                {"number": "  "},
                {"number": {"nested": True}},
                {"number": "8003", "status": "Idle"},
            ]
        }
    )
    assert [e.number for e in extensions] == ["8003"]
    assert caplog.text.count("Skipping extlist") == 5
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_extension_list_missing_or_wrong_shape() -> None:
    assert parse_extensions({"status": "Success"}) == ()
    assert parse_extensions({"extlist": None}) == ()
    with pytest.raises(MalformedPayloadError):
        parse_extensions({"extlist": "8001,8002"})
    with pytest.raises(MalformedPayloadError):
        parse_extensions({"extlist": {"number": "8001"}})
    with pytest.raises(MalformedPayloadError):
        parse_extensions("extlist")  # type: ignore[arg-type]


# --- trunk_list --------------------------------------------------------------------------


def test_trunk_list_vendor_example() -> None:
    trunks = parse_trunks(vendor_reply("trunk_list"))
    assert [t.name for t in trunks] == ["SIP_kMvORe", "FXO-1", "FXO-2", "FXO-3", "FXO-4"]
    sip, fxo1, fxo2 = trunks[:3]
    assert (sip.type, sip.state, sip.port, sip.line_voltage) == (
        TrunkType.SIP,
        TrunkState.IDLE,
        None,
        None,
    )
    assert (fxo1.type, fxo1.state, fxo1.port, fxo1.line_voltage) == (
        TrunkType.FXO,
        TrunkState.IDLE,
        "1",
        50.0,
    )
    assert (fxo2.state, fxo2.state_raw, fxo2.line_voltage) == (
        TrunkState.DISCONNECTED,
        "Disconnected",
        1.0,
    )


def test_trunk_list_first_fragment_as_printed() -> None:
    """The page-broken example's first part is valid JSON on its own: no status, no id."""
    fragment = (
        '{"trunklist": [{"status": "Idle", "name": "SIP_kMvORe", "type": "SIP"},\n'
        '{"port": "1", "vbat": 50, "status": "Idle", "name": "FXO-1", "type": "FXO"},\n'
        '{"port": "2", "vbat": 1, "status": "Disconnected", "name": "FXO-2", "type": "FXO"}]}'
    )
    payload = json.loads(fragment)
    assert parse_reply(payload).success
    assert parse_reply(payload).request_id is None
    assert len(parse_trunks(payload)) == 3


@pytest.mark.parametrize(
    ("vbat", "volts"),
    [
        (50, 50.0),
        ("50", 50.0),
        ("48.5", 48.5),
        (48.5, 48.5),
        ("", None),
        ("n/a", None),
        (None, None),
        (True, None),
    ],
)
def test_trunk_vbat_number_or_string(vbat: object, volts: float | None) -> None:
    trunk = parse_trunks([{"name": "FXO-1", "type": "FXO", "vbat": vbat}])[0]
    assert trunk.line_voltage == volts


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Idle", TrunkState.IDLE),
        ("InUse", TrunkState.IN_USE),
        ("Busy", TrunkState.BUSY),
        ("Disconnected", TrunkState.DISCONNECTED),
        ("disconnected", TrunkState.DISCONNECTED),
        ("Unavailable", TrunkState.UNAVAILABLE),
        ("Registering", TrunkState.UNKNOWN),
    ],
)
def test_trunk_states(text: str, state: TrunkState) -> None:
    assert trunk_state(text) is state


def test_trunk_list_skips_nameless_entries() -> None:
    trunks = parse_trunks({"trunklist": [{"type": "FXO"}, 5, {"name": "FXO-1", "type": "1"}]})
    assert [(t.name, t.type) for t in trunks] == [("FXO-1", TrunkType.SIP)]
    with pytest.raises(MalformedPayloadError):
        parse_trunks({"trunklist": 5})


# --- livecall ----------------------------------------------------------------------------


def test_live_calls_vendor_example() -> None:
    (call,) = parse_live_calls(vendor_reply("livecall"))
    assert call.callid == "1673071399.25"
    assert (call.caller, call.source, call.called, call.destination) == (
        "2005",
        "FXS/5",
        "2006",
        "FXS/6",
    )
    assert call.duration == timedelta(seconds=6)
    assert (call.state, call.direction, call.recording) == ("Ringing", "Internal", "no")


def test_live_call_variants() -> None:
    calls = parse_live_calls(
        {
            "livecall": [
                {"caller": "0612345678", "Duration": "01:00:00", "direction": "Inbound"},
                {"callid": 1673071399.25, "duration": 30},
            ]
        }
    )
    assert calls[0].duration == timedelta(hours=1)
    assert calls[0].direction == "Inbound"
    assert calls[0].callid == ""
    assert calls[1].callid == "1673071399.25"
    assert calls[1].duration == timedelta(seconds=30)
    assert parse_live_calls({"status": "Success", "livecall": []}) == ()


# --- queues ------------------------------------------------------------------------------


def test_queue_list_vendor_example() -> None:
    (queue,) = parse_queues(vendor_reply("queue_list"))
    assert queue.number == "33222"
    assert queue.description == "n/a"
    assert queue.members == ("2003", "2004", "2005")
    assert queue.strategy == "ringall"


def test_queue_list_member_variants() -> None:
    queues = parse_queues(
        {
            "queuelist": [
                {"number": "1", "members": ""},
                {"number": "2", "members": " 2003 , ,2004,"},
                {"number": "3", "members": ["2003", 2004]},
                {"number": "4"},
                {"description": "no number"},
            ]
        }
    )
    assert [q.members for q in queues] == [(), ("2003", "2004"), ("2003", "2004"), ()]


def test_queue_status_vendor_example() -> None:
    status = parse_queue_status(vendor_reply("queue_status"))
    assert status.queue == "6666"
    assert status.strategy == "ringall"
    assert (status.max_callers, status.calls, status.hold_time) == (0, 0, 0)
    assert status.talk_time is None  # "" in the example
    assert (status.completed, status.abandoned) == (0, 0)
    assert len(status.members) == 8
    first, last = status.members[0], status.members[-1]
    assert (first.agent, first.state, first.state_code, first.paused) == (
        "2002",
        QueueMemberState.UNKNOWN,
        0,
        False,
    )
    assert (last.agent, last.state, last.state_code, last.paused) == (
        "8001",
        QueueMemberState.NOT_IN_USE,
        1,
        True,
    )
    assert last.raw["pused"] == "1"


def test_queue_status_members_nested_in_params_as_the_table_says() -> None:
    status = parse_queue_status(
        {
            "queue": 6666,
            "params": {
                "max": 10,
                "strategy": "rrmemory",
                "calls": 2,
                "holdtime": "12",
                "talktime": 30.7,
                "completed": "5",
                "abandoned": "1",
                "members": [{"agent": "8001", "status": 2, "paused": "no"}],
            },
            "status": "success",
        }
    )
    assert status.queue == "6666"
    assert (status.max_callers, status.calls, status.hold_time, status.talk_time) == (
        10,
        2,
        12,
        30,
    )
    (member,) = status.members
    assert (member.state, member.state_code, member.paused) == (QueueMemberState.IN_USE, 2, False)


def test_queue_status_params_as_a_list_and_missing() -> None:
    status = parse_queue_status({"queue": "1", "params": [{"calls": "3", "strategy": "random"}]})
    assert (status.calls, status.strategy, status.members) == (3, "random", ())
    bare = parse_queue_status({"queue": "1", "strategy": "ringall"})
    assert (bare.strategy, bare.max_callers, bare.members) == ("ringall", None, ())
    assert parse_queue_status({"queue": "1", "params": []}).calls is None
    with pytest.raises(MalformedPayloadError):
        parse_queue_status({"queue": "1", "params": "max=0"})
    with pytest.raises(MalformedPayloadError):
        parse_queue_status({"queue": "1", "members": {"agent": "1"}})
    with pytest.raises(MalformedPayloadError):
        parse_queue_status(["queue"])


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, QueueMemberState.UNKNOWN),
        (1, QueueMemberState.NOT_IN_USE),
        (2, QueueMemberState.IN_USE),
        (3, QueueMemberState.BUSY),
        (4, QueueMemberState.INVALID),
        (5, QueueMemberState.UNAVAILABLE),
        (6, QueueMemberState.RINGING),
        (7, QueueMemberState.RING_IN_USE),
        (8, QueueMemberState.ON_HOLD),
        (9, QueueMemberState.UNKNOWN),
        (-1, QueueMemberState.UNKNOWN),
    ],
)
def test_queue_member_codes_are_asterisk_device_states(code: int, state: QueueMemberState) -> None:
    assert queue_member_state(code) is state
    member = parse_queue_status({"queue": "1", "members": [{"agent": "1", "status": str(code)}]})
    assert member.members[0].state is state
    assert member.members[0].state_code == code


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Not in use", QueueMemberState.NOT_IN_USE),
        ("In use", QueueMemberState.IN_USE),
        ("Ringing", QueueMemberState.RINGING),
        ("On Hold", QueueMemberState.ON_HOLD),
        ("", QueueMemberState.UNKNOWN),
        ("strange", QueueMemberState.UNKNOWN),
    ],
)
def test_queue_member_state_names(text: str, state: QueueMemberState) -> None:
    member = parse_queue_status({"queue": "1", "members": [{"agent": "1", "status": text}]})
    assert member.members[0].state is state
    assert member.members[0].state_code is None


@pytest.mark.parametrize(
    ("value", "paused"),
    [
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        (1, True),
        (0, False),
        (True, True),
        # An unreadable word is unknown, never a silent "not paused" (issue 13).
        ("maybe", None),
        ("", None),
    ],
)
def test_queue_member_paused_spellings(value: object, paused: bool | None) -> None:
    for key in ("paused", "pused"):
        status = parse_queue_status({"queue": "1", "members": [{"agent": "1", key: value}]})
        assert status.members[0].paused is paused


def test_queue_member_with_a_wrongly_typed_field_or_no_agent_is_skipped() -> None:
    status = parse_queue_status(
        {
            "queue": "1",
            "members": [{"agent": "1", "paused": ["yes"]}, {"status": "1"}, {"agent": "2"}],
        }
    )
    assert [m.agent for m in status.members] == ["2"]


def test_json_booleans_in_text_fields() -> None:
    (conference,) = parse_conferences([{"number": "7001", "description": True}, {"number": ""}])
    assert conference.description == "yes"
    assert parse_queues([{"number": "1", "strategy": False}])[0].strategy == "no"


# --- conferences -------------------------------------------------------------------------


def test_conf_list_vendor_example() -> None:
    first, second = parse_conferences(vendor_reply("conf_list"))
    assert (first.number, first.description, first.moderators) == ("33333", "", ("2003", "2004"))
    assert (first.allow_invite, first.wait_for_moderator) == (True, True)
    assert (first.participant_pin, first.moderator_pin) == ("111", "11223")
    assert (second.number, second.allow_invite, second.wait_for_moderator) == (
        "4444",
        True,
        False,
    )
    assert second.participant_pin == ""


def test_conference_pins_stay_out_of_repr() -> None:
    first, _ = parse_conferences(vendor_reply("conf_list"))
    assert "111" not in repr(first)
    assert "11223" not in repr(first)
    assert "participantpassword" not in repr(first)
    assert isinstance(first, Conference)


def test_conf_status_vendor_example() -> None:
    status = parse_conference_status(vendor_reply("conf_status"))
    assert status.conference == "2222"
    (member,) = status.members
    assert member.callerid == "8001"
    assert member.channel == "PJSIPV8001-00000002"
    assert not any(
        (
            member.admin,
            member.marked_user,
            member.wait_marked,
            member.waiting,
            member.muted,
            member.talking,
        )
    )
    assert member.answered_time == timedelta(seconds=2)


def test_conf_status_variants() -> None:
    status = parse_conference_status(
        {
            "conf": 2222,
            "params": {
                "members": [
                    {
                        "callerid": "2003",
                        "channel": "PJSIP/2003-0000000a",
                        "admin": "Yes",
                        "muted": "yes",
                        "talking": "1",
                        "markeduser": True,
                        "answeredtime": "00:01:05",
                    },
                    "garbage",
                ]
            },
        }
    )
    assert status.conference == "2222"
    (member,) = status.members
    assert (member.admin, member.muted, member.talking, member.marked_user) == (
        True,
        True,
        True,
        True,
    )
    assert member.waiting is False
    assert member.answered_time == timedelta(minutes=1, seconds=5)
    assert parse_conference_status({"conf": "1"}).members == ()
    with pytest.raises(MalformedPayloadError):
        parse_conference_status({"conf": "1", "members": "8001"})


# --- dial / listen -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "callid"),
    [
        ("dial", "1673080587.2118"),
        ("dial_ivr", "1673081585.0187"),
        ("dial_queue", "1672026034.6568"),
        ("listen", "1669694889.6367"),
    ],
)
def test_dial_vendor_examples(command: str, callid: str) -> None:
    result = parse_dial(vendor_reply(command))
    assert result.callid == callid
    assert result.message == "success"


def test_dial_without_callid() -> None:
    assert parse_dial({"status": "Success"}).callid is None
    assert parse_dial({"status": "Success", "callid": ""}).callid is None
    assert parse_dial({"status": "Success", "called": "1.2"}).callid == "1.2"
    with pytest.raises(MalformedPayloadError):
        parse_dial({"callid": ["1.2"]})


# --- events ------------------------------------------------------------------------------


def test_extension_status_vendor_examples() -> None:
    events = [parse_event(json.loads(text)) for text in VENDOR_EVENTS[:4]]
    assert all(isinstance(e, ExtensionStatusEvent) for e in events)
    assert [(e.extension, e.state) for e in events if isinstance(e, ExtensionStatusEvent)] == [
        ("2005", ExtensionState.IDLE),
        ("2005", ExtensionState.IN_USE),
        ("2005", ExtensionState.BUSY),
        ("8001", ExtensionState.IN_USE),
    ]
    last = events[3]
    assert isinstance(last, ExtensionStatusEvent)
    assert last.ip_address == "sip:8001@192.168.8.171:63414"
    first = events[0]
    assert isinstance(first, ExtensionStatusEvent)
    assert first.ip_address is None


def test_invite_vendor_example_and_called_variant() -> None:
    event = parse_event(json.loads(VENDOR_EVENTS[4]))
    assert event == InviteEvent(from_number="8001", to_number="2005", callid="1673077852.143")
    table = parse_event({"event": "invite", "from": "8001", "to": "2005", "called": "1.5"})
    assert isinstance(table, InviteEvent)
    assert table.callid == "1.5"
    bare = parse_event({"event": "invite", "from": "8001", "to": "2005"})
    assert isinstance(bare, InviteEvent)
    assert bare.callid is None


def test_ivrdtmf_vendor_example_and_called_variant() -> None:
    event = parse_event(json.loads(VENDOR_EVENTS[5]))
    assert event == IvrDtmfEvent(ivr="9000", caller="2005", dtmf="5", callid="1673078689.147")
    table = parse_event(
        {"event": "ivrdtmf", "ivr": 9000, "caller": "2005", "dtmf": 5, "called": "9.1"}
    )
    assert table == IvrDtmfEvent(ivr="9000", caller="2005", dtmf="5", callid="9.1")


def test_unknown_events_are_kept_whole() -> None:
    payload = {"event": "voicemail", "extension": "8001", "count": 3}
    event = parse_event(payload)
    assert isinstance(event, UnknownEvent)
    assert event.event == "voicemail"
    assert event.raw == payload
    nameless = parse_event({"extension": "8001"})
    assert isinstance(nameless, UnknownEvent)
    assert nameless.event == ""


def test_event_names_are_case_insensitive_and_may_be_capitalised() -> None:
    event = parse_event({"Event": "Extension_Status", "extension": "1", "status": "Idle"})
    assert isinstance(event, ExtensionStatusEvent)
    assert parse_event({"Event": "cdr", "src": "1"}) == parse_cdr({"src": "1"})


def test_event_extra_fields_kept_in_raw() -> None:
    event = parse_event(
        {"event": "extension_status", "extension": "1", "status": "Idle", "new_field": "x"}
    )
    assert event.raw["new_field"] == "x"


@pytest.mark.parametrize("payload", [None, [], "invite", 1])
def test_event_that_is_not_an_object_raises(payload: object) -> None:
    with pytest.raises(MalformedPayloadError):
        parse_event(payload)


def test_event_with_wrongly_typed_field_raises() -> None:
    with pytest.raises(MalformedPayloadError):
        parse_event({"event": "extension_status", "extension": {"n": 1}, "status": "Idle"})
    with pytest.raises(MalformedPayloadError):
        parse_event({"event": ["invite"]})


# --- CDR ---------------------------------------------------------------------------------


def test_cdr_vendor_example_as_printed() -> None:
    record = parse_cdr(json.loads(VENDOR_CDR))
    assert isinstance(record, CallRecord)
    assert record.callid == "1672372428.45"
    assert (record.src, record.src_channel, record.dst, record.dst_channel) == (
        "2007",
        "FXSV7",
        "FXSV7",
        "2005",
    )
    assert record.start is None  # "FXSV5": the example is shifted by one field
    assert record.end == datetime(2022, 12, 30, 11, 53, 55)
    assert record.billsec == 0
    assert record.disposition is CallDisposition.NO_ANSWER
    assert record.disposition_raw == "NO ANSWER"
    assert (record.direction, record.dtmf, record.record_file) == ("Internal", "0", "")
    assert parse_event(json.loads(VENDOR_CDR)) == record


def test_cdr_as_field_code_reads_it() -> None:
    record = parse_cdr(
        {
            "event": "cdr",
            "callid": "1672372428.45",
            "src": "2007",
            "srctech": "FXS/7",
            "dst": "2005",
            "dsttech": "FXS/5",
            "start": "2022-12-30 11:53:40",
            "end": "2022-12-30 11:53:55",
            "billsec": 15,
            "disposition": "ANSWERED",
            "direction": "Internal",
            "dtmf": "",
            "recordfile": "/rec/1672372428.45.wav",
        }
    )
    assert record.start == datetime(2022, 12, 30, 11, 53, 40)
    assert record.billsec == 15
    assert record.disposition is CallDisposition.ANSWERED
    assert record.record_file == "/rec/1672372428.45.wav"


def test_cdr_with_the_tables_field_names() -> None:
    record = parse_cdr(
        {
            "Event": "cdr",
            "src": "2007",
            "dst": "2005",
            "billsec": "12.0",
            "dispositon": "BUSY",
            "recordurl": "http://pbx/rec.wav",
        }
    )
    assert record.callid is None
    assert record.billsec == 12
    assert record.disposition is CallDisposition.BUSY
    assert record.record_file == "http://pbx/rec.wav"
    assert (record.start, record.end, record.direction) == (None, None, "")


@pytest.mark.parametrize(
    ("text", "disposition"),
    [
        ("ANSWERED", CallDisposition.ANSWERED),
        ("answered", CallDisposition.ANSWERED),
        ("NO ANSWER", CallDisposition.NO_ANSWER),
        ("NO_ANSWER", CallDisposition.NO_ANSWER),
        ("NOANSWER", CallDisposition.NO_ANSWER),
        ("BUSY", CallDisposition.BUSY),
        ("FAILED", CallDisposition.FAILED),
        ("CONGESTION", CallDisposition.FAILED),
        ("", CallDisposition.UNKNOWN),
        ("DOCUMENTATION", CallDisposition.UNKNOWN),
    ],
)
def test_cdr_dispositions(text: str, disposition: CallDisposition) -> None:
    assert call_disposition(text) is disposition


@pytest.mark.parametrize(
    ("billsec", "expected"),
    [
        ("0", 0),
        ("", None),
        (None, None),
        ("abc", None),
        (7.9, 7),
        ("inf", None),
        # Beyond 64 bits Home Assistant cannot store the number (orjson refuses it), and
        # beyond a float's range float() raises: both are garbage, not a duration.
        (2**63, None),
        (-(2**63) - 1, None),
        (10**400, None),
        ("1e30", None),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_cdr_billsec(billsec: object, expected: int | None) -> None:
    assert parse_cdr({"billsec": billsec}).billsec == expected


def test_cdr_that_is_not_an_object_raises() -> None:
    with pytest.raises(MalformedPayloadError):
        parse_cdr([VENDOR_CDR])
    with pytest.raises(MalformedPayloadError):
        parse_cdr({"billsec": {"s": 1}})


# --- the JSON codec ----------------------------------------------------------------------


def test_json_codec_round_trip_and_errors() -> None:
    assert jsoncodec.JSON_BACKEND in {"orjson", "json"}
    data = jsoncodec.dumps({"cmd": "dial", "name": "Sofía"})
    assert jsoncodec.loads(data) == {"cmd": "dial", "name": "Sofía"}
    with pytest.raises(jsoncodec.JsonDecodeError):
        jsoncodec.loads(b"{not json")
    with pytest.raises(jsoncodec.JsonDecodeError):
        jsoncodec.loads(b"\xff\xfe")
    with pytest.raises(TypeError):
        jsoncodec.dumps({"value": object()})


# --- arbitrary input ---------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
KNOWN_KEYS = st.sampled_from(
    [
        "status",
        "message",
        "request_id",
        "deviceinfo",
        "extlist",
        "trunklist",
        "livecall",
        "queuelist",
        "conflist",
        "queue",
        "params",
        "members",
        "conf",
        "callid",
        "called",
        "event",
        "Event",
        "extension",
        "number",
        "type",
        "port",
        "vbat",
        "duration",
        "agent",
        "pused",
        "paused",
        "max",
        "calls",
        "start",
        "end",
        "billsec",
        "disposition",
        "dispositon",
        "uptime",
        "systemtime",
        "answeredtime",
        "allowinvite",
        "moderators",
    ]
)
PAYLOADS = st.dictionaries(KNOWN_KEYS | st.text(max_size=8), JSON_VALUES, max_size=8)
PARSERS = (
    parse_reply,
    parse_device_info,
    parse_extensions,
    parse_trunks,
    parse_live_calls,
    parse_queues,
    parse_queue_status,
    parse_conferences,
    parse_conference_status,
    parse_dial,
    parse_event,
    parse_cdr,
)


@settings(max_examples=300, deadline=None)
@given(payload=PAYLOADS | JSON_VALUES)
def test_parsers_raise_nothing_but_malformed_payload_error(payload: Any) -> None:
    for parser in PARSERS:
        with contextlib.suppress(MalformedPayloadError):
            parser(payload)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_time_parsers_never_raise(value: Any) -> None:
    parse_duration(value)
    parse_datetime(value)


# --- field variants (FIELD.md, issue 13) -------------------------------------------------
# Samples written from FIELD.md's descriptions. "fact" lines were seen in the field;
# "constructed" ones are Asterisk-style variants nobody captured (see parsing's docstring).


@pytest.mark.parametrize(
    ("payload", "parse"),
    [
        ({"status": "Success", "livecall": {}}, parse_live_calls),  # inferred from LuCI
        ({"status": "Success", "extlist": {}}, parse_extensions),
        ({"status": "Success", "trunklist": {}}, parse_trunks),
        ({"status": "Success", "queuelist": {}}, parse_queues),
        ({"status": "Success", "conflist": {}}, parse_conferences),
    ],
)
def test_field_empty_list_sent_as_empty_object(payload: dict[str, Any], parse: Any) -> None:
    assert parse(payload) == ()


@pytest.mark.parametrize("members_at", ["top", "params"])
def test_field_empty_queue_and_conference_members_sent_as_empty_object(members_at: str) -> None:
    reply: dict[str, Any] = {"queue": "6666", "params": {"max": "0"}}
    if members_at == "top":
        reply["members"] = {}
    else:
        reply["params"]["members"] = {}
    assert parse_queue_status(reply).members == ()
    assert parse_conference_status({"conf": "7001", "members": {}}).members == ()


def test_field_lua_table_with_numbered_keys_reads_as_a_list_in_order() -> None:
    extensions = parse_extensions(
        {"extlist": {"2": {"number": "8002"}, "1": {"number": "8001"}, "10": {"number": "8010"}}}
    )
    assert [e.number for e in extensions] == ["8001", "8002", "8010"]


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"code": 3, "text": "no such channel"}, '{"code": 3, "text": "no such channel"}'),
        (["a", "b"], '["a", "b"]'),
        (42, "42"),
        (True, "yes"),
    ],
)
def test_constructed_message_that_is_not_a_string_is_kept_as_text(
    message: object, text: str
) -> None:
    reply = parse_reply({"status": "Failed", "message": message, "request_id": "1"})
    assert reply.success is False
    assert reply.message == text


@pytest.mark.parametrize(("status", "success"), [(True, True), (False, False)])
def test_constructed_status_as_json_boolean(status: bool, success: bool) -> None:
    assert parse_reply({"status": status, "message": "x"}).success is success


@pytest.mark.parametrize(
    ("member", "paused"),
    [
        ({"agent": "8001", "status": "1", "pused": "1"}, True),  # the document's example
        ({"agent": "8001", "status": "1", "pused": "0"}, False),
        ({"agent": "8001", "status": "1", "paused": "1"}, True),  # field fact
        ({"agent": "8001", "status": "1", "paused": "0"}, False),
        ({"agent": "8001", "status": "1", "paused": "Paused"}, True),  # words
        ({"agent": "8001", "status": "1", "paused": "(paused)"}, True),
        ({"agent": "8001", "status": "1", "paused": "PAUSED"}, True),
        ({"agent": "8001", "status": "1", "paused": "yes"}, True),
        ({"agent": "8001", "status": "1", "paused": "no"}, False),
        ({"agent": "8001", "status": "1", "paused": "Unpaused"}, False),
        ({"agent": "8001", "status": "1", "paused": "not paused"}, False),
        ({"agent": "8001", "status": "1", "paused": "on break"}, None),  # unknown word
        ({"agent": "8001", "status": "1"}, None),  # no flag at all
    ],
)
def test_field_pause_flags(member: dict[str, Any], paused: bool | None) -> None:
    parsed = parse_queue_status({"queue": "6666", "members": [member]}).members[0]
    assert parsed.paused is paused
    raw = member.get("paused", member.get("pused"))
    assert parsed.paused_raw == ("" if raw is None else raw)


@pytest.mark.parametrize(
    ("agent", "number"),
    [
        ("8004", "8004"),
        ("PJSIP/8004", "8004"),  # constructed
        ("SIP/8004", "8004"),
        ("Local/8004@from-queue/n", "8004"),
        ("FXS/5", "5"),
        ("Agent/weird", "Agent/weird"),  # not an extension interface: kept as is
    ],
)
def test_constructed_agent_written_as_interface(agent: str, number: str) -> None:
    member = parse_queue_status({"queue": "6666", "members": [{"agent": agent}]}).members[0]
    assert member.agent == number
    assert member.agent_raw == agent


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("7", QueueMemberState.RING_IN_USE),
        ("Ring+Inuse", QueueMemberState.RING_IN_USE),  # constructed
        ("(Ring+Inuse)", QueueMemberState.RING_IN_USE),
        ("(Not in use)", QueueMemberState.NOT_IN_USE),
        ("In use", QueueMemberState.IN_USE),
        ("(On Hold)", QueueMemberState.ON_HOLD),
        ("Sleeping", QueueMemberState.UNKNOWN),
    ],
)
def test_queue_member_state_texts(status: str, state: QueueMemberState) -> None:
    member = parse_queue_status({"queue": "1", "members": [{"agent": "1", "status": status}]})
    assert member.members[0].state is state
    assert member.members[0].state_raw == status


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Ring+Inuse", ExtensionState.RINGING),  # constructed
        ("InUse&Ringing", ExtensionState.RINGING),
        ("Not in use", ExtensionState.IDLE),
        ("InUse&Hold", ExtensionState.ON_HOLD),
        ("Gone fishing", ExtensionState.UNKNOWN),
    ],
)
def test_constructed_extension_states(text: str, state: ExtensionState) -> None:
    extension = parse_extensions({"extlist": [{"number": "8001", "status": text}]})[0]
    assert extension.state is state
    assert extension.state_raw == text


@pytest.mark.parametrize(
    ("text", "state", "latency"),
    [
        ("Idle", TrunkState.IDLE, None),  # document
        ("Disconnected", TrunkState.DISCONNECTED, None),
        ("Registered", TrunkState.IDLE, None),  # constructed from here on
        ("Unreachable", TrunkState.UNAVAILABLE, None),
        ("OK (12 ms)", TrunkState.IDLE, 12.0),
        ("LAGGED (1500 ms)", TrunkState.IDLE, 1500.0),
        ("Lagged", TrunkState.IDLE, None),
        ("Unregistered", TrunkState.DISCONNECTED, None),
        ("Rejected", TrunkState.DISCONNECTED, None),
        ("UNKNOWN (0 ms)", TrunkState.UNKNOWN, 0.0),
        ("Quantum", TrunkState.UNKNOWN, None),
    ],
)
def test_constructed_sip_trunk_states(text: str, state: TrunkState, latency: float | None) -> None:
    trunk = parse_trunks({"trunklist": [{"name": "SIP_x", "type": "SIP", "status": text}]})[0]
    assert trunk.state is state
    assert trunk.state_raw == text
    assert trunk.latency_ms == latency


@pytest.mark.parametrize(
    ("text", "kind"), [("PJSIP", ExtensionType.SIP), ("pjsip", ExtensionType.SIP)]
)
def test_constructed_pjsip_type_is_sip(text: str, kind: ExtensionType) -> None:
    assert parse_extensions({"extlist": [{"number": "8001", "type": text}]})[0].type is kind
    trunk = parse_trunks({"trunklist": [{"name": "t", "type": text}]})[0]
    assert trunk.type is TrunkType.SIP


@pytest.mark.parametrize(
    ("vbat", "volts"),
    [
        (50, 50.0),
        ("50", 50.0),
        ("48V", 48.0),
        ("48 V", 48.0),
        ("-48.5V", -48.5),
        ("0v", 0.0),
        ("n/a", None),
        ("", None),
        ("48 volts of power", None),
    ],
)
def test_constructed_vbat_with_a_unit(vbat: object, volts: float | None) -> None:
    trunk = parse_trunks({"trunklist": [{"name": "FXO-1", "type": "FXO", "vbat": vbat}]})[0]
    assert trunk.line_voltage == volts


@pytest.mark.parametrize(
    ("uptime", "expected"),
    [
        ("00:22:27", timedelta(minutes=22, seconds=27)),  # the document
        ("49:03:10", timedelta(hours=49, minutes=3, seconds=10)),
        ("3 days, 4:05", timedelta(days=3, hours=4, minutes=5)),  # constructed from here on
        ("up 3 days,  4:05", timedelta(days=3, hours=4, minutes=5)),
        ("1 day, 02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("4:05", timedelta(hours=4, minutes=5)),
        ("up 12 min", timedelta(minutes=12)),
        ("1 day, 12 min", timedelta(days=1, minutes=12)),
        ("2d 3h 4m 5s", timedelta(days=2, hours=3, minutes=4, seconds=5)),
        ("3 days 4 hours 5 minutes", timedelta(days=3, hours=4, minutes=5)),
        ("1 week, 2 days", timedelta(days=9)),
        ("3600", timedelta(hours=1)),
        ("a while", None),
        ("3 fortnights", None),
        ("", None),
    ],
)
def test_uptime_forms(uptime: str, expected: timedelta | None) -> None:
    info = parse_device_info({"deviceinfo": {"sn": "1", "uptime": uptime}})
    assert info.uptime == expected
    assert info.raw["uptime"] == uptime


@pytest.mark.parametrize("key", ["calllist", "message"])
def test_field_live_calls_under_calllist_or_message(key: str) -> None:
    calls = parse_live_calls(
        {
            "status": "Success",
            key: [{"caller": "8001", "called": "2005", "state": "Up", "callid": "1.2"}],
        }
    )
    assert [(c.callid, c.caller, c.called, c.state) for c in calls] == [
        ("1.2", "8001", "2005", "Up")
    ]


def test_livecall_wins_over_the_field_alternatives_and_a_text_message_is_no_list() -> None:
    assert parse_live_calls({"livecall": [], "calllist": [{"callid": "1.1"}]}) == ()
    assert parse_live_calls({"status": "Success", "message": "success"}) == ()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Inbound", CallDirection.INBOUND),  # field fact
        ("Outbound", CallDirection.OUTBOUND),  # field fact and document
        ("Internal", CallDirection.INTERNAL),  # document
        ("incoming", CallDirection.INBOUND),
        ("Sideways", CallDirection.UNKNOWN),
        ("", CallDirection.UNKNOWN),
    ],
)
def test_field_directions(text: str, kind: CallDirection) -> None:
    call = parse_live_calls({"livecall": [{"callid": "1.1", "direction": text}]})[0]
    assert (call.direction, call.direction_kind) == (text, kind)
    record = parse_cdr({"event": "cdr", "direction": text})
    assert (record.direction, record.direction_kind) == (text, kind)
    assert call.outbound is record.outbound is (kind is CallDirection.OUTBOUND)


@pytest.mark.parametrize("name", ["callstatus", "call_status"])
def test_field_callstatus_event(name: str) -> None:
    event = parse_event(
        {
            "event": name,
            "calllist": [
                {
                    "caller": "8001",
                    "called": "2005",
                    "state": "Up",
                    "callid": "1.5",
                    "calltype": "Outbound",
                },
                "not an object",
            ],
        }
    )
    assert isinstance(event, CallStatusEvent)
    assert isinstance(event, UnknownEvent)  # older consumers still get it whole
    assert event.event == name
    (call,) = event.calls
    assert (call.caller, call.called, call.state, call.callid) == ("8001", "2005", "Up", "1.5")
    assert call.direction_kind is CallDirection.OUTBOUND


def test_field_callstatus_event_with_no_calls_as_empty_object() -> None:
    event = parse_event({"event": "callstatus", "calllist": {}})
    assert isinstance(event, CallStatusEvent)
    assert event.calls == ()


def test_field_hangup_event() -> None:
    event = parse_event({"event": "hangup", "callid": "1.5", "channel": "PJSIP/8001-0000001a"})
    assert isinstance(event, HangupEvent)
    assert (event.callid, event.channel) == ("1.5", "PJSIP/8001-0000001a")
    bare = parse_event({"event": "hangup"})
    assert isinstance(bare, HangupEvent)
    assert (bare.callid, bare.channel) == (None, None)


def test_events_as_plain_data() -> None:
    """Wire names, enum values, ISO times, and payloads copied (nested ones too)."""
    assert parse_event(json.loads(VENDOR_EVENTS[4])).as_dict() == {
        "from": "8001",
        "to": "2005",
        "callid": "1673077852.143",
    }
    assert parse_event(json.loads(VENDOR_EVENTS[5])).as_dict() == {
        "ivr": "9000",
        "caller": "2005",
        "dtmf": "5",
        "callid": "1673078689.147",
    }
    record = parse_cdr(json.loads(VENDOR_CDR)).as_dict()
    assert (record["start"], record["end"]) == (None, "2022-12-30T11:53:55")
    assert (record["disposition"], record["disposition_raw"]) == ("no_answer", "NO ANSWER")
    assert set(record) == {
        *("callid", "src", "src_channel", "dst", "dst_channel", "start", "end", "billsec"),
        *("disposition", "disposition_raw", "direction", "dtmf", "record_file"),
    }
    nested = {"event": "voicemail", "box": {"new": 3}}
    unknown = parse_event(nested).as_dict()
    assert unknown == {"event": "voicemail", "payload": nested}
    unknown["payload"]["box"]["new"] = 0
    assert nested["box"] == {"new": 3}
    call = {"caller": "8001", "called": "2005", "state": "Up", "callid": "1.5"}
    status = {"event": "call_status", "calllist": [{**call, "calltype": "Inbound"}]}
    assert parse_event(status).as_dict() == {
        "event": "callstatus",
        "calls": [{**call, "direction": "inbound"}],
        "payload": status,
    }
    hangup = {"event": "hangup", "callid": "1.5", "channel": "PJSIP/8001-0000001a"}
    assert parse_event(hangup).as_dict() == {
        "event": "hangup",
        "callid": "1.5",
        "channel": "PJSIP/8001-0000001a",
        "caller": None,
        "called": None,
        "payload": hangup,
    }


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"status": "online"}, DeviceStatus.ONLINE),  # field fact
        ({"status": "offline"}, DeviceStatus.OFFLINE),  # field fact
        ({"status": "Online"}, DeviceStatus.ONLINE),
        ({"status": True}, DeviceStatus.ONLINE),
        ("offline", DeviceStatus.OFFLINE),
        ({"status": "rebooting"}, DeviceStatus.UNKNOWN),
        ({"uptime": 5}, DeviceStatus.UNKNOWN),
    ],
)
def test_field_device_status(payload: object, status: DeviceStatus) -> None:
    event = parse_device_status(payload)
    assert event.status is status
    assert event.event == "status"
    assert event.online is (
        None if status is DeviceStatus.UNKNOWN else status is DeviceStatus.ONLINE
    )


def test_field_extcallinfo_reply() -> None:
    call = parse_extension_call(
        "8001",
        {
            "status": "Success",
            "callid": "1673071399.25",
            "channelid": "PJSIP/8001-0000001a",
            "peerchannelid": "PJSIP/2005-0000001b",
            "from": "8001",
            "to": "2005",
            "direction": "Outbound",
            "request_id": "x",
        },
    )
    assert call == ExtensionCall(
        extension="8001",
        callid="1673071399.25",
        channel="PJSIP/8001-0000001a",
        peer_channel="PJSIP/2005-0000001b",
        from_number="8001",
        to_number="2005",
        direction=CallDirection.OUTBOUND,
        direction_raw="Outbound",
    )
    assert call is not None
    assert call.as_dict() == {
        "callid": "1673071399.25",
        "channel": "PJSIP/8001-0000001a",
        "peer_channel": "PJSIP/2005-0000001b",
        "from": "8001",
        "to": "2005",
        "direction": "outbound",
        "direction_raw": "Outbound",
    }


def test_json_ready_leaves_out_raw_payloads_and_pins() -> None:
    """Durations in whole seconds, enums as their values, tuples as lists; no raw, no PINs."""
    room = Conference(
        "7001",
        "Room",
        ("8001",),
        allow_invite=True,
        wait_for_moderator=False,
        participant_pin="4711",
        moderator_pin="0815",
        raw={"participantpassword": "4711"},
    )
    call = LiveCall(
        callid="1673071399.25",
        caller="8001",
        source="PJSIP/8001-0000001a",
        called="8002",
        destination="PJSIP/8002-0000001b",
        duration=timedelta(seconds=65.7),
        state="Up",
        direction="Internal",
        recording="",
        raw={"callid": "1673071399.25"},
        direction_kind=CallDirection.INTERNAL,
    )

    data = json_ready((room, call, None))

    assert data == [
        {
            "number": "7001",
            "description": "Room",
            "moderators": ["8001"],
            "allow_invite": True,
            "wait_for_moderator": False,
        },
        {
            "callid": "1673071399.25",
            "caller": "8001",
            "source": "PJSIP/8001-0000001a",
            "called": "8002",
            "destination": "PJSIP/8002-0000001b",
            "duration": 65,
            "state": "Up",
            "direction": "Internal",
            "recording": "",
            "direction_kind": "internal",
        },
        None,
    ]
    assert json.loads(json.dumps(data)) == data


def test_extcallinfo_reply_without_a_call_is_none() -> None:
    assert parse_extension_call("8001", {"status": "Success", "message": "no call"}) is None
    assert (
        parse_extension_call("8001", {"status": "Success", "callid": "", "channelid": ""}) is None
    )


def test_unknown_values_are_logged_once_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components.smartpbx.pbx.parsing")
    for _ in range(3):
        assert trunk_state("Teleporting-xyzzy") is TrunkState.UNKNOWN
    lines = [r for r in caplog.records if "Teleporting-xyzzy" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (1, True),
        (0.0, False),
        ("Yes", True),
        (" no ", False),
        ("perhaps", False),  # an unknown word is the field's default
        (None, False),
    ],
)
def test_conference_member_flags(value: object, expected: bool) -> None:
    (member,) = parse_conference_status(
        {"conf": "7001", "members": [{"channel": "PJSIP/8001-1", "muted": value}]}
    ).members
    assert member.muted is expected


def test_conference_member_with_a_flag_of_the_wrong_type_is_dropped() -> None:
    status = parse_conference_status(
        {
            "conf": "7001",
            "members": [
                {"channel": "PJSIP/8001-1", "muted": {"x": 1}},
                {"channel": "PJSIP/8002-1", "muted": "no"},
            ],
        }
    )
    assert [member.channel for member in status.members] == ["PJSIP/8002-1"]


def test_reply_message_that_cannot_be_json_is_kept_as_text() -> None:
    circular: dict[str, object] = {}
    circular["self"] = circular
    reply = parse_reply({"status": "Failed", "message": circular})
    assert reply.message.startswith("{'self'")


def test_replies_may_be_any_mapping() -> None:
    from types import MappingProxyType

    reply = parse_reply(MappingProxyType({"status": "Success"}))
    assert reply.success


@pytest.mark.parametrize("nest", ["callinfo", "extcallinfo", "data"])
def test_extcallinfo_reply_nested(nest: str) -> None:
    call = parse_extension_call(
        "8001", {"status": "Success", nest: {"callid": "1.2", "channelid": "PJSIP/8001-1"}}
    )
    assert call is not None
    assert (call.callid, call.channel) == ("1.2", "PJSIP/8001-1")

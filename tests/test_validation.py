"""Argument validation: each rule, accepted and refused."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.smartpbx.pbx.errors import PbxInvalidArgumentError
from custom_components.smartpbx.pbx.models import ListenMode, Permission, TransferOperation
from custom_components.smartpbx.pbx.validation import (
    MAX_CHANNEL_LENGTH,
    MAX_NUMBER_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TOKEN_LENGTH,
    token_of_publication,
    validate_alarm_start,
    validate_callid,
    validate_channel,
    validate_count,
    validate_file_name,
    validate_flag,
    validate_listen_mode,
    validate_number,
    validate_permission,
    validate_raw_command,
    validate_sub_topic,
    validate_text,
    validate_timeout,
    validate_token,
    validate_transfer_operation,
)


def refused(field: str) -> pytest.RaisesExc[PbxInvalidArgumentError]:
    return pytest.raises(PbxInvalidArgumentError, match=f"^{field}")


def test_invalid_argument_error_names_field_and_reason() -> None:
    with pytest.raises(PbxInvalidArgumentError) as info:
        validate_number("80a1", "caller")
    assert info.value.field == "caller"
    assert "digits" in info.value.reason
    assert isinstance(info.value, ValueError)


# --- token -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["a", "demo-token", "Ab3_x.y~z", "tökén", "$weird", "x" * MAX_TOKEN_LENGTH, "a:b@c"],
)
def test_token_accepted(token: str) -> None:
    assert validate_token(token) == token


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a+b",
        "a#b",
        "a/b",
        "a b",
        "a\tb",
        "a\nb",
        "a\x00b",
        "a\x7fb",
        "a\u00a0b",  # no-break space
        "a\u200bb",  # zero-width space (not printable)
        "x" * (MAX_TOKEN_LENGTH + 1),
        None,
        123,
        b"token",
    ],
)
def test_token_refused(token: object) -> None:
    with refused("token"):
        validate_token(token)


@pytest.mark.parametrize(
    ("topic", "token"),
    [
        ("device/tok/api/v1.0/event", "tok"),
        ("device/tok/api/v1.0/cdr", "tok"),
        ("device/tok/api/v1.0/response", None),
        ("device/tok/api/v2.0/event", None),
        ("device/tok/extra/api/v1.0/event", None),
        ("device//api/v1.0/event", None),
        ("device/bad token/api/v1.0/event", None),
        (f"device/{'x' * (MAX_TOKEN_LENGTH + 1)}/api/v1.0/cdr", None),
        ("homeassistant/status", None),
    ],
)
def test_token_of_publication(topic: str, token: str | None) -> None:
    assert token_of_publication(topic) == token


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["8001", "2005", "0", "*97", "#", "+861235432341231", "1" * MAX_NUMBER_LENGTH, "*9#"],
)
def test_number_accepted(number: str) -> None:
    assert validate_number(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "",
        " 8001",
        "8001 ",
        "80 01",
        "8+001",
        "++8001",
        "+",
        "abc",
        "8001a",
        "80-01",
        "8001\n",
        "\uff11\uff12\uff13",  # full-width digits
        "1" * (MAX_NUMBER_LENGTH + 1),
        8001,
        None,
    ],
)
def test_number_refused(number: object) -> None:
    with refused("callee"):
        validate_number(number, "callee")


# --- call ids and channels ---------------------------------------------------------------


@pytest.mark.parametrize(
    "callid", ["1673071399.25", "1672030725.7987", "0.0", "pbx-1-1673071399.25", "pbx_1-1.2"]
)
def test_callid_accepted(callid: str) -> None:
    assert validate_callid(callid) == callid


@pytest.mark.parametrize(
    "callid",
    [
        "",
        "1673071399",
        "1673071399.",
        ".25",
        "1673071399.25.1",
        "abc",
        "1.2 ",
        "1.2\n",
        "-1.2",
        1.5,
    ],
)
def test_callid_refused(callid: object) -> None:
    with refused("callid"):
        validate_callid(callid)


@pytest.mark.parametrize(
    "channel",
    [
        "PJSIP/8001-00000002",
        "FXS/5",
        "SIP/trunk-0000a1b2",
        "Local/8001@from-internal-00000001;1",
        "DAHDI/i1/0612345678-1",
        "P/" + "x" * (MAX_CHANNEL_LENGTH - 2),
    ],
)
def test_channel_accepted(channel: str) -> None:
    assert validate_channel(channel) == channel


@pytest.mark.parametrize(
    "channel",
    [
        "",
        "PJSIPV8001-00000002",  # the document's OCR slip: no technology separator
        "/8001",
        "PJSIP/",
        "PJSIP/8001 -1",
        "PJSIP/+8001",
        "PJSIP/80#01",
        "PJSIP/8001\x00",
        "1PJSIP/8001",
        "P/" + "x" * (MAX_CHANNEL_LENGTH - 1),
        None,
    ],
)
def test_channel_refused(channel: object) -> None:
    with refused("channel"):
        validate_channel(channel)


# --- enums and flags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (ListenMode.LISTEN, ListenMode.LISTEN),
        ("whisper", ListenMode.WHISPER),
        ("barge", ListenMode.BARGE),
    ],
)
def test_listen_mode_accepted(value: object, mode: ListenMode) -> None:
    assert validate_listen_mode(value) is mode


@pytest.mark.parametrize("value", ["Listen", "spy", "", None, 1])
def test_listen_mode_refused(value: object) -> None:
    with refused("mode"):
        validate_listen_mode(value)


@pytest.mark.parametrize(
    ("value", "permission"),
    [
        (Permission.INTERNAL, Permission.INTERNAL),
        (Permission.INTERNATIONAL, Permission.INTERNATIONAL),
        ("3", Permission.NATIONAL),
        (0, Permission.INTERNAL),
        (4, Permission.INTERNATIONAL),
    ],
)
def test_permission_accepted(value: object, permission: Permission) -> None:
    assert validate_permission(value) is permission


@pytest.mark.parametrize("value", [5, -1, "5", "", "national", None, True, 3.0])
def test_permission_refused(value: object) -> None:
    with refused("permission"):
        validate_permission(value)


def test_flags_must_be_real_booleans() -> None:
    assert validate_flag(True, "paused") is True
    assert validate_flag(False, "paused") is False
    for value in ("yes", 1, 0, None, "False"):
        with refused("paused"):
            validate_flag(value, "paused")


# --- alarm fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [("16:30", "16:30"), ("00:00", "00:00"), ("7:05", "07:05"), ("23:59", "23:59")],
)
def test_alarm_start_accepted(text: str, normalised: str) -> None:
    assert validate_alarm_start(text) == normalised


@pytest.mark.parametrize(
    "text", ["24:00", "12:60", "1630", "16:3", "16:30:00", "", " 16:30", "ab:cd", 1630]
)
def test_alarm_start_refused(text: object) -> None:
    with refused("start"):
        validate_alarm_start(text)


def test_counts() -> None:
    assert validate_count(0, "cycle") == 0
    assert validate_count(9999, "days") == 9999
    assert validate_count(1, "times", minimum=1) == 1
    for value in (-1, 10000, "10", 1.0, True, None):
        with refused("cycle"):
            validate_count(value, "cycle")
    with refused("times"):
        validate_count(0, "times", minimum=1)


@pytest.mark.parametrize("name", ["wakeup.wav", "xxxx.wav", "custom/../../etc/passwd", "a\\b"])
def test_file_names(name: str) -> None:
    if "/" in name or "\\" in name:
        with refused("clock_sound"):
            validate_file_name(name, "clock_sound")
    else:
        assert validate_file_name(name, "clock_sound") == name


def test_file_name_dots_and_empty_refused() -> None:
    for name in (".", "..", "", "x" * 200):
        with refused("clock_sound"):
            validate_file_name(name, "clock_sound")


# --- generic strings, timeouts, sub-topics -----------------------------------------------


def test_text_rules() -> None:
    assert validate_text("Tom Baker", "fullname") == "Tom Baker"
    assert validate_text("Sofía García", "fullname") == "Sofía García"
    assert validate_text("", "fullname", allow_empty=True) == ""
    assert validate_text("x" * MAX_TEXT_LENGTH, "note") == "x" * MAX_TEXT_LENGTH
    for bad in (
        "",
        "a\x00",
        "a\nb",
        "a\rb",
        "a\x1bb",
        "a\x85b",
        "a\u2028b",
        "x" * (MAX_TEXT_LENGTH + 1),
        5,
    ):
        with refused("note"):
            validate_text(bad, "note")
    with refused("fullname"):
        validate_text("x" * 65, "fullname", max_length=64)


@pytest.mark.parametrize("value", [0.2, 1, 10.0, 3600])
def test_timeout_accepted(value: float) -> None:
    assert validate_timeout(value) == float(value)


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "5", None, True])
def test_timeout_refused(value: object) -> None:
    with refused("timeout"):
        validate_timeout(value)


@pytest.mark.parametrize("sub", ["system", "cfg", "call", "queue", "conf", "voicemail", "x_2"])
def test_sub_topic_accepted(sub: str) -> None:
    assert validate_sub_topic(sub) == sub


@pytest.mark.parametrize(
    "sub", ["", "System", "call/extra", "+", "#", "call#", "a b", "2fa", "x" * 33, None]
)
def test_sub_topic_refused(sub: object) -> None:
    with refused("sub_topic"):
        validate_sub_topic(sub)


# --- raw commands ------------------------------------------------------------------------


def test_raw_command_accepted_and_request_id_replaced() -> None:
    payload = {
        "cmd": "queue_status",
        "queue": "6666",
        "request_id": "mine",
        "params": {"nested": [1, 2.5, True, None, "x"]},
    }
    assert validate_raw_command(payload) == {
        "cmd": "queue_status",
        "queue": "6666",
        "params": {"nested": [1, 2.5, True, None, "x"]},
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (["cmd"], "payload"),
        ({}, "cmd"),
        ({"cmd": ""}, "cmd"),
        ({"cmd": "dial now"}, "cmd"),
        ({"cmd": 5}, "cmd"),
        ({"cmd": "x", "v": float("nan")}, "payload.v"),
        ({"cmd": "x", "v": "a\x00"}, "payload.v"),
        ({"cmd": "x", 5: "int key"}, "payload"),
        ({"cmd": "x", "bad\nkey": 1}, r"payload\.<key>"),
        ({"cmd": "x", "v": {1, 2}}, "payload.v"),
        ({"cmd": "x", "v": b"bytes"}, "payload.v"),
        ({"cmd": "x", "v": [[[[[[[[[[1]]]]]]]]]]}, "payload.v"),
    ],
)
def test_raw_command_refused(payload: object, field: str) -> None:
    with refused(field):
        validate_raw_command(payload)


# --- arbitrary input ---------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=40) | st.text(alphabet="0123456789*#+./-PJSIFX ", max_size=20))
def test_validators_accept_only_what_their_rules_allow(text: str) -> None:
    for validator in (validate_token, validate_number, validate_callid, validate_channel):
        try:
            accepted = validator(text)
        except PbxInvalidArgumentError:
            continue
        assert accepted == text
        assert text
        assert not any(char in text for char in "\x00\n\r\t ")
        if validator is validate_token:
            assert not any(char in text for char in "+#/")
        if validator is validate_number:
            assert text.lstrip("+").replace("*", "").replace("#", "").isdigit() or set(
                text.lstrip("+")
            ) <= {"*", "#"}


@pytest.mark.parametrize(
    ("value", "operation"),
    [
        ("complete", TransferOperation.COMPLETE),
        (TransferOperation.CANCEL, TransferOperation.CANCEL),
        ("cancel", TransferOperation.CANCEL),
    ],
)
def test_transfer_operation_accepted(value: object, operation: TransferOperation) -> None:
    assert validate_transfer_operation(value) is operation


@pytest.mark.parametrize("value", ["Complete", "park", "", None, 1])
def test_transfer_operation_refused(value: object) -> None:
    with pytest.raises(PbxInvalidArgumentError, match="operation"):
        validate_transfer_operation(value)

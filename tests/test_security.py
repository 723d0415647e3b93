"""Security: hostile action input publishes nothing; secrets never leak.

Action input: MQTT wildcards, slashes, control characters, overlong strings and wrong
types in every field of every action are refused with a ServiceValidationError, and a
spy subscribed to every command topic on the broker sees none of it (only the one valid
call made at the end).

Secrets: with a distinctive token and broker password, over a whole life cycle (setup,
events, CDRs, calls, actions, a silent PBX, unload), neither appears in any entity state
or attribute, in any bus event, in diagnostics, or in any log record at INFO or above;
conference PINs appear in no state or attribute and are redacted in diagnostics and in
raw action responses.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME, MATCH_ALL
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest

from custom_components.smartpbx.const import DOMAIN
from custom_components.smartpbx.diagnostics import async_get_config_entry_diagnostics
from smartpbx_sim.runner import SimulatorRunner

from .broker import MosquittoBroker
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    add_entry,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
    unload_integration,
)
from .reliability_helpers import BrokerSpy, all_state_text, eventually

# --- hostile action input ----------------------------------------------------------------

VALID: dict[str, dict[str, Any]] = {
    "dial": {"caller": "8001", "callee": "8002", "dialpermission": "8001", "autoanswer": False},
    "hangup": {"callid": "1672401220.1"},
    "listen": {"monitor": "8002", "extension": "8001", "mode": "listen"},
    "queue_add": {"queue": "6666", "extension": "8001"},
    "queue_remove": {"queue": "6666", "extension": "8002"},
    "queue_pause": {"queue": "6666", "extension": "8002", "paused": True},
    "conference_invite": {"conference": "7001", "member": "8002", "dialpermission": "8001"},
    "conference_kick": {"conference": "7001", "channel": "PJSIP/8002-00000001"},
    "conference_mute": {"conference": "7001", "member": "8002"},
    "conference_unmute": {"conference": "7001", "channel": "PJSIP/8002-00000001"},
    "set_extension": {
        "extension": "8001",
        "logged_in": True,
        "permission": "local",
        "full_name": "Reception",
    },
    "set_wakeup_call": {
        "extension": "8001",
        "time": "06:30",
        "sound": "wakeup.wav",
        "cycle": 10,
        "times": 2,
        "days": 5,
    },
    "get_live_calls": {},
    "get_queue_status": {"queue": "6666"},
    "get_conference_status": {"conference": "7001"},
    "send_command": {"sub_topic": "system", "payload": {"cmd": "deviceInfo"}},
}
RESPONSE_ONLY = {"get_live_calls", "get_queue_status", "get_conference_status"}

WRONG_TYPES: list[Any] = [["8001"], {"n": "8001"}, None]
NUMBER_BAD: list[Any] = [
    # (A bare "#" or "*" is valid: keypad symbols, as in feature codes such as *97#. A
    # number only ever travels in a JSON payload; see test_keypad_symbols_stay_in_the_payload.)
    "+",
    "++8001",
    "8001+",
    "8001/#",
    "80/01",
    "device/+/api/v1.0/command/call",
    "80\x0001",
    "80\n01",
    "80\x1b[2J01",
    "80\u202801",
    "8" * 33,
    "8" * 100_000,
    "",
    "eight",
    *WRONG_TYPES,
]
CHANNEL_BAD: list[Any] = [
    "PJSIP/+",
    "PJSIP/#",
    "PJSIP/80 01",
    "PJSIP/8001\x00",
    "+/8001",
    "/8001",
    "P" * 200,
    "",
    *WRONG_TYPES,
]
CALLID_BAD: list[Any] = ["1672401220", "+", "#", "1672401220.1/#", "1.\n2", "9" * 100, *WRONG_TYPES]
NAME_BAD: list[Any] = ["a\x00b", "a\x1bb", "a\u2028b", "a\x7fb", "x" * 65, ["x"], {"x": 1}]
FILE_BAD: list[Any] = ["../etc/passwd", "a/b.wav", "a\\b.wav", "..", "a\x00.wav", "x" * 200, ""]
BOOL_BAD: list[Any] = ["maybe", "+", [True], {"a": 1}, None]
COUNT_BAD: list[Any] = ["many", -1, 10**9, "#", [1], None]
TIME_BAD: list[Any] = ["25:00", "12:60", "noon", "06:30/#", "06:30\x00", ["06:30"], None]
CHOICE_BAD: list[Any] = ["+", "#", "system/#", "../cfg", "system\x00", "x" * 200, ["system"], None]
PAYLOAD_BAD: list[Any] = [
    {"cmd": "deviceInfo/#"},
    {"cmd": "+"},
    {"cmd": "device info"},
    {"cmd": "x" * 100},
    {"cmd": "deviceInfo", "extension": "80\x0001"},
    {"cmd": "deviceInfo", "a\x00b": "1"},
    {"cmd": "deviceInfo", "deep": json.loads("[" * 20 + "]" * 20)},
    {"cmd": "deviceInfo", "big": "x" * 10_000},
    {"cmd": 5},
    {"nocmd": 1},
    "deviceInfo",
    ["deviceInfo"],
    None,
]
ENTRY_ID_BAD: list[Any] = ["+", "#", "a/b", "x" * 100, ["x"]]

FIELD_KINDS: dict[str, list[Any]] = {
    "caller": NUMBER_BAD,
    "callee": NUMBER_BAD,
    "dialpermission": NUMBER_BAD,
    "monitor": NUMBER_BAD,
    "extension": NUMBER_BAD,
    "queue": NUMBER_BAD,
    "conference": NUMBER_BAD,
    "member": NUMBER_BAD,
    "channel": CHANNEL_BAD,
    "callid": CALLID_BAD,
    "full_name": NAME_BAD,
    "sound": FILE_BAD,
    "autoanswer": BOOL_BAD,
    "paused": BOOL_BAD,
    "logged_in": BOOL_BAD,
    "cycle": COUNT_BAD,
    "times": COUNT_BAD,
    "days": COUNT_BAD,
    "time": TIME_BAD,
    "mode": CHOICE_BAD,
    "permission": CHOICE_BAD,
    "sub_topic": CHOICE_BAD,
    "payload": PAYLOAD_BAD,
}


MEMBER_LOOKUP = ("conference_mute", "member")
"""Covered by test_member_is_validated_before_any_lookup below."""


def _bad_calls() -> list[tuple[str, str, Any]]:
    calls = []
    for action, valid in VALID.items():
        for field in [*valid, "config_entry_id"]:
            if (action, field) == MEMBER_LOOKUP:
                continue
            values = ENTRY_ID_BAD if field == "config_entry_id" else FIELD_KINDS[field]
            calls.extend((action, field, value) for value in values)
    return calls


async def test_hostile_action_input_is_refused_and_nothing_is_published(
    hass: HomeAssistant, real_broker: MosquittoBroker, smartpbx: SmartPbxFactory
) -> None:
    await smartpbx()
    bad_calls = _bad_calls()
    let_through: list[tuple[str, str, Any, str]] = []
    async with BrokerSpy(real_broker) as spy:
        for action, field, value in bad_calls:
            data = {**VALID[action], field: value}
            try:
                await hass.services.async_call(
                    DOMAIN,
                    action,
                    data,
                    blocking=True,
                    return_response=action in RESPONSE_ONLY,
                )
            except ServiceValidationError:
                continue
            except Exception as err:  # reported below, precisely
                let_through.append((action, field, value, f"{type(err).__name__}: {err}"))
            else:
                let_through.append((action, field, value, "accepted"))

        # One valid call: the spy sees it, so it would have seen anything before it.
        await hass.services.async_call(
            DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
        )
        await eventually(lambda: len(spy.messages) >= 1)

    shown = "\n".join(f"{a} {f}={v!r:.40} -> {why:.90}" for a, f, v, why in let_through)
    assert not let_through, shown
    assert spy.commands() == ["queue_status"], spy.messages[:5]
    print(f"action input: {len(bad_calls)} hostile calls refused, none published")


@pytest.mark.parametrize("action", ["conference_kick", "conference_mute", "conference_unmute"])
async def test_member_is_validated_before_any_lookup(
    hass: HomeAssistant, real_broker: MosquittoBroker, smartpbx: SmartPbxFactory, action: str
) -> None:
    await smartpbx()
    async with BrokerSpy(real_broker) as spy:
        for member in ("8002/#", "80\x0001", "+"):
            with pytest.raises(ServiceValidationError):
                await hass.services.async_call(
                    DOMAIN,
                    action,
                    {"conference": "7001", "member": member},
                    blocking=True,
                )
        await hass.services.async_call(
            DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
        )
        await eventually(lambda: "queue_status" in spy.commands())
    assert spy.commands() == ["queue_status"]


async def test_keypad_symbols_stay_in_the_payload(
    hass: HomeAssistant, real_broker: MosquittoBroker, smartpbx: SmartPbxFactory
) -> None:
    """'#' and '*' are dialable; they reach the PBX inside the payload, never the topic."""
    await smartpbx()
    async with BrokerSpy(real_broker) as spy:
        for callee in ("#", "*97#", "+#1"):
            with pytest.raises(HomeAssistantError, match="callee is not existing"):
                await hass.services.async_call(
                    DOMAIN, "dial", {"caller": "8001", "callee": callee}, blocking=True
                )
        await eventually(lambda: len(spy.messages) == 3)
    assert {topic for topic, _ in spy.messages} == {
        f"device/{SMALL_PBX.token}/api/v1.0/command/call"
    }
    assert [json.loads(payload)["callee"] for _, payload in spy.messages] == ["#", "*97#", "+#1"]


# --- secrets --------------------------------------------------------------------------------

TOKEN = "tok-SECRET-7f3a9c21e5"
PASSWORD = "pw-SECRET-b84d02c6"
USERNAME = "ha-user"
PINS = ("73950284617", "62849173058", "51738462940", "40627351839")
SECRET_PBX = dataclasses.replace(SMALL_PBX, token=TOKEN, conferences=2, queues=1)


def _secrets_in(text: str, secrets: tuple[str, ...]) -> list[str]:
    return [secret for secret in secrets if secret in text]


async def test_secrets_never_leak(
    hass: HomeAssistant,
    socket_enabled: None,
    broker_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    broker: MosquittoBroker = broker_factory(users={USERNAME: PASSWORD, "pbx": "pbx-pass"})
    runner = SimulatorRunner(
        SECRET_PBX,
        host=broker.host,
        port=broker.port,
        username="pbx",
        password="pbx-pass",
        reconnect_interval=0.2,
    )
    await runner.start()
    for conference, (participant, moderator) in zip(
        runner.pbx.conferences.values(), (PINS[:2], PINS[2:]), strict=True
    ):
        conference.participantpassword = participant
        conference.moderatorpassword = moderator
    bus_events: list[str] = []

    @callback
    def record(event: Event) -> None:
        bus_events.append(f"{event.event_type} {json.dumps(dict(event.data), default=str)}")

    stop_recording = hass.bus.async_listen(MATCH_ALL, record)
    state_snapshots: list[str] = []
    entry = add_entry(
        hass,
        broker,
        SECRET_PBX,
        data={CONF_USERNAME: USERNAME, CONF_PASSWORD: PASSWORD},
        command_timeout=0.5,
    )
    try:
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        data = runtime(entry)
        state_snapshots.append(all_state_text(hass))

        # Traffic: status changes, a call, an IVR key, CDRs, actions that touch the PINs.
        runner.set_extension_status("8001", "Busy")
        callid = runner.place_call("8002", "8003")
        runner.ivr_keypress("9000", "8001", "5")
        runner.emit_cdr("8001", "8002", disposition="NO ANSWER")
        await eventually(lambda: hass.states.get("sensor.spx1004o4s_active_calls").state == "1")
        for conference in ("7001", "7002"):
            await hass.services.async_call(
                DOMAIN,
                "get_conference_status",
                {"conference": conference},
                blocking=True,
                return_response=True,
            )
        raw = await hass.services.async_call(
            DOMAIN,
            "send_command",
            {"sub_topic": "conf", "payload": {"cmd": "conf_list"}},
            blocking=True,
            return_response=True,
        )
        assert _secrets_in(json.dumps(raw), PINS) == []
        await hass.services.async_call(
            DOMAIN, "hangup", {"callid": callid}, blocking=True, return_response=False
        )
        for coordinator in data.coordinators:
            await coordinator.async_refresh()
        await hass.async_block_till_done()
        state_snapshots.append(all_state_text(hass))

        # The PBX falls silent (every entity unavailable), then answers again.
        runner.silent = True
        await data.system.async_refresh()
        state_snapshots.append(all_state_text(hass))
        runner.silent = False
        await data.system.async_refresh()
        await hass.async_block_till_done()
        state_snapshots.append(all_state_text(hass))

        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        diagnostics_text = json.dumps(diagnostics, default=str)
    finally:
        await unload_integration(hass, entry, runner)
        stop_recording()
    state_snapshots.append(all_state_text(hass))

    credentials = (TOKEN, PASSWORD)
    for snapshot in state_snapshots:
        assert _secrets_in(snapshot, (*credentials, *PINS)) == []
    assert _secrets_in("\n".join(bus_events), (*credentials, *PINS)) == []
    assert _secrets_in(diagnostics_text, (*credentials, *PINS)) == []
    assert diagnostics["entry"]["data"]["token"] == "**REDACTED**"
    assert diagnostics["entry"]["data"][CONF_PASSWORD] == "**REDACTED**"
    conf_lists = [r for r in diagnostics["recent_replies"] if r["command"] == "conf_list"]
    assert conf_lists  # the redaction was really exercised
    formatter = logging.Formatter("%(name)s %(message)s")
    leaks = [
        formatter.format(record)
        for record in caplog.records
        if record.levelno >= logging.INFO
        and _secrets_in(formatter.format(record), (*credentials, *PINS))
    ]
    assert leaks == []
    debug_mentions = sum(1 for record in caplog.records if TOKEN in formatter.format(record))
    print(
        f"secrets: {len(caplog.records)} log records, {len(bus_events)} bus events, "
        f"{len(state_snapshots)} state snapshots clean; token at DEBUG only "
        f"({debug_mentions} records: paho's packet log names topics)"
    )

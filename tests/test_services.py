"""The integration's actions, against the simulator on a real broker.

Every command an action publishes is seen by a spy subscribed to the command topics, so
the tests prove what went over the wire, and that a rejected call sent nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import dataclasses
import json
from typing import Any

from homeassistant.components.diagnostics import REDACTED
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smartpbx import services
from custom_components.smartpbx.const import DOMAIN
from custom_components.smartpbx.pbx.models import Permission
from smartpbx_sim.runner import SimulatorRunner

from .actions_helpers import (
    INTEGRATION_DIR,
    CommandSpy,
    assert_translated_error,
    command_spy,
    load_json,
)
from .broker import MosquittoBroker
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    setup_integration,
    smartpbx_fixture,
    unload_integration,
    wait_for,
)

SERIAL = SMALL_PBX.serial
OTHER_PBX = dataclasses.replace(
    SMALL_PBX, token="branch-token", serial="XR99999999999999", devicename="Branch PBX"
)

type Pbx = tuple[MockConfigEntry, SimulatorRunner]

# One valid call of every action, for the checks every action must pass.
VALID_CALLS: dict[str, dict[str, Any]] = {
    "dial": {"caller": "8001", "callee": "8002"},
    "hangup": {"callid": "1672401220.1"},
    "listen": {"monitor": "8002", "extension": "8001"},
    "queue_add": {"queue": "6666", "extension": "8001"},
    "queue_remove": {"queue": "6666", "extension": "8002"},
    "queue_pause": {"queue": "6666", "extension": "8002", "paused": True},
    "conference_invite": {"conference": "7001", "member": "8002", "dialpermission": "8001"},
    "conference_kick": {"conference": "7001", "channel": "PJSIP/8002-00000001"},
    "conference_mute": {"conference": "7001", "channel": "PJSIP/8002-00000001"},
    "conference_unmute": {"conference": "7001", "channel": "PJSIP/8002-00000001"},
    "set_extension": {"extension": "8001", "logged_in": True, "permission": "local"},
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
    "get_extension_call": {"extension": "8001"},
    "transfer": {"channel": "PJSIP/8001-00000001", "target": "8003"},
    "transfer_complete": {"channel": "PJSIP/8001-00000001"},
    "transfer_cancel": {"channel": "PJSIP/8001-00000001"},
}
# The command each valid call publishes first.
FIRST_COMMAND = {
    "dial": "dial",
    "hangup": "hangup",
    "listen": "listen",
    "queue_add": "queue_add",
    "queue_remove": "queue_remove",
    "queue_pause": "queue_paused",
    "conference_invite": "conf_invite",
    "conference_kick": "conf_kick",
    "conference_mute": "conf_mute",
    "conference_unmute": "conf_unmute",
    "set_extension": "extension_set",
    "set_wakeup_call": "alarm_set",
    "get_live_calls": "livecall",
    "get_queue_status": "queue_status",
    "get_conference_status": "conf_status",
    "send_command": "deviceInfo",
    "get_extension_call": "extcallinfo",
    "transfer": "atxfer",
    "transfer_complete": "atxferoperate",
    "transfer_cancel": "atxferoperate",
}
RESPONSE_ONLY = {
    "get_live_calls",
    "get_queue_status",
    "get_conference_status",
    "get_extension_call",
}
OPTIONAL_RESPONSE = {"dial", "listen", "send_command", "transfer"}
# Actions answered by Home Assistant alone (the phonebook): no command to the PBX.
LOCAL_CALLS: dict[str, dict[str, Any]] = {"lookup_number": {"number": "+39 06 1234 5678"}}


@pytest.fixture(name="spy")
async def spy_fixture(real_broker: MosquittoBroker) -> AsyncIterator[CommandSpy]:
    """What the integration publishes to the PBX (test_field_glue.py uses it too)."""
    async with command_spy(real_broker) as running:
        yield running


@pytest.fixture(name="pbx")
async def pbx_fixture(smartpbx: SmartPbxFactory, spy: CommandSpy) -> Pbx:
    """The small simulated PBX, set up; the spy has seen (and forgotten) the first polls."""
    entry, runner = await smartpbx()
    await spy.wait_cmd("livecall")
    spy.clear()
    return entry, runner


async def call(
    hass: HomeAssistant, service: str, data: dict[str, Any], *, response: bool | None = None
) -> ServiceResponse:
    """Call an action, asking for its response when it has one (unless told otherwise)."""
    if response is None:
        response = service in RESPONSE_ONLY | OPTIONAL_RESPONSE | set(LOCAL_CALLS)
    return await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=response
    )


BACKGROUND_POLL = "livecall"
"""The one poll that runs on its own during these tests (polling is off): the live-call
refresh every call event schedules, a moment later (LIVE_CALL_REFRESH_COOLDOWN)."""


async def published_before_marker(hass: HomeAssistant, spy: CommandSpy) -> list[str]:
    """What actions published since the spy was cleared, proven by a marker command.

    A status event from the PBX schedules a live-call poll that can land in any window;
    it is not the action's doing and not counted (no action checked here sends it).
    """

    async def publish_marker(marker: str) -> None:
        payload = {"cmd": "deviceInfo", "marker": marker}
        await call(hass, "send_command", {"sub_topic": "system", "payload": payload})

    published = await spy.commands_before_marker(publish_marker)
    return [cmd for cmd in published if cmd != BACKGROUND_POLL]


async def assert_rejected(
    hass: HomeAssistant,
    spy: CommandSpy,
    service: str,
    data: dict[str, Any],
    key: str,
    **placeholders: str,
) -> dict[str, str]:
    """The action fails with our translated validation error, and published nothing."""
    spy.clear()
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, service, data)
    given = assert_translated_error(caught.value, key, **placeholders)
    assert await published_before_marker(hass, spy) == []
    return given


# --- registration, descriptions and translations --------------------------------------


async def test_actions_registered_once_with_their_response_support(
    hass: HomeAssistant,
) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    registered = hass.services.async_services_for_domain(DOMAIN)
    assert set(registered) == set(VALID_CALLS) | set(LOCAL_CALLS) == set(services.ACTIONS)
    for service in [*VALID_CALLS, *LOCAL_CALLS]:
        expected = (
            SupportsResponse.ONLY
            if service in RESPONSE_ONLY | set(LOCAL_CALLS)
            else SupportsResponse.OPTIONAL
            if service in OPTIONAL_RESPONSE
            else SupportsResponse.NONE
        )
        assert hass.services.supports_response(DOMAIN, service) is expected, service


async def test_services_yaml_translations_and_icons_cover_every_field(
    hass: HomeAssistant,
) -> None:
    """Each action and field has a name and description; selectors and icons exist."""
    assert await async_setup_component(hass, DOMAIN, {})
    described = (await async_get_all_descriptions(hass))[DOMAIN]
    yaml_services = load_yaml_dict(str(INTEGRATION_DIR / "services.yaml"))
    translations = load_json("translations/en.json")
    icons = load_json("icons.json")["services"]
    assert set(described) == set(yaml_services) == set(VALID_CALLS) | set(LOCAL_CALLS)
    for service, spec in yaml_services.items():
        text = translations["services"][service]
        assert text["name"], service
        assert text["description"], service
        assert set(described[service]["fields"]) == set(spec["fields"]), service
        schema_fields = {str(key) for key in services.ACTIONS[service].schema.schema}
        assert set(spec["fields"]) == schema_fields == set(text["fields"]), service
        for field, field_spec in spec["fields"].items():
            assert text["fields"][field]["name"], (service, field)
            assert text["fields"][field]["description"], (service, field)
            selector = field_spec["selector"]
            if "select" in selector and (key := selector["select"].get("translation_key")):
                options = translations["selector"][key]["options"]
                assert set(options) == set(selector["select"]["options"]), key
        assert icons[service]["service"].startswith("mdi:"), service


# --- dial ----------------------------------------------------------------------------


async def test_dial_returns_the_call_id_and_refreshes_live_calls(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    entry, runner = pbx
    response = await call(hass, "dial", {"caller": "8001", "callee": "8002"})
    assert response is not None
    callid = response["callid"]
    assert callid in runner.pbx.calls
    sent = await spy.wait_cmd("dial")
    assert sent.token == SMALL_PBX.token
    assert sent.sub_topic == "call"
    assert {k: v for k, v in sent.payload.items() if k != "request_id"} == {
        "cmd": "dial",
        "caller": "8001",
        "callee": "8002",
    }
    # The live-call entities learn about the call without waiting for a poll.
    live_calls = runtime(entry).live_calls
    await wait_for(lambda: any(c.callid == callid for c in live_calls.data))


async def test_dial_without_response_and_with_every_option(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    _, runner = pbx
    result = await call(
        hass,
        "dial",
        {"caller": "9000", "callee": "8002", "dialpermission": "8001", "autoanswer": True},
        response=False,
    )
    assert result is None
    sent = (await spy.wait_cmd("dial")).payload
    assert sent["caller"] == "9000"
    assert sent["dialpermission"] == "8001"
    assert sent["autoanswer"] == "yes"
    assert [c.called for c in runner.pbx.calls.values()] == ["8002"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"callee": "8002"}, "caller"),
        ({"caller": "8001"}, "callee"),
        ({"caller": "8001", "callee": "8002", "bogus": 1}, "bogus"),
        ({"caller": "8" * 65, "callee": "8002"}, "caller"),
        ({"caller": "8001", "callee": "8002", "autoanswer": "maybe"}, "autoanswer"),
        ({"caller": ["8001"], "callee": "8002"}, "caller"),
        # Rejected by the library's validation, before anything is published.
        ({"caller": "80a1", "callee": "8002"}, "caller"),
        ({"caller": "8001", "callee": "80 02"}, "callee"),
        ({"caller": "8001", "callee": "8002", "dialpermission": "x"}, "dialpermission"),
    ],
)
async def test_dial_rejects_bad_arguments_without_publishing(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, data: dict[str, Any], field: str
) -> None:
    given = await assert_rejected(hass, spy, "dial", data, "invalid_argument", field=field)
    assert given["reason"]


async def test_dial_refused_by_the_pbx_carries_its_message(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "dial", {"caller": "8001", "callee": "5555"})
    assert not isinstance(caught.value, ServiceValidationError)
    assert_translated_error(
        caught.value, "command_failed", command="dial", message="callee is not existing"
    )


# --- every action: timeout, unloaded entry, extra keys, lost connection ---------------------


async def test_every_action_times_out_clearly(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, spy: CommandSpy
) -> None:
    """A PBX that stops answering: every action fails with a clear timeout, not a hang.

    All actions run at once against one silent PBX, so the test waits one timeout only.
    """
    _, runner = await smartpbx(command_timeout=1.0)
    runner.silent = True
    services_ = sorted(VALID_CALLS)
    results = await asyncio.gather(
        *(call(hass, service, VALID_CALLS[service]) for service in services_),
        return_exceptions=True,
    )
    for service, result in zip(services_, results, strict=True):
        assert isinstance(result, HomeAssistantError), (service, result)
        assert not isinstance(result, ServiceValidationError), service
        assert_translated_error(
            result, "command_timeout", command=FIRST_COMMAND[service], timeout="1"
        )
        assert await spy.wait_cmd(FIRST_COMMAND[service])


@pytest.mark.parametrize("service", sorted(VALID_CALLS | LOCAL_CALLS))
async def test_every_action_rejects_unknown_fields(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, service: str
) -> None:
    data = {**(VALID_CALLS | LOCAL_CALLS)[service], "extra_field": "1"}
    await assert_rejected(hass, spy, service, data, "invalid_argument", field="extra_field")


@pytest.mark.parametrize("service", sorted(VALID_CALLS | LOCAL_CALLS))
async def test_every_action_needs_a_loaded_pbx(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, service: str
) -> None:
    entry, _ = pbx
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    spy.clear()
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, service, (VALID_CALLS | LOCAL_CALLS)[service])
    assert_core_error(caught.value, "service_config_entry_not_loaded", entry_title=entry.title)
    # Nothing can be in flight: the entry's client is gone. Give a stray message time anyway.
    await asyncio.sleep(0.1)
    assert spy.commands == []


async def test_every_action_fails_fast_while_the_broker_is_down(
    hass: HomeAssistant, socket_enabled: None, private_broker: MosquittoBroker
) -> None:
    entry, runner = await setup_integration(hass, private_broker)
    try:
        client = runtime(entry).client
        private_broker.stop()
        await wait_for(lambda: not client.connected)
        for service, data in VALID_CALLS.items():
            with pytest.raises(HomeAssistantError) as caught:
                await call(hass, service, data)
            assert_translated_error(caught.value, "pbx_not_connected")
    finally:
        await unload_integration(hass, entry, runner)


async def test_response_only_actions_demand_a_response_request(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    for service in RESPONSE_ONLY:
        with pytest.raises(ServiceValidationError):
            await call(hass, service, VALID_CALLS[service], response=False)


# --- choosing the PBX ---------------------------------------------------------------------


def assert_core_error(err: HomeAssistantError, key: str, **placeholders: str) -> None:
    """``err`` is Home Assistant's own translated error ``key`` (service helper), for us."""
    assert err.translation_domain == "homeassistant", err
    assert err.translation_key == key, (err.translation_key, err)
    given = dict(err.translation_placeholders or {})
    assert given.get("domain", DOMAIN) == DOMAIN
    for name, value in placeholders.items():
        assert given.get(name) == value, (name, given)


async def test_no_pbx_configured(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "get_live_calls", {})
    assert_core_error(caught.value, "service_found_no_config_entry_for_domain")


async def test_several_pbxs_need_config_entry_id(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, spy: CommandSpy
) -> None:
    main, _ = await smartpbx()
    branch, branch_runner = await smartpbx(sim_config=OTHER_PBX)
    await spy.wait_for(lambda: spy.cmds().count("livecall") >= 2)
    spy.clear()

    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "dial", {"caller": "8001", "callee": "8002"})
    assert_core_error(caught.value, "service_found_multiple_config_entry_for_domain")

    response = await call(
        hass, "dial", {"config_entry_id": branch.entry_id, "caller": "8001", "callee": "8002"}
    )
    assert response is not None
    assert response["callid"] in branch_runner.pbx.calls
    assert [command.token for command in spy.of("dial")] == [OTHER_PBX.token]

    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "get_live_calls", {"config_entry_id": "no-such-entry"})
    assert_core_error(caught.value, "service_config_entry_not_found", entry_id="no-such-entry")

    other_domain = MockConfigEntry(domain="other")
    other_domain.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "get_live_calls", {"config_entry_id": other_domain.entry_id})
    assert_core_error(caught.value, "service_config_entry_wrong_domain")

    assert await hass.config_entries.async_unload(main.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "get_live_calls", {"config_entry_id": main.entry_id})
    assert_core_error(caught.value, "service_config_entry_not_loaded", entry_title=main.title)
    # Still two configured: naming the PBX stays required.
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "get_live_calls", {})
    assert_core_error(caught.value, "service_found_multiple_config_entry_for_domain")
    assert main.state is ConfigEntryState.NOT_LOADED


async def test_one_pbx_needs_no_config_entry_id_but_accepts_it(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    entry, _ = pbx
    assert await call(hass, "get_live_calls", {"config_entry_id": entry.entry_id}) == {"calls": []}
    assert await call(hass, "get_live_calls", {}) == {"calls": []}


# --- hangup and listen -----------------------------------------------------------------------


async def test_hangup_by_call_id_and_by_channel(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    entry, runner = pbx
    first = runner.place_call("8001", "8002")
    await call(hass, "hangup", {"callid": first})
    assert first not in runner.pbx.calls
    assert (await spy.wait_cmd("hangup")).payload["callid"] == first

    second = runner.place_call("8003", "2001")
    channel = runner.pbx.calls[second].source
    await call(hass, "hangup", {"channel": channel})
    assert second not in runner.pbx.calls
    assert (await spy.wait_cmd("hangup", 2)).payload["channelid"] == channel
    live_calls = runtime(entry).live_calls
    await wait_for(lambda: live_calls.data == ())


@pytest.mark.parametrize(
    ("data", "key", "placeholders"),
    [
        ({}, "exactly_one_of", {"first": "callid", "second": "channel"}),
        (
            {"callid": "1672401220.1", "channel": "FXS/1"},
            "exactly_one_of",
            {"first": "callid", "second": "channel"},
        ),
        ({"callid": "not-a-call-id"}, "invalid_argument", {"field": "callid"}),
        ({"channel": "no slash"}, "invalid_argument", {"field": "channel"}),
    ],
)
async def test_hangup_rejects_bad_targets(
    hass: HomeAssistant,
    pbx: Pbx,
    spy: CommandSpy,
    data: dict[str, Any],
    key: str,
    placeholders: dict[str, str],
) -> None:
    await assert_rejected(hass, spy, "hangup", data, key, **placeholders)


async def test_hangup_of_an_unknown_call_is_refused_by_the_pbx(
    hass: HomeAssistant, pbx: Pbx
) -> None:
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "hangup", {"callid": "1672401220.99"})
    assert_translated_error(
        caught.value, "command_failed", command="hangup", message="Channel not found"
    )


async def test_listen_in_each_mode(hass: HomeAssistant, pbx: Pbx, spy: CommandSpy) -> None:
    _, runner = pbx
    target = runner.place_call("8001", "8002")
    response = await call(
        hass, "listen", {"monitor": "8003", "extension": "8001", "mode": "whisper"}
    )
    assert response is not None
    listen_callid = str(response["callid"])
    spy_call = runner.pbx.calls[listen_callid]
    assert spy_call.spied_call == target
    sent = (await spy.wait_cmd("listen")).payload
    assert (sent["monitor"], sent["extension"], sent["type"]) == ("8003", "8001", "whisper")

    runner.hangup_call(listen_callid)
    await call(hass, "listen", {"monitor": "8003", "extension": "8001"}, response=False)
    assert (await spy.wait_cmd("listen", 2)).payload["type"] == "listen"


async def test_listen_rejections(hass: HomeAssistant, pbx: Pbx, spy: CommandSpy) -> None:
    await assert_rejected(
        hass,
        spy,
        "listen",
        {"monitor": "8003", "extension": "8001", "mode": "eavesdrop"},
        "invalid_argument",
        field="mode",
    )
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "listen", {"monitor": "8003", "extension": "8001", "mode": "barge"})
    assert_translated_error(
        caught.value, "command_failed", command="listen", message="extension is not in a call"
    )


# --- queues --------------------------------------------------------------------------------


async def test_queue_add_pause_and_remove_update_the_queue_entities(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    entry, runner = pbx
    queues = runtime(entry).queues

    def member(agent: str) -> Any:
        status = queues.data["6666"].status
        assert status is not None
        return next((m for m in status.members if m.agent == agent), None)

    await call(hass, "queue_add", {"queue": "6666", "extension": "8001"})
    assert runner.pbx.queues["6666"].member("8001") is not None
    assert (await spy.wait_cmd("queue_add")).payload["extension"] == "8001"
    await wait_for(lambda: member("8001") is not None)

    await call(hass, "queue_pause", {"queue": "6666", "extension": "8001", "paused": True})
    assert (await spy.wait_cmd("queue_paused")).payload["paused"] == "yes"
    await wait_for(lambda: member("8001").paused)
    await call(hass, "queue_pause", {"queue": "6666", "extension": "8001", "paused": "off"})
    assert (await spy.wait_cmd("queue_paused", 2)).payload["paused"] == "no"
    await wait_for(lambda: not member("8001").paused)

    await call(hass, "queue_remove", {"queue": "6666", "extension": "8001"})
    assert runner.pbx.queues["6666"].member("8001") is None
    await wait_for(lambda: member("8001") is None)


async def test_rejections_are_told_apart_from_background_polls(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    """A live-call poll on its way to the spy while an action is rejected is not the
    action's doing (test_queue_action_failures failed once on such a poll)."""
    entry, _ = pbx
    data = runtime(entry)
    for _ in range(3):
        poll = asyncio.create_task(data.live_calls.async_refresh())
        for _ in range(100):
            if data.client.pending_count:
                break
            await asyncio.sleep(0)
        # The poll is on its way, ahead of the marker; the spy is cleared before it lands.
        await assert_rejected(
            hass,
            spy,
            "queue_remove",
            {"queue": "66#6x", "extension": "8002"},
            "invalid_argument",
            field="queue",
        )
        await poll


async def test_queue_action_failures(hass: HomeAssistant, pbx: Pbx, spy: CommandSpy) -> None:
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "queue_add", {"queue": "6666", "extension": "8002"})
    assert_translated_error(
        caught.value,
        "command_failed",
        command="queue_add",
        message="Unable to add interface: Already there",
    )
    await assert_rejected(
        hass,
        spy,
        "queue_pause",
        {"queue": "6666", "extension": "8002"},
        "invalid_argument",
        field="paused",
    )
    await assert_rejected(
        hass,
        spy,
        "queue_remove",
        {"queue": "66#6x", "extension": "8002"},
        "invalid_argument",
        field="queue",
    )


# --- conferences ------------------------------------------------------------------------


async def join_conference(runner: SimulatorRunner, member: str) -> str:
    """Invite ``member`` into room 7001 and answer; returns the member's channel."""
    runner.pbx.conference_invite("7001", member, "8001")
    leg = next(c for c in runner.pbx.calls.values() if c.called == member)
    runner.pbx.answer_call(leg.callid)
    room = runner.pbx.conferences["7001"]
    return next(m.channel for m in room.members if m.callerid == member)


async def test_conference_invite(hass: HomeAssistant, pbx: Pbx, spy: CommandSpy) -> None:
    _, runner = pbx
    await call(
        hass,
        "conference_invite",
        {"conference": "7001", "member": "8002", "dialpermission": "8001"},
    )
    sent = await spy.wait_cmd("conf_invite")
    assert sent.sub_topic == "conf"
    assert {k: sent.payload[k] for k in ("conf", "member", "dialpermission")} == {
        "conf": "7001",
        "member": "8002",
        "dialpermission": "8001",
    }
    assert any(c.called == "8002" for c in runner.pbx.calls.values())

    with pytest.raises(HomeAssistantError) as caught:
        await call(
            hass,
            "conference_invite",
            {"conference": "7001", "member": "8002", "dialpermission": "8001"},
        )
    assert_translated_error(caught.value, "command_failed", command="conf_invite")
    await assert_rejected(
        hass,
        spy,
        "conference_invite",
        {"conference": "7001", "member": "8002"},
        "invalid_argument",
        field="dialpermission",
    )


async def test_conference_member_actions_by_member_number(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    entry, runner = pbx
    channel = await join_conference(runner, "8002")
    room = runner.pbx.conferences["7001"]

    spy.clear()
    await call(hass, "conference_mute", {"conference": "7001", "member": "8002"})
    await spy.wait_for(lambda: len(spy.commands) >= 3)
    # The number is looked up first; afterwards the room is refreshed for its entities.
    assert spy.cmds()[:3] == ["conf_status", "conf_mute", "conf_status"]
    assert (await spy.wait_cmd("conf_mute")).payload["channel"] == channel
    assert room.member_by_channel(channel).muted  # type: ignore[union-attr]

    await call(hass, "conference_unmute", {"conference": "7001", "member": "8002"})
    assert not room.member_by_channel(channel).muted  # type: ignore[union-attr]

    await call(hass, "conference_kick", {"conference": "7001", "member": "8002"})
    assert (await spy.wait_cmd("conf_kick")).payload["channel"] == channel
    assert room.members == []
    conferences = runtime(entry).conferences

    def participants() -> int:
        status = conferences.data["7001"].status
        return -1 if status is None else len(status.members)

    await wait_for(lambda: participants() == 0)


async def test_conference_member_actions_by_channel(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    _, runner = pbx
    channel = await join_conference(runner, "8003")
    room = runner.pbx.conferences["7001"]
    spy.clear()
    await call(hass, "conference_mute", {"conference": "7001", "channel": channel})
    await spy.wait_cmd("conf_mute")
    # Straight to the channel: no conf_status lookup first.
    assert spy.cmds()[0] == "conf_mute"
    assert room.member_by_channel(channel).muted  # type: ignore[union-attr]
    await call(hass, "conference_kick", {"conference": "7001", "channel": channel})
    assert room.members == []


@pytest.mark.parametrize("service", ["conference_kick", "conference_mute", "conference_unmute"])
async def test_conference_member_action_rejections(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, service: str
) -> None:
    await assert_rejected(
        hass,
        spy,
        service,
        {"conference": "7001"},
        "exactly_one_of",
        first="channel",
        second="member",
    )
    await assert_rejected(
        hass,
        spy,
        service,
        {"conference": "7001", "member": "8002", "channel": "PJSIP/8002-00000001"},
        "exactly_one_of",
    )
    await assert_rejected(
        hass,
        spy,
        service,
        {"conference": "70x1", "member": "8002"},
        "invalid_argument",
        field="conference",
    )
    # A number that is not in the room: looked up, then nothing is done to anybody.
    spy.clear()
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, service, {"conference": "7001", "member": "8002"})
    assert_translated_error(
        caught.value, "member_not_in_conference", member="8002", conference="7001"
    )
    assert await published_before_marker(hass, spy) == ["conf_status"]


# --- extensions and wake-up calls -----------------------------------------------------------


async def test_set_extension_maps_permission_names_and_refreshes(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    entry, runner = pbx
    await call(
        hass,
        "set_extension",
        {"extension": "8002", "logged_in": False, "permission": "national", "full_name": "Tom"},
    )
    sent = await spy.wait_cmd("extension_set")
    assert sent.sub_topic == "cfg"
    assert sent.payload["params"] == {"logout_status": "1", "fullname": "Tom", "permission": "3"}
    extension = runner.pbx.extensions["8002"]
    assert (extension.username, extension.permission, extension.logged_out) == ("Tom", 3, True)
    system = runtime(entry).system
    await wait_for(lambda: system.data.extensions["8002"].name == "Tom")

    await call(
        hass, "set_extension", {"extension": "8002", "logged_in": True, "permission": "internal"}
    )
    assert (await spy.wait_cmd("extension_set", 2)).payload["params"] == {
        "logout_status": "0",
        "permission": "0",
    }


@pytest.mark.parametrize(("name", "permission"), sorted(services.PERMISSIONS.items()))
async def test_every_permission_name(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, name: str, permission: Permission
) -> None:
    await call(hass, "set_extension", {"extension": "8001", "logged_in": True, "permission": name})
    assert (await spy.wait_cmd("extension_set")).payload["params"]["permission"] == permission.value


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"extension": "8001", "logged_in": True, "permission": "galactic"}, "permission"),
        ({"extension": "8001", "permission": "local"}, "logged_in"),
        (
            {"extension": "8001", "logged_in": True, "permission": "local", "full_name": "x" * 100},
            "full_name",
        ),
        (
            {"extension": "8001", "logged_in": True, "permission": "local", "full_name": "a\nb"},
            "full_name",
        ),
    ],
)
async def test_set_extension_rejections(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, data: dict[str, Any], field: str
) -> None:
    await assert_rejected(hass, spy, "set_extension", data, "invalid_argument", field=field)


async def test_set_wakeup_call(hass: HomeAssistant, pbx: Pbx, spy: CommandSpy) -> None:
    _, runner = pbx
    await call(hass, "set_wakeup_call", {**VALID_CALLS["set_wakeup_call"], "time": "6:05"})
    sent = (await spy.wait_cmd("alarm_set")).payload
    assert sent["extension"] == "8001"
    assert sent["params"] == {
        "start": "06:05",
        "clock_sound": "wakeup.wav",
        "cycle": "10",
        "times": "2",
        "days": "5",
    }
    alarm = runner.pbx.extensions["8001"].alarm
    assert alarm is not None
    assert alarm.start == "06:05"

    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "set_wakeup_call", {**VALID_CALLS["set_wakeup_call"], "sound": "x.wav"})
    assert_translated_error(
        caught.value,
        "command_failed",
        command="alarm_set",
        message="clock sound is not existing",
    )


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"time": "25:00"}, "time"),
        ({"sound": "../etc/passwd"}, "sound"),
        ({"times": 0}, "times"),
        ({"cycle": -1}, "cycle"),
        ({"days": "often"}, "days"),
    ],
)
async def test_set_wakeup_call_rejections(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, override: dict[str, Any], field: str
) -> None:
    data = {**VALID_CALLS["set_wakeup_call"], **override}
    await assert_rejected(hass, spy, "set_wakeup_call", data, "invalid_argument", field=field)


# --- responses ---------------------------------------------------------------------------


def assert_json(response: ServiceResponse) -> dict[str, Any]:
    """The response survives a JSON round trip unchanged (what automations and the API see)."""
    assert response is not None
    assert json.loads(json.dumps(response)) == response
    return dict(response)


async def test_get_live_calls(hass: HomeAssistant, pbx: Pbx) -> None:
    _, runner = pbx
    callid = runner.place_call("8001", "8002")
    runner.pbx.advance(65)
    response = assert_json(await call(hass, "get_live_calls", {}))
    (live,) = response["calls"]
    assert live["callid"] == callid
    assert (live["caller"], live["called"]) == ("8001", "8002")
    assert isinstance(live["duration"], int)
    assert live["duration"] >= 65
    assert set(live) == {
        "callid",
        "caller",
        "source",
        "called",
        "destination",
        "duration",
        "state",
        "direction",
        "direction_kind",
        "recording",
    }


async def test_get_queue_status(hass: HomeAssistant, pbx: Pbx) -> None:
    response = assert_json(await call(hass, "get_queue_status", {"queue": "6666"}))
    assert response["queue"] == "6666"
    assert [member["agent"] for member in response["members"]] == ["8002", "2001"]
    assert {"state", "state_code", "paused"} <= set(response["members"][0])
    assert isinstance(response["completed"], int)
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "get_queue_status", {"queue": "6000"})
    assert_translated_error(caught.value, "command_failed", command="queue_status")


async def test_get_conference_status_never_shows_pins(hass: HomeAssistant, pbx: Pbx) -> None:
    _, runner = pbx
    channel = await join_conference(runner, "8002")
    runner.pbx.advance(30)
    response = assert_json(await call(hass, "get_conference_status", {"conference": "7001"}))
    (member,) = response["members"]
    assert member["callerid"] == "8002"
    assert member["channel"] == channel
    assert member["answered_time"] >= 30
    room = runner.pbx.conferences["7001"]
    text = json.dumps(response)
    for pin in (room.participantpassword, room.moderatorpassword):
        assert f'"{pin}"' not in text
    assert "password" not in text
    assert "pin" not in json.dumps(list(response))


async def test_send_command_returns_the_raw_reply_without_pins(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy
) -> None:
    _, runner = pbx
    reply = assert_json(await call(hass, "send_command", VALID_CALLS["send_command"]))
    assert reply["deviceinfo"]["sn"] == SERIAL
    assert reply["status"] == "Success"
    assert (await spy.wait_cmd("deviceInfo")).sub_topic == "system"

    reply = assert_json(
        await call(hass, "send_command", {"sub_topic": "conf", "payload": {"cmd": "conf_list"}})
    )
    (room,) = reply["conflist"]
    assert room["participantpassword"] == REDACTED
    assert room["moderatorpassword"] == REDACTED
    # As a JSON string: a short PIN may well occur inside the reply's random request id.
    assert f'"{runner.pbx.conferences["7001"].participantpassword}"' not in json.dumps(reply)

    assert (
        await call(
            hass,
            "send_command",
            {"sub_topic": "queue", "payload": {"cmd": "queue_list"}},
            response=False,
        )
        is None
    )

    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "send_command", {"sub_topic": "call", "payload": {"cmd": "deviceInfo"}})
    assert_translated_error(
        caught.value,
        "command_failed",
        command="deviceInfo",
        message="cmd deviceInfo is not supported on command/call",
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"sub_topic": "bogus", "payload": {"cmd": "deviceInfo"}}, "sub_topic"),
        ({"sub_topic": "system", "payload": {}}, "payload"),
        ({"sub_topic": "system", "payload": "deviceInfo"}, "payload"),
        ({"sub_topic": "system", "payload": {"cmd": "x" * 9000}}, "payload"),
        ({"sub_topic": "system", "payload": {"cmd": "device info"}}, "payload"),
        ({"sub_topic": "system"}, "payload"),
    ],
)
async def test_send_command_rejections(
    hass: HomeAssistant, pbx: Pbx, spy: CommandSpy, data: dict[str, Any], field: str
) -> None:
    await assert_rejected(hass, spy, "send_command", data, "invalid_argument", field=field)

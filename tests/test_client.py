"""SmartPbxClient over AiomqttTransport against a real Mosquitto.

The simulator (``smartpbx_sim``) plays a consistent PBX for the success and failure of
every command; ``PbxResponder`` scripts the wire protocol's corner cases (silence,
shuffled replies, replies without request_id, garbage) precisely.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
from dataclasses import replace
import json
import logging
import secrets
from typing import Any

import pytest

from custom_components.smartpbx.pbx import (
    DEFAULT_TIMEOUT,
    MAX_PAYLOAD_BYTES,
    AiomqttTransport,
    CallDirection,
    CallDisposition,
    CallRecord,
    CallStatusEvent,
    CommandReply,
    CommandTopic,
    DeviceStatus,
    DeviceStatusEvent,
    ExtensionCall,
    ExtensionState,
    ExtensionStatusEvent,
    ExtensionType,
    HangupEvent,
    InviteEvent,
    IvrDtmfEvent,
    ListenMode,
    PbxAuthError,
    PbxBusyError,
    PbxCommandFailedError,
    PbxConnectionError,
    PbxEvent,
    PbxInvalidArgumentError,
    PbxMalformedReplyError,
    PbxNotConnectedError,
    PbxTimeoutError,
    PbxUnsupportedCommandError,
    Permission,
    QueueMemberState,
    SmartPbxClient,
    TransferOperation,
    TrunkType,
    UnknownEvent,
    cdr_topic,
    client as pbx_client,
    command_topic,
    event_topic,
    inbound_filter,
    response_topic,
    status_topic,
)
from custom_components.smartpbx.pbx.concurrency import gather_bounded
from custom_components.smartpbx.pbx.ratelimit import RateLimitedWarnings
from smartpbx_sim import FirmwareProfile, PbxConfig
from smartpbx_sim.runner import SimulatorRunner

from .broker import MosquittoBroker, free_port
from .integration_helpers import SMALL_PBX, real_broker_fixture, start_simulator  # noqa: F401
from .pbx_responder import (
    VENDOR_CDR,
    VENDOR_EVENTS,
    Command,
    CommandSpy,
    PbxResponder,
    failing_handler,
    silent_handler,
    vendor_handler,
    vendor_reply,
)

CLIENT_LOGGER = "custom_components.smartpbx.pbx.client"

type ClientCall = Callable[[SmartPbxClient], Awaitable[object]]


@pytest.fixture(autouse=True)
def _loopback_sockets(socket_enabled: None) -> None:
    """Sockets on (phcc re-disables them per test; 127.0.0.1 stays the only allowed host)."""


@pytest.fixture
def token() -> str:
    return f"tok-{secrets.token_hex(6)}"


@pytest.fixture(autouse=True)
def _token_never_logged(caplog: pytest.LogCaptureFixture, token: str) -> Iterator[None]:
    """The token is a credential: no library log line at INFO or above may contain it."""
    caplog.set_level(logging.INFO, logger="custom_components.smartpbx.pbx")
    yield
    leaks = [
        record.getMessage()
        for when in ("setup", "call", "teardown")
        for record in caplog.get_records(when)
        if record.name.startswith("custom_components.smartpbx.pbx")
        and record.levelno >= logging.INFO
        and token in record.getMessage()
    ]
    assert leaks == []


def make_transport(broker: MosquittoBroker, **kwargs: Any) -> AiomqttTransport:
    kwargs.setdefault("client_id", f"ha-{secrets.token_hex(6)}")
    return AiomqttTransport(
        broker.host, broker.port, reconnect_min=0.05, reconnect_max=0.4, **kwargs
    )


@pytest.fixture
async def transport(private_broker: MosquittoBroker) -> AsyncIterator[AiomqttTransport]:
    made = make_transport(private_broker)
    await made.connect()
    yield made
    await made.close()


@pytest.fixture
async def client(transport: AiomqttTransport, token: str) -> AsyncIterator[SmartPbxClient]:
    made = SmartPbxClient(transport, token, timeout=5.0)
    await made.start()
    yield made
    await made.stop()
    assert made.pending_count == 0


@pytest.fixture
async def responder(private_broker: MosquittoBroker, token: str) -> AsyncIterator[PbxResponder]:
    async with PbxResponder(private_broker.host, private_broker.port, token) as running:
        yield running


@pytest.fixture
async def spy(private_broker: MosquittoBroker) -> AsyncIterator[CommandSpy]:
    async with CommandSpy(private_broker.host, private_broker.port) as running:
        yield running


def sim_config(token: str, **overrides: Any) -> PbxConfig:
    settings: dict[str, Any] = {
        "token": token,
        "unregistered_ratio": 0.0,
        "answer_delay": 0.05,
        "ring_timeout": 3600,
    }
    settings.update(overrides)
    return PbxConfig(**settings)


@pytest.fixture
async def simulator(private_broker: MosquittoBroker, token: str) -> AsyncIterator[SimulatorRunner]:
    runner = SimulatorRunner(
        sim_config(token),
        host=private_broker.host,
        port=private_broker.port,
        reconnect_interval=0.1,
    )
    await runner.start()
    yield runner
    await runner.stop()


async def eventually(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, polling the event loop."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110  # conditions set by MQTT callbacks
            await asyncio.sleep(0.01)


class EventLog:
    """An event listener that records what it is given."""

    def __init__(self) -> None:
        self.events: list[PbxEvent] = []

    def __call__(self, event: PbxEvent) -> None:
        self.events.append(event)

    async def wait_for(self, count: int, limit: float = 5.0) -> list[PbxEvent]:
        await eventually(lambda: len(self.events) >= count, limit)
        return self.events


# ======================================================================================
# Every command against the simulator: success, and the PBX's refusals
# ======================================================================================


async def test_system_queries(simulator: SimulatorRunner, client: SmartPbxClient) -> None:
    pbx = simulator.pbx
    info = await client.device_info()
    assert (info.device_name, info.serial, info.firmware) == (
        pbx.config.devicename,
        pbx.config.serial,
        pbx.config.firmware,
    )
    assert info.uptime is not None
    assert info.uptime.total_seconds() >= pbx.config.initial_uptime
    assert info.system_time is not None

    extensions = await client.extension_list()
    assert [e.number for e in extensions] == list(pbx.extensions)
    assert {e.type for e in extensions} == {ExtensionType.SIP, ExtensionType.FXS}
    assert all(e.state is ExtensionState.IDLE for e in extensions)

    trunks = await client.trunk_list()
    assert [t.name for t in trunks] == list(pbx.trunks)
    fxo = [t for t in trunks if t.type is TrunkType.FXO]
    assert fxo
    assert all(t.line_voltage is not None for t in fxo)

    assert await client.live_calls() == ()

    snapshot = await client.system_snapshot()
    assert snapshot.device_info.serial == pbx.config.serial
    assert tuple(snapshot.extensions.values()) == extensions
    assert tuple(snapshot.trunks.values()) == trunks
    assert list(snapshot.extensions) == [e.number for e in extensions]


async def test_system_snapshot_fails_with_the_first_error_and_cancels_the_rest(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    """One refused command fails the snapshot with that error itself (not a task group's
    ExceptionGroup); the two commands still waiting are cancelled with it."""

    def refuse_trunks(sub_topic: str, command: Command) -> dict[str, Any] | None:
        if command.get("cmd") == "trunk_list":
            return failing_handler("no trunks")(sub_topic, command)
        return None

    responder.handler = refuse_trunks
    with pytest.raises(PbxCommandFailedError) as failed:
        await client.system_snapshot()
    assert failed.value.command == "trunk_list"
    assert client.pending_count == 0


async def test_gather_bounded_raises_a_library_error_inside_nested_task_groups() -> None:
    """A fetch that fails with a task group of its own still fails with the library error
    inside (which the glue can translate), and the other fetches are cancelled."""
    finished: list[str] = []

    async def fetch(number: str) -> str:
        if number == "6667":
            raise ExceptionGroup("inner", [PbxTimeoutError("queue_status", 1)])
        await asyncio.Event().wait()  # an answer that never comes before the failure
        finished.append(number)
        return number

    with pytest.raises(PbxTimeoutError) as raised:
        await gather_bounded(["6666", "6667"], fetch, 2)
    assert raised.value.command == "queue_status"
    assert finished == []


async def test_dial_listen_live_calls_and_hangup(
    simulator: SimulatorRunner, client: SmartPbxClient
) -> None:
    dialled = await client.dial("8001", "8002")
    assert dialled.callid is not None
    assert dialled.callid in simulator.pbx.calls

    await eventually(lambda: simulator.pbx.calls[dialled.callid or ""].answered is not None)
    (call,) = await client.live_calls()
    assert (call.callid, call.caller, call.called) == (dialled.callid, "8001", "8002")
    assert call.source.startswith("PJSIP/8001-")

    spied = await client.listen("8003", "8001", ListenMode.WHISPER)
    assert spied.callid is not None
    assert len(await client.live_calls()) == 2

    # Hanging the spied-on call up by channel ends the listen session too.
    reply = await client.hangup(channel=call.source)
    assert reply.success
    assert reply.message == "Channel Hungup"
    assert await client.live_calls() == ()

    second = await client.dial("8004", "8005", autoanswer=True)
    assert (await client.hangup(second.callid)).success


async def test_call_commands_refused(simulator: SimulatorRunner, client: SmartPbxClient) -> None:
    with pytest.raises(PbxCommandFailedError, match="callee is not existing") as failed:
        await client.dial("8001", "4321")
    assert failed.value.command == "dial"
    assert failed.value.message == "callee is not existing"
    assert failed.value.reply["status"] == "Failed"

    with pytest.raises(PbxCommandFailedError, match="Channel not found"):
        await client.hangup("1673071399.25")
    with pytest.raises(PbxCommandFailedError, match="Channel not found"):
        await client.hangup(channel="PJSIP/8001-000000ff")
    with pytest.raises(PbxCommandFailedError, match="extension is not in a call"):
        await client.listen("8003", "8001")
    with pytest.raises(PbxCommandFailedError, match="dialpermission is not existing"):
        await client.dial("9000", "0612345678", dialpermission="1234")


async def test_cfg_commands(simulator: SimulatorRunner, client: SmartPbxClient) -> None:
    reply = await client.extension_set(
        "8001", logged_in=True, permission=Permission.INTERNATIONAL, fullname="Tom"
    )
    assert reply == CommandReply(success=True, message="success", request_id=reply.request_id)
    assert simulator.pbx.extensions["8001"].username == "Tom"
    assert simulator.pbx.extensions["8001"].permission == 4

    await client.extension_set("8002", logged_in=False, permission=Permission.INTERNAL)
    assert simulator.pbx.extensions["8002"].logged_out

    alarm = await client.alarm_set(
        "8001", start="6:45", clock_sound="wakeup.wav", cycle=10, times=2, days=5
    )
    assert alarm.success
    stored = simulator.pbx.extensions["8001"].alarm
    assert stored is not None
    assert (stored.start, stored.cycle, stored.times, stored.days) == ("06:45", "10", "2", "5")

    with pytest.raises(PbxCommandFailedError, match="clock sound is not existing"):
        await client.alarm_set(
            "8001", start="16:30", clock_sound="xxxx.wav", cycle=10, times=1, days=10
        )
    with pytest.raises(PbxCommandFailedError, match="extension is not existing"):
        await client.extension_set("4321", logged_in=True, permission=Permission.LOCAL)


async def test_queue_commands(simulator: SimulatorRunner, client: SmartPbxClient) -> None:
    queues = await client.queue_list()
    assert [q.number for q in queues] == list(simulator.pbx.queues)
    queue = queues[0]
    outsider = next(n for n in simulator.pbx.extensions if n not in queue.members)

    status = await client.queue_status(queue.number)
    assert status.queue == queue.number
    assert [m.agent for m in status.members] == list(queue.members)
    assert all(m.state is QueueMemberState.NOT_IN_USE for m in status.members)

    assert (await client.queue_add(queue.number, outsider)).message == "Added interface to queue"
    paused = await client.queue_pause(queue.number, outsider, True)
    assert paused.message == "Interface paused successfully"
    member = next(
        m for m in (await client.queue_status(queue.number)).members if m.agent == outsider
    )
    assert member.paused
    await client.queue_pause(queue.number, outsider, False)
    removed = await client.queue_remove(queue.number, outsider)
    assert removed.message == "Remove interface to queue"

    with pytest.raises(PbxCommandFailedError, match="queue is not existing"):
        await client.queue_status("1234")
    with pytest.raises(PbxCommandFailedError, match="No such queue"):
        await client.queue_add("1234", outsider)
    with pytest.raises(PbxCommandFailedError, match="Not there"):
        await client.queue_remove(queue.number, outsider)
    with pytest.raises(PbxCommandFailedError, match="Interface not found"):
        await client.queue_pause(queue.number, outsider, True)


async def test_conference_commands(simulator: SimulatorRunner, client: SmartPbxClient) -> None:
    conferences = await client.conf_list()
    assert [c.number for c in conferences] == list(simulator.pbx.conferences)
    room = conferences[0].number
    assert (await client.conf_status(room)).members == ()

    assert (await client.conf_invite(room, "8004", "8001")).success

    # The invited phone answers after the simulator's answer delay.
    await eventually(lambda: bool(simulator.pbx.conferences[room].members))
    (member,) = (await client.conf_status(room)).members
    assert member.callerid == "8004"
    assert member.channel.startswith("PJSIP/8004-")

    assert (await client.conf_mute(room, member.channel)).message == "User muted"
    assert (await client.conf_status(room)).members[0].muted
    assert (await client.conf_unmute(room, member.channel)).message == "User unmuted"
    assert (await client.conf_kick(room, member.channel)).message == "User kicked"
    assert (await client.conf_status(room)).members == ()

    with pytest.raises(PbxCommandFailedError, match="conference is not existing"):
        await client.conf_status("1234")
    with pytest.raises(PbxCommandFailedError, match="member is not existing"):
        await client.conf_invite(room, "4321", "8001")
    for refused in (client.conf_kick, client.conf_mute, client.conf_unmute):
        with pytest.raises(PbxCommandFailedError, match="No Channel by that name"):
            await refused(room, "PJSIP/8004-000000ff")


async def test_raw_command(simulator: SimulatorRunner, client: SmartPbxClient) -> None:
    reply = await client.command("queue", {"cmd": "queue_status", "queue": "6666"})
    assert reply.success
    assert reply.raw["queue"] == "6666"
    with pytest.raises(PbxCommandFailedError, match="unknown cmd reboot"):
        await client.command("system", {"cmd": "reboot", "request_id": "replaced"})
    with pytest.raises(PbxCommandFailedError, match="not supported on command/system"):
        await client.command("system", {"cmd": "queue_list"})


async def test_events_from_the_simulator(
    simulator: SimulatorRunner, client: SmartPbxClient
) -> None:
    log = EventLog()
    client.add_event_listener(log)
    dialled = await client.dial("8001", "8002")
    await eventually(lambda: any(isinstance(e, InviteEvent) for e in log.events))
    await client.hangup(dialled.callid)
    events = await eventually_cdr(log)
    invite = next(e for e in events if isinstance(e, InviteEvent))
    assert (invite.from_number, invite.to_number, invite.callid) == ("8001", "8002", dialled.callid)
    states = [(e.extension, e.state) for e in events if isinstance(e, ExtensionStatusEvent)]
    assert ("8001", ExtensionState.IN_USE) in states
    assert states[-1][1] is ExtensionState.IDLE
    record = next(e for e in events if isinstance(e, CallRecord))
    assert (record.callid, record.src, record.dst) == (dialled.callid, "8001", "8002")
    assert record.start is not None
    assert record.end is not None
    assert record.start <= record.end

    simulator.ivr_keypress("9000", "8003", "5")
    await eventually(lambda: isinstance(log.events[-1], IvrDtmfEvent))


async def eventually_cdr(log: EventLog) -> list[PbxEvent]:
    await eventually(lambda: any(isinstance(e, CallRecord) for e in log.events))
    return log.events


# ======================================================================================
# Every command's Failed path and exact wire payload (scripted responder)
# ======================================================================================

COMMANDS: list[tuple[str, str, ClientCall, dict[str, Any]]] = [
    ("system", "deviceInfo", lambda c: c.device_info(), {}),
    ("system", "extension_list", lambda c: c.extension_list(), {}),
    ("system", "trunk_list", lambda c: c.trunk_list(), {}),
    ("system", "livecall", lambda c: c.live_calls(), {}),
    (
        "cfg",
        "extension_set",
        lambda c: c.extension_set(
            "8001", logged_in=True, permission=Permission.NATIONAL, fullname="Tom"
        ),
        {
            "extension": "8001",
            "params": {"logout_status": "0", "fullname": "Tom", "permission": "3"},
        },
    ),
    (
        "cfg",
        "alarm_set",
        lambda c: c.alarm_set(
            "8001", start="16:30", clock_sound="xxxx.wav", cycle=10, times=1, days=10
        ),
        {
            "extension": "8001",
            "params": {
                "start": "16:30",
                "clock_sound": "xxxx.wav",
                "cycle": "10",
                "times": "1",
                "days": "10",
            },
        },
    ),
    ("call", "dial", lambda c: c.dial("8001", "2005"), {"caller": "8001", "callee": "2005"}),
    (
        "call",
        "hangup",
        lambda c: c.hangup("1672030725.7987"),
        {"callid": "1672030725.7987"},
    ),
    (
        "call",
        "listen",
        lambda c: c.listen("2008", "2004"),
        {"monitor": "2008", "extension": "2004", "type": "listen"},
    ),
    ("queue", "queue_list", lambda c: c.queue_list(), {}),
    ("queue", "queue_status", lambda c: c.queue_status("6666"), {"queue": "6666"}),
    (
        "queue",
        "queue_add",
        lambda c: c.queue_add("6666", "8001"),
        {"queue": "6666", "extension": "8001"},
    ),
    (
        "queue",
        "queue_remove",
        lambda c: c.queue_remove("6666", "8001"),
        {"queue": "6666", "extension": "8001"},
    ),
    (
        "queue",
        "queue_paused",
        lambda c: c.queue_pause("6666", "8001", True),
        {"queue": "6666", "extension": "8001", "paused": "yes"},
    ),
    ("conf", "conf_list", lambda c: c.conf_list(), {}),
    ("conf", "conf_status", lambda c: c.conf_status("2222"), {"conf": "2222"}),
    (
        "conf",
        "conf_invite",
        lambda c: c.conf_invite("2222", "2003", "8001"),
        {"conf": "2222", "dialpermission": "8001", "member": "2003"},
    ),
    (
        "conf",
        "conf_kick",
        lambda c: c.conf_kick("2222", "PJSIP/8001-00000002"),
        {"conf": "2222", "channel": "PJSIP/8001-00000002"},
    ),
    (
        "conf",
        "conf_mute",
        lambda c: c.conf_mute("2222", "PJSIP/8001-00000002"),
        {"conf": "2222", "channel": "PJSIP/8001-00000002"},
    ),
    (
        "conf",
        "conf_unmute",
        lambda c: c.conf_unmute("2222", "PJSIP/8001-00000002"),
        {"conf": "2222", "channel": "PJSIP/8001-00000002"},
    ),
]
COMMAND_IDS = [name for _, name, _, _ in COMMANDS]


@pytest.mark.parametrize(("sub_topic", "name", "call", "fields"), COMMANDS, ids=COMMAND_IDS)
async def test_wire_payload_matches_the_document(
    responder: PbxResponder,
    client: SmartPbxClient,
    sub_topic: str,
    name: str,
    call: ClientCall,
    fields: dict[str, Any],
) -> None:
    await call(client)
    ((received_sub, command),) = responder.commands
    assert received_sub == sub_topic
    request_id = command.pop("request_id")
    assert command == {"cmd": name, **fields}
    # Every value on the wire is a string, as the document shows them.
    assert all(isinstance(v, str | dict) for v in command.values())
    assert isinstance(request_id, str)
    assert len(request_id) >= 12


@pytest.mark.parametrize(("sub_topic", "name", "call", "fields"), COMMANDS, ids=COMMAND_IDS)
async def test_every_command_carries_the_failure_message(
    responder: PbxResponder,
    client: SmartPbxClient,
    sub_topic: str,
    name: str,
    call: ClientCall,
    fields: dict[str, Any],
) -> None:
    responder.handler = failing_handler(f"{name} refused by the PBX")
    with pytest.raises(PbxCommandFailedError) as failed:
        await call(client)
    assert failed.value.command == name
    assert failed.value.message == f"{name} refused by the PBX"
    assert client.pending_count == 0


async def test_vendor_replies_parse_through_the_client(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    extensions = await client.extension_list()
    assert len(extensions) == 13
    trunks = await client.trunk_list()
    assert trunks[1].line_voltage == 50
    status = await client.queue_status("6666")
    assert status.members[-1].paused
    dialled = await client.dial("8001", "2005")
    assert dialled.callid == "1673080587.2118"
    assert (await client.conf_status("2222")).members[0].answered_time is not None


async def test_dial_options_and_hangup_by_channel(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    await client.dial("6666", "+861235432341231", dialpermission="8001", autoanswer=True)
    await client.hangup(channel="PJSIP/8001-00000002")
    await client.extension_set("8001", logged_in=False, permission=Permission.INTERNAL)
    await client.queue_pause("6666", "8001", False)
    await client.listen("2008", "2004", ListenMode.BARGE)
    payloads = [command for _, command in responder.commands]
    for payload in payloads:
        del payload["request_id"]
    assert payloads == [
        {
            "cmd": "dial",
            "caller": "6666",
            "callee": "+861235432341231",
            "dialpermission": "8001",
            "autoanswer": "yes",
        },
        {"cmd": "hangup", "channelid": "PJSIP/8001-00000002"},
        {
            "cmd": "extension_set",
            "extension": "8001",
            "params": {"logout_status": "1", "permission": "0"},
        },
        {"cmd": "queue_paused", "queue": "6666", "extension": "8001", "paused": "no"},
        {"cmd": "listen", "monitor": "2008", "extension": "2004", "type": "barge"},
    ]


async def test_request_ids_are_unique(responder: PbxResponder, client: SmartPbxClient) -> None:
    for _ in range(20):
        await client.queue_list()
    ids = [command["request_id"] for _, command in responder.commands]
    assert len(set(ids)) == 20
    other = SmartPbxClient(client._transport, client.token)
    assert other._new_request_id() not in ids


async def test_raw_command_over_the_responder(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    reply = await client.command("voicemail", {"cmd": "vm_count", "box": "8001"})
    assert reply.message == "voicemail/vm_count done"
    ((sub, command),) = responder.commands
    assert sub == "voicemail"
    assert command["box"] == "8001"


# ======================================================================================
# Failure modes: timeouts, not connected, invalid arguments, busy
# ======================================================================================


async def test_timeout_when_the_pbx_stays_silent(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    responder.handler = silent_handler
    with pytest.raises(PbxTimeoutError) as timed_out:
        await client.device_info(timeout=0.2)
    assert timed_out.value.command == "deviceInfo"
    assert timed_out.value.timeout == pytest.approx(0.2)
    assert client.pending_count == 0
    assert len(responder.commands) == 1

    # The late reply to the timed-out command is ignored; the next command still works.
    responder.handler = vendor_handler
    await responder.publish(
        "response",
        {**vendor_reply("deviceInfo"), "request_id": responder.commands[0][1]["request_id"]},
    )
    assert (await client.device_info()).serial == "XR18132110000787"


async def test_client_default_timeout(
    private_broker: MosquittoBroker, transport: AiomqttTransport, token: str
) -> None:
    async with PbxResponder(private_broker.host, private_broker.port, token, silent_handler):
        quick = SmartPbxClient(transport, token, timeout=0.2)
        await quick.start()
        with pytest.raises(PbxTimeoutError, match=r"within 0\.2 s"):
            await quick.trunk_list()
        await quick.stop()


async def test_device_info_within_asks_again_with_growing_waits(
    responder: PbxResponder, client: SmartPbxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost reply is asked for again; a silent PBX is asked with doubling waits until
    the deadline."""
    monkeypatch.setattr(pbx_client, "DEVICE_INFO_FIRST_WAIT", 0.1)

    def lose_the_first(sub_topic: str, command: Command) -> dict[str, Any] | None:
        return vendor_handler(sub_topic, command) if len(responder.commands) > 1 else None

    responder.handler = lose_the_first
    assert (await client.device_info_within(5)).serial == "XR18132110000787"
    assert [command["cmd"] for _, command in responder.commands] == ["deviceInfo"] * 2

    responder.handler = silent_handler
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PbxTimeoutError) as timed_out:
        await client.device_info_within(0.65)
    assert 0.6 <= loop.time() - started < 1.5
    assert timed_out.value.timeout == pytest.approx(0.65)
    await responder.wait_commands(2 + 3)  # waits of 0.1, 0.2 and the remaining 0.35 s
    await asyncio.sleep(0.2)
    assert len(responder.commands) == 2 + 3


async def test_not_connected_fails_fast_and_publishes_nothing(
    private_broker: MosquittoBroker, spy: CommandSpy, token: str
) -> None:
    never_connected = make_transport(private_broker)
    client = SmartPbxClient(never_connected, token)
    await client.start()  # subscriptions are recorded and made on connect
    assert not client.connected
    with pytest.raises(PbxNotConnectedError):
        await client.device_info()
    assert client.pending_count == 0

    await never_connected.connect()
    assert client.connected
    await client.stop()
    with pytest.raises(PbxNotConnectedError, match="not started"):
        await client.queue_list()
    await never_connected.close()
    await asyncio.sleep(0.1)
    assert spy.messages == []


INVALID_CALLS: list[tuple[str, ClientCall]] = [
    ("extension", lambda c: c.extension_set("80 01", logged_in=True, permission=Permission.LOCAL)),
    ("permission", lambda c: c.extension_set("8001", logged_in=True, permission=9)),  # type: ignore[arg-type]
    ("logged_in", lambda c: c.extension_set("8001", logged_in="yes", permission=Permission.LOCAL)),  # type: ignore[arg-type]
    (
        "fullname",
        lambda c: c.extension_set(
            "8001", logged_in=True, permission=Permission.LOCAL, fullname="a\nb"
        ),
    ),
    (
        "start",
        lambda c: c.alarm_set("8001", start="25:00", clock_sound="a.wav", cycle=1, times=1, days=1),
    ),
    (
        "clock_sound",
        lambda c: c.alarm_set("8001", start="06:00", clock_sound="../x", cycle=1, times=1, days=1),
    ),
    (
        "times",
        lambda c: c.alarm_set("8001", start="06:00", clock_sound="a.wav", cycle=1, times=0, days=1),
    ),
    ("caller", lambda c: c.dial("8001#x", "2005")),
    ("callee", lambda c: c.dial("8001", "")),
    ("dialpermission", lambda c: c.dial("6666", "2005", dialpermission="abc")),
    ("autoanswer", lambda c: c.dial("8001", "2005", autoanswer="yes")),  # type: ignore[arg-type]
    ("callid", lambda c: c.hangup()),
    ("callid", lambda c: c.hangup("1.2", channel="FXS/5")),
    ("callid", lambda c: c.hangup("device/+/api")),
    ("channel", lambda c: c.hangup(channel="FXS 5")),
    ("monitor", lambda c: c.listen("", "2004")),
    ("mode", lambda c: c.listen("2008", "2004", "spy")),  # type: ignore[arg-type]
    ("queue", lambda c: c.queue_status("66/66")),
    ("extension", lambda c: c.queue_add("6666", "+")),
    ("paused", lambda c: c.queue_pause("6666", "8001", "no")),  # type: ignore[arg-type]
    ("conference", lambda c: c.conf_status("#/+")),
    ("member", lambda c: c.conf_invite("2222", "x", "8001")),
    ("channel", lambda c: c.conf_kick("2222", "PJSIP/8001-2#")),
    ("channel", lambda c: c.conf_mute("2222", "")),
    ("channel", lambda c: c.conf_unmute("2222", "FXS/5\x00")),
    ("sub_topic", lambda c: c.command("call/#", {"cmd": "dial"})),
    ("cmd", lambda c: c.command("call", {"caller": "8001"})),
    ("payload", lambda c: c.command("call", {"cmd": "dial", "x": "a" * 70000})),
    ("payload", lambda c: c.command("call", {"cmd": "dial", "x": 2**70})),
    ("payload", lambda c: c.command("call", {"cmd": "dial", "x": ["a" * 1000] * 70})),
    ("timeout", lambda c: c.device_info(timeout=0)),
    ("timeout", lambda c: c.device_info(timeout=float("nan"))),
]


async def test_invalid_arguments_publish_nothing(
    responder: PbxResponder, client: SmartPbxClient, spy: CommandSpy
) -> None:
    for field, call in INVALID_CALLS:
        with pytest.raises(PbxInvalidArgumentError) as refused:
            await call(client)
        assert refused.value.field.startswith(field), (field, refused.value)
    assert client.pending_count == 0
    # A valid command afterwards is the first (and only) thing the broker ever saw.
    await client.queue_list()
    await eventually(lambda: len(spy.messages) == 1)
    assert spy.commands() == ["queue_list"]
    assert len(responder.commands) == 1


def test_constructor_validation(transport: AiomqttTransport) -> None:
    with pytest.raises(PbxInvalidArgumentError, match="token"):
        SmartPbxClient(transport, "bad/token")
    with pytest.raises(PbxInvalidArgumentError, match="timeout"):
        SmartPbxClient(transport, "t", timeout=-1)
    with pytest.raises(PbxInvalidArgumentError, match="max_pending"):
        SmartPbxClient(transport, "t", max_pending=0)
    with pytest.raises(PbxInvalidArgumentError, match="qos"):
        SmartPbxClient(transport, "t", qos=3)


async def test_pending_table_is_bounded(
    responder: PbxResponder, transport: AiomqttTransport, token: str
) -> None:
    responder.handler = silent_handler
    client = SmartPbxClient(transport, token, max_pending=3, timeout=5)
    await client.start()
    waiting = [asyncio.create_task(client.queue_status(str(6000 + n))) for n in range(3)]
    await responder.wait_commands(3)
    assert client.pending_count == 3
    with pytest.raises(PbxBusyError):
        await client.device_info()
    await asyncio.sleep(0.05)
    assert [c["cmd"] for _, c in responder.commands] == ["queue_status"] * 3

    # Cancelling a waiting command frees its slot.
    waiting[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    assert client.pending_count == 2

    # stop() fails the rest with PbxNotConnectedError and empties the table.
    await client.stop()
    for task in waiting[1:]:
        with pytest.raises(PbxNotConnectedError, match="stopped"):
            await task
    assert client.pending_count == 0


# ======================================================================================
# Correlation: out-of-order replies, replies without request_id, unknown ids
# ======================================================================================


def echoing_handler(sub_topic: str, command: Command) -> dict[str, Any]:
    """Replies that say which request they answer, so a mix-up would show."""
    reply: dict[str, Any] = {"status": "Success", "request_id": command["request_id"]}
    if command["cmd"] == "queue_status":
        reply |= {"queue": command["queue"], "params": {"calls": command["queue"][-3:]}}
    elif command["cmd"] == "dial":
        reply |= {"callid": f"1700000000.{command['callee']}", "message": "success"}
    else:
        reply |= {"message": f"{command['cmd']} {command.get('queue', '')}"}
    return reply


async def test_200_concurrent_commands_with_shuffled_replies(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    responder.handler = echoing_handler
    responder.hold = True
    calls: list[Awaitable[object]] = []
    for n in range(200):
        if n % 3 == 0:
            calls.append(client.queue_status(str(10000 + n), timeout=30))
        elif n % 3 == 1:
            calls.append(client.dial("8001", str(20000 + n), timeout=30))
        else:
            calls.append(client.queue_add(str(30000 + n), "8001", timeout=30))
    gathered = asyncio.gather(*calls)
    await responder.wait_commands(200, limit=30)
    assert client.pending_count == 200
    assert await responder.release(shuffle=True, seed=7) == 200
    results = await gathered
    for n, result in enumerate(results):
        if n % 3 == 0:
            assert result.queue == str(10000 + n)  # type: ignore[attr-defined]
            assert result.calls == (10000 + n) % 1000  # type: ignore[attr-defined]
        elif n % 3 == 1:
            assert result.callid == f"1700000000.{20000 + n}"  # type: ignore[attr-defined]
        else:
            assert result.message == f"queue_add {30000 + n}"  # type: ignore[attr-defined]
    assert client.pending_count == 0


async def test_request_id_is_matched_after_stripping_whitespace(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    def padded(sub_topic: str, command: Command) -> dict[str, Any]:
        return {**vendor_reply("trunk_list"), "request_id": f" {command['request_id']}\n"}

    responder.handler = padded
    assert len(await client.trunk_list()) == 5


async def test_unknown_and_duplicate_request_ids_are_ignored(
    responder: PbxResponder, client: SmartPbxClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=CLIENT_LOGGER)
    responder.hold = True
    waiting = asyncio.create_task(client.device_info())
    await responder.wait_commands(1)
    await responder.publish("response", {**vendor_reply("deviceInfo"), "request_id": "nobody"})
    await responder.publish("response", {**vendor_reply("deviceInfo"), "request_id": 12345})
    await asyncio.sleep(0.1)
    assert not waiting.done()
    assert "request nobody that nobody awaits" in caplog.text
    assert "request 12345 that nobody awaits" in caplog.text
    # The real reply, twice: the first resolves, the duplicate is ignored.
    (reply,) = responder.held
    await responder.publish("response", reply)
    await responder.publish("response", {**reply, "deviceinfo": {"sn": "DUPLICATE"}})
    assert (await waiting).serial == "XR18132110000787"
    await asyncio.sleep(0.05)
    assert client.pending_count == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def start_silently(
    responder: PbxResponder, calls: list[Awaitable[Any]]
) -> list[asyncio.Task[Any]]:
    """Start commands the responder does not answer; return once all were received."""
    responder.handler = silent_handler
    before = len(responder.commands)
    tasks = [asyncio.ensure_future(call) for call in calls]
    await responder.wait_commands(before + len(calls))
    return tasks


async def test_reply_without_request_id_attributed_by_shape(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    device, dial, queue_a, queue_b = await start_silently(
        responder,
        [
            client.device_info(),
            client.dial("8001", "2005"),
            client.queue_status("6666"),
            client.queue_status("7777"),
        ],
    )
    anonymous = vendor_reply("deviceInfo")
    del anonymous["request_id"]
    await responder.publish("response", anonymous)
    assert (await device).serial == "XR18132110000787"

    # queue+params names its queue: only that queue's status request is resolved.
    await responder.publish(
        "response", {"status": "Success", "queue": "7777", "params": {"calls": "4"}}
    )
    assert (await queue_b).calls == 4
    await responder.publish("response", {"status": "Success", "callid": "1673080587.2118"})
    assert (await dial).callid == "1673080587.2118"
    await responder.publish("response", {"status": "Success", "queue": " 6666 ", "members": []})
    assert (await queue_a).queue == "6666"
    assert client.pending_count == 0

    # A queue number sent as a JSON number still names its queue.
    (numbered,) = await start_silently(responder, [client.queue_status("8888")])
    await responder.publish("response", {"status": "Success", "queue": 8888, "params": {}})
    assert (await numbered).queue == "8888"


async def test_a_reply_arriving_twice_at_once_resolves_once(
    responder: PbxResponder, client: SmartPbxClient, token: str
) -> None:
    (waiting,) = await start_silently(responder, [client.queue_list()])
    reply = {**vendor_reply("queue_list"), "request_id": responder.commands[-1][1]["request_id"]}
    data = json.dumps(reply).encode()
    # Both copies are handled before the waiting command runs again.
    client._on_message(f"device/{token}/api/v1.0/response", data)
    client._on_message(f"device/{token}/api/v1.0/response", data)
    assert (await waiting)[0].number == "33222"


async def test_reply_without_request_id_for_conference_and_lists(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    tasks = await start_silently(
        responder,
        [
            client.conf_status("2222"),
            client.extension_list(),
            client.trunk_list(),
            client.live_calls(),
            client.queue_list(),
            client.conf_list(),
        ],
    )
    for name in (
        "conf_status",
        "extension_list",
        "trunk_list",
        "livecall",
        "queue_list",
        "conf_list",
    ):
        reply = vendor_reply(name)
        reply.pop("request_id", None)
        await responder.publish("response", reply)
    conf, extensions, trunks, calls, queues, conferences = await asyncio.gather(*tasks)
    assert conf.conference == "2222"
    assert len(extensions) == 13
    assert len(trunks) == 5
    assert len(calls) == 1
    assert queues[0].number == "33222"
    assert len(conferences) == 2


async def test_shaped_reply_matching_several_or_none_is_dropped(
    responder: PbxResponder, client: SmartPbxClient, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, dial = await start_silently(
        responder,
        [client.queue_status("6666"), client.queue_status("6666"), client.dial("8001", "2005")],
    )
    caplog.clear()
    await responder.publish("response", {"status": "Success", "queue": "6666", "params": {}})
    await eventually(lambda: "2 such commands are pending" in caplog.text)
    # A deviceinfo reply matches none of them: never attributed to another kind.
    await responder.publish("response", {"status": "Success", "deviceinfo": {}})
    await eventually(lambda: len([r for r in caplog.records if r.levelno == logging.WARNING]) >= 1)
    await asyncio.sleep(0.1)
    assert not any(task.done() for task in (first, second, dial))
    for task in (first, second, dial):
        task.cancel()
    await asyncio.gather(first, second, dial, return_exceptions=True)
    assert client.pending_count == 0


async def test_shapeless_reply_resolves_the_only_pending_command(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    (waiting,) = await start_silently(responder, [client.queue_add("6666", "8001")])
    await responder.publish("response", {"status": "Failed", "message": "Already there"})
    with pytest.raises(PbxCommandFailedError, match="Already there"):
        await waiting


async def test_shapeless_reply_with_several_pending_is_dropped(
    responder: PbxResponder, client: SmartPbxClient, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = await start_silently(
        responder, [client.queue_add("6666", "8001"), client.queue_remove("6666", "8002")]
    )
    await responder.publish("response", {"status": "Success", "message": "done"})
    await eventually(lambda: "2 commands are pending" in caplog.text)
    assert not any(task.done() for task in tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    # With nothing pending at all, a reply without id is dropped as well.
    caplog.clear()
    client._warnings = RateLimitedWarnings(logging.getLogger(CLIENT_LOGGER))
    await responder.publish("response", {"status": "Success"})
    await eventually(lambda: "0 commands are pending" in caplog.text)


async def test_unreadable_reply_fails_the_command_at_once(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    def broken(sub_topic: str, command: Command) -> dict[str, Any]:
        return {"request_id": command["request_id"], "status": "Success", "extlist": "8001"}

    responder.handler = broken
    with pytest.raises(PbxMalformedReplyError, match="extlist") as failed:
        await client.extension_list()
    assert failed.value.command == "extension_list"
    assert failed.value.reply["extlist"] == "8001"

    def bad_status(sub_topic: str, command: Command) -> dict[str, Any]:
        return {"request_id": command["request_id"], "status": ["Success"]}

    responder.handler = bad_status
    with pytest.raises(PbxMalformedReplyError, match="status"):
        await client.queue_add("6666", "8001")
    assert client.pending_count == 0


# ======================================================================================
# Events, CDRs and the status topic
# ======================================================================================


async def test_events_and_cdrs_delivered_in_order(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    log = EventLog()
    remove = client.add_event_listener(log)
    for text in VENDOR_EVENTS:
        await responder.publish("event", text)
    await responder.publish("cdr", VENDOR_CDR)
    await responder.publish("event", {"event": "voicemail", "box": "8001"})
    await responder.publish("status", {"state": "online"})
    await responder.publish("status", "online")
    for n in range(100):
        await responder.publish(
            "event", {"event": "extension_status", "extension": str(n), "status": "InUse"}
        )
    events = await log.wait_for(len(VENDOR_EVENTS) + 4 + 100)
    kinds = [type(e) for e in events[: len(VENDOR_EVENTS) + 4]]
    assert kinds == [
        ExtensionStatusEvent,
        ExtensionStatusEvent,
        ExtensionStatusEvent,
        ExtensionStatusEvent,
        InviteEvent,
        IvrDtmfEvent,
        CallRecord,
        UnknownEvent,
        DeviceStatusEvent,
        DeviceStatusEvent,
    ]
    cdr = events[6]
    assert isinstance(cdr, CallRecord)
    assert cdr.disposition is CallDisposition.NO_ANSWER
    assert events[7] == UnknownEvent(event="voicemail")
    assert events[8].raw == {"state": "online"}
    assert events[9].raw == {"payload": "online"}
    assert isinstance(events[8], UnknownEvent)  # what consumers knew it as before
    assert isinstance(events[8], DeviceStatusEvent)
    assert events[8].event == "status"
    assert events[8].online is True
    tail = events[len(VENDOR_EVENTS) + 4 :]
    assert [e.extension for e in tail if isinstance(e, ExtensionStatusEvent)] == [
        str(n) for n in range(100)
    ]

    remove()
    remove()  # removing twice is harmless
    await responder.publish("event", VENDOR_EVENTS[0])
    await responder.publish("cdr", VENDOR_CDR)
    await asyncio.sleep(0.1)
    assert len(log.events) == len(VENDOR_EVENTS) + 4 + 100


async def test_a_failing_listener_does_not_stop_the_others(
    responder: PbxResponder, client: SmartPbxClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: PbxEvent) -> None:
        raise RuntimeError("listener bug")

    log = EventLog()
    client.add_event_listener(broken)
    client.add_event_listener(log)
    await responder.publish("event", VENDOR_EVENTS[4])
    await responder.publish("event", VENDOR_EVENTS[5])
    events = await log.wait_for(2)
    assert [type(e) for e in events] == [InviteEvent, IvrDtmfEvent]
    assert caplog.text.count("Error in a PBX event listener") == 2
    assert "listener bug" in caplog.text


async def test_messages_on_other_topics_are_ignored(
    private_broker: MosquittoBroker, client: SmartPbxClient, token: str
) -> None:
    log = EventLog()
    client.add_event_listener(log)
    # The client's callback only sees what its filter matches; call it directly with a
    # topic of another kind, as a transport with a broader subscription would.
    client._on_message(f"device/{token}/api/v1.0/firmware", b"{}")
    client._on_message("elsewhere/event", b"{}")
    assert log.events == []


# ======================================================================================
# Malformed and oversized payloads
# ======================================================================================

GARBAGE: list[bytes] = [
    b"\xff\xfe\x00garbage",
    b"{not json",
    b"",
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
]


@pytest.mark.parametrize("kind", ["event", "cdr", "response"])
async def test_malformed_payloads_are_dropped_with_a_rate_limited_warning(
    responder: PbxResponder,
    client: SmartPbxClient,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    log = EventLog()
    client.add_event_listener(log)
    for payload in GARBAGE:
        await responder.publish(kind, payload)
    wrong_types = {
        "event": {"event": "extension_status", "extension": ["8001"], "status": "Idle"},
        "cdr": {"src": {"a": 1}},
        "response": {"status": "Success", "request_id": ["x"]},
    }[kind]
    await responder.publish(kind, wrong_types)
    # A valid message afterwards still gets through.
    await responder.publish("event", VENDOR_EVENTS[0])
    await log.wait_for(1)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert kind in warnings[0].getMessage()
    assert warnings[0].name == CLIENT_LOGGER
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(log.events) == 1


async def test_reply_with_an_unusable_request_id_is_dropped(
    responder: PbxResponder, client: SmartPbxClient, caplog: pytest.LogCaptureFixture
) -> None:
    (waiting,) = await start_silently(responder, [client.queue_list()])
    await responder.publish("response", {**vendor_reply("queue_list"), "request_id": {"id": 1}})
    await eventually(lambda: "'request_id' should be a string" in caplog.text)
    assert not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_malformed_status_payload(
    responder: PbxResponder, client: SmartPbxClient, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog()
    client.add_event_listener(log)
    await responder.publish("status", b"\xff\xfe")
    await responder.publish("status", b"[1]")
    events = await log.wait_for(1)
    assert events[0].raw == {"payload": [1]}
    assert "not UTF-8" in caplog.text


async def test_oversized_payload_is_dropped_unread(
    responder: PbxResponder, client: SmartPbxClient, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog()
    client.add_event_listener(log)
    huge = {
        "event": "extension_status",
        "extension": "8001",
        "status": "Idle",
        "pad": "x" * MAX_PAYLOAD_BYTES,
    }
    await responder.publish("event", huge)
    await responder.publish("event", VENDOR_EVENTS[1])
    events = await log.wait_for(1)
    await asyncio.sleep(0.05)
    assert len(events) == 1
    assert isinstance(events[0], ExtensionStatusEvent)
    assert events[0].state is ExtensionState.IN_USE
    assert "larger than 262144 bytes" in caplog.text


async def test_listener_errors_inside_the_client_never_reach_the_transport(
    client: SmartPbxClient,
    token: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(payload: bytes) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setitem(client._inbound_handlers, "event", explode)
    client._on_message(f"device/{token}/api/v1.0/event", b"{}")
    assert "Unexpected error handling a event message" in caplog.text


def test_rate_limited_warnings_count_what_they_suppress(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    warnings = RateLimitedWarnings(logging.getLogger("test.ratelimit"), 60.0, lambda: now[0])
    assert warnings.warning("event", "bad %s", "one")
    assert not warnings.warning("event", "bad %s", "two")
    assert not warnings.warning("event", "bad %s", "three")
    assert warnings.warning("cdr", "bad cdr")  # another key is independent
    assert warnings.suppressed("event") == 2
    now[0] += 59.9
    assert not warnings.warning("event", "bad %s", "four")
    now[0] += 0.2
    assert warnings.warning("event", "bad %s", "five")
    assert warnings.suppressed("event") == 0
    assert warnings.suppressed("never") == 0
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == ["bad one", "bad cdr", "bad five (3 similar warnings suppressed)"]


# ======================================================================================
# Connection: reconnect, auth, unreachable, close
# ======================================================================================


async def test_reconnect_resubscribes_and_commands_and_events_flow_again(
    private_broker: MosquittoBroker, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = make_transport(private_broker)
    states: list[bool] = []
    await transport.connect()
    client = SmartPbxClient(transport, token, timeout=3)
    client.add_connection_listener(states.append)
    await client.start()
    log = EventLog()
    client.add_event_listener(log)
    runner = SimulatorRunner(
        sim_config(token),
        host=private_broker.host,
        port=private_broker.port,
        reconnect_interval=0.1,
    )
    await runner.start()
    try:
        assert (await client.device_info()).serial == runner.pbx.config.serial

        private_broker.stop()
        await eventually(lambda: states == [False])
        assert not client.connected
        with pytest.raises(PbxNotConnectedError):
            await client.queue_list()

        private_broker.start()
        await eventually(lambda: states == [False, True])
        await runner.wait_connected()
        assert client.connected
        # Mosquitto lost every session: only our re-subscription brings replies back.
        assert (await client.device_info()).serial == runner.pbx.config.serial
        runner.set_extension_status("8001", "InUse")
        await eventually(
            lambda: any(
                isinstance(e, ExtensionStatusEvent) and e.extension == "8001" for e in log.events
            )
        )
    finally:
        await runner.stop()
        await client.stop()
        await transport.close()
    assert states == [False, True, False]


async def test_auth_refused_and_accepted(auth_broker: MosquittoBroker, token: str) -> None:
    wrong = make_transport(auth_broker, username="pbx", password="wrong")
    with pytest.raises(PbxAuthError) as refused:
        await wrong.connect(timeout=3)
    assert "wrong" not in str(refused.value)
    assert not wrong.connected
    await wrong.close()

    anonymous = make_transport(auth_broker)
    with pytest.raises(PbxAuthError):
        await anonymous.connect(timeout=3)
    await anonymous.close()

    right = make_transport(auth_broker, username="pbx", password="secret")
    await right.connect(timeout=3)
    client = SmartPbxClient(right, token)
    await client.start()
    async with SimulatorRunner(
        sim_config(token),
        host=auth_broker.host,
        port=auth_broker.port,
        username="pbx",
        password="secret",
    ):
        assert (await client.device_info()).device_name
    await client.stop()
    await right.close()


async def test_unreachable_broker() -> None:
    transport = AiomqttTransport("127.0.0.1", free_port())
    with pytest.raises(PbxConnectionError) as failed:
        await transport.connect(timeout=2)
    assert not isinstance(failed.value, PbxAuthError)
    assert not transport.connected
    await transport.close()


async def test_close_leaves_no_task(private_broker: MosquittoBroker, token: str) -> None:
    before = asyncio.all_tasks()
    transport = make_transport(private_broker)
    await transport.connect()
    client = SmartPbxClient(transport, token)
    await client.start()
    await client.start()  # idempotent
    async with PbxResponder(private_broker.host, private_broker.port, token):
        await client.queue_list()
    await client.stop()
    await client.stop()  # idempotent
    await transport.close()
    await transport.close()  # idempotent
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
    with pytest.raises(PbxConnectionError, match="closed"):
        await transport.connect()


@pytest.fixture
def auth_broker() -> Iterator[MosquittoBroker]:
    """A broker requiring pbx/secret.

    Not ``broker_factory``: mosquitto drops root privileges to its own user, which cannot
    read the password file inside MosquittoBroker's private (0700) temporary directory,
    so the directory is opened up before starting.
    """
    made = MosquittoBroker(users={"pbx": "secret"})
    made._dir.chmod(0o755)
    made.start()
    yield made
    made.close()


def test_vendor_request_examples_are_what_the_client_sends() -> None:
    """The document's request examples carry the same fields our commands send."""
    from .pbx_responder import VENDOR_REQUESTS

    sent = {name: fields for _, name, _, fields in COMMANDS}
    for name, text in VENDOR_REQUESTS.items():
        example = json.loads(text)
        cmd = example.pop("cmd")
        example.pop("request_id")
        if cmd in sent and name == cmd:
            assert set(example) == set(sent[cmd]), cmd


def test_topics() -> None:
    assert inbound_filter("t") == "device/t/api/v1.0/+"
    assert command_topic("t", CommandTopic.QUEUE) == "device/t/api/v1.0/command/queue"
    assert response_topic("t") == "device/t/api/v1.0/response"
    assert event_topic("t") == "device/t/api/v1.0/event"
    assert cdr_topic("t") == "device/t/api/v1.0/cdr"
    assert status_topic("t") == "device/t/api/v1.0/status"


# ======================================================================================
# Field firmware (FIELD.md, issue 13): field commands, unsupported commands, status topic
# ======================================================================================


@pytest.fixture
async def field_simulator(
    private_broker: MosquittoBroker, token: str
) -> AsyncIterator[SimulatorRunner]:
    runner = SimulatorRunner(
        sim_config(token, profile=FirmwareProfile.FIELD),
        host=private_broker.host,
        port=private_broker.port,
        reconnect_interval=0.1,
    )
    await runner.start()
    yield runner
    await runner.stop()


def test_default_timeout_is_the_field_norm(transport: AiomqttTransport, token: str) -> None:
    assert DEFAULT_TIMEOUT == 15.0


async def test_extension_call_on_field_firmware(
    field_simulator: SimulatorRunner, client: SmartPbxClient
) -> None:
    with pytest.raises(PbxCommandFailedError, match="not in a call") as not_in_call:
        await client.extension_call("8001")
    assert not isinstance(not_in_call.value, PbxUnsupportedCommandError)

    dialled = await client.dial("8001", "8002")
    call = field_simulator.pbx.calls[dialled.callid or ""]
    info = await client.extension_call("8002")
    assert info == ExtensionCall(
        extension="8002",
        callid=dialled.callid,
        channel=call.destination,
        peer_channel=call.source,
        from_number="8001",
        to_number="8002",
        direction=CallDirection.OUTBOUND,
        direction_raw="Outbound",
    )
    # What the glue's Hang up button does with it: end exactly that extension's channel.
    assert info is not None
    assert info.channel is not None
    await client.hangup(channel=info.channel)
    assert field_simulator.pbx.calls == {}


async def test_field_commands_on_document_firmware_are_unsupported(
    simulator: SimulatorRunner, client: SmartPbxClient
) -> None:
    calls: list[tuple[str, ClientCall]] = [
        ("extcallinfo", lambda c: c.extension_call("8001")),
        ("atxfer", lambda c: c.attended_transfer("PJSIP/8001-00000001", "8003")),
        ("atxferoperate", lambda c: c.transfer_operate("PJSIP/8001-00000001", "complete")),
    ]
    for command, call in calls:
        with pytest.raises(PbxUnsupportedCommandError, match="does not support") as raised:
            await call(client)
        assert raised.value.command == command
        assert isinstance(raised.value, PbxCommandFailedError)  # handled as before
    # An empty queue is refused as a bad argument there, not as an unknown command.
    with pytest.raises(PbxCommandFailedError) as refused:
        await client.queue_pause(None, "8001", True)
    assert not isinstance(refused.value, PbxUnsupportedCommandError)


async def test_attended_transfer_completed_and_cancelled(
    field_simulator: SimulatorRunner, client: SmartPbxClient
) -> None:
    pbx = field_simulator.pbx
    dialled = await client.dial("8001", "8002", autoanswer=True)
    info = await client.extension_call("8002")
    assert info is not None
    assert info.channel is not None
    assert (await client.attended_transfer(info.channel, "8003")).success
    await eventually(lambda: pbx.extension_status("8003") == "InUse")
    assert (await client.transfer_operate(info.channel, TransferOperation.COMPLETE)).success
    (call,) = pbx.calls.values()
    assert (call.callid, call.caller_ext, call.callee_ext) == (dialled.callid, "8001", "8003")

    info = await client.extension_call("8003")
    assert info is not None
    assert info.channel is not None
    assert (await client.attended_transfer(info.channel, "8004")).success
    assert (await client.transfer_operate(info.channel, "cancel")).success
    assert list(pbx.calls) == [dialled.callid]
    with pytest.raises(PbxInvalidArgumentError, match="operation"):
        await client.transfer_operate(info.channel, "park")
    with pytest.raises(PbxInvalidArgumentError, match="channel"):
        await client.attended_transfer("8003", "8004")


async def test_field_command_wire_fields(responder: PbxResponder, client: SmartPbxClient) -> None:
    await client.extension_call("8001")
    await client.attended_transfer("PJSIP/8001-0000001a", "8003")
    await client.transfer_operate("PJSIP/8001-0000001a", TransferOperation.COMPLETE)
    await client.transfer_operate("PJSIP/8001-0000001a", TransferOperation.CANCEL)
    await client.queue_pause(None, "8004", True)
    await client.queue_pause("", "8004", False)
    await client.queue_pause("6666", "8004", True)
    await client.hangup("PJSIP/8001-0000001a")
    await client.hangup(channel="PJSIP/8001-0000001a")
    sent = [
        (sub, {k: v for k, v in c.items() if k != "request_id"}) for sub, c in responder.commands
    ]
    assert sent == [
        ("call", {"cmd": "extcallinfo", "extension": "8001"}),
        ("call", {"cmd": "atxfer", "channelid": "PJSIP/8001-0000001a", "tonumber": "8003"}),
        (
            "call",
            {"cmd": "atxferoperate", "channelid": "PJSIP/8001-0000001a", "operate": "complete"},
        ),
        ("call", {"cmd": "atxferoperate", "channelid": "PJSIP/8001-0000001a", "operate": "cancel"}),
        ("queue", {"cmd": "queue_paused", "queue": "", "extension": "8004", "paused": "yes"}),
        ("queue", {"cmd": "queue_paused", "queue": "", "extension": "8004", "paused": "no"}),
        ("queue", {"cmd": "queue_paused", "queue": "6666", "extension": "8004", "paused": "yes"}),
        ("call", {"cmd": "hangup", "callid": "PJSIP/8001-0000001a"}),
        ("call", {"cmd": "hangup", "channelid": "PJSIP/8001-0000001a"}),
    ]


async def test_commands_are_never_retained(
    private_broker: MosquittoBroker, client: SmartPbxClient, token: str
) -> None:
    with contextlib.suppress(PbxTimeoutError):
        await client.trunk_list(timeout=0.2)
    async with CommandSpy(private_broker.host, private_broker.port) as late:
        await asyncio.sleep(0.3)  # a retained command would be delivered on subscribe
        assert late.messages == []


async def test_queue_pause_in_every_queue_on_field_firmware(
    field_simulator: SimulatorRunner, client: SmartPbxClient
) -> None:
    pbx = field_simulator.pbx
    agent = next(n for n in pbx.extensions if any(q.member(n) for q in pbx.queues.values()))
    assert (await client.queue_pause(None, agent, True)).success
    for queue in await client.queue_list():
        status = await client.queue_status(queue.number)
        for member in status.members:
            if member.agent == agent:
                assert member.paused is True
                assert "paused" in member.raw


@pytest.mark.parametrize(
    ("message", "unsupported"),
    [
        ("unknown cmd extcallinfo", True),
        ("Unknown command", True),
        ("unsupported command atxfer", True),
        ("command not found", True),
        ("callee is not existing", False),
        ("cmd dial is not supported on command/conf", False),
        ("", False),
    ],
)
async def test_unknown_command_replies(
    responder: PbxResponder, client: SmartPbxClient, message: str, unsupported: bool
) -> None:
    responder.handler = failing_handler(message)
    with pytest.raises(PbxCommandFailedError) as failed:
        await client.extension_call("8001")
    assert isinstance(failed.value, PbxUnsupportedCommandError) is unsupported
    assert failed.value.command == "extcallinfo"


async def test_extcallinfo_reply_without_request_id_is_attributed_by_shape(
    responder: PbxResponder, client: SmartPbxClient
) -> None:
    responder.handler = silent_handler
    asking = asyncio.create_task(client.extension_call("8001"))
    waiting_dial = asyncio.create_task(client.dial("8002", "8003"))
    await responder.wait_commands(2)
    await responder.publish(
        "response",
        {"status": "Success", "callid": "1.1", "channelid": "PJSIP/8001-1", "from": "8001"},
    )
    info = await asking
    assert info is not None
    assert info.channel == "PJSIP/8001-1"
    waiting_dial.cancel()
    await asyncio.gather(waiting_dial, return_exceptions=True)


async def test_status_topic_and_call_events_from_field_firmware(
    private_broker: MosquittoBroker, client: SmartPbxClient, token: str
) -> None:
    log = EventLog()
    client.add_event_listener(log)
    runner = SimulatorRunner(
        sim_config(token, profile=FirmwareProfile.FIELD),
        host=private_broker.host,
        port=private_broker.port,
    )
    await runner.start()
    await eventually(lambda: any(isinstance(e, DeviceStatusEvent) for e in log.events))
    online = next(e for e in log.events if isinstance(e, DeviceStatusEvent))
    assert (online.status, online.online) == (DeviceStatus.ONLINE, True)

    dialled = await client.dial("8001", "8002", autoanswer=True)
    await client.hangup(dialled.callid)
    await eventually(lambda: any(isinstance(e, HangupEvent) for e in log.events))
    statuses = [e for e in log.events if isinstance(e, CallStatusEvent)]
    assert [c.callid for c in statuses[0].calls] == [dialled.callid]
    assert statuses[0].calls[0].state == "Up"
    assert statuses[0].calls[0].direction_kind is CallDirection.OUTBOUND
    await eventually(
        lambda: any(isinstance(e, CallStatusEvent) and not e.calls for e in log.events)
    )
    hangup = next(e for e in log.events if isinstance(e, HangupEvent))
    assert hangup.callid == dialled.callid

    await runner.stop()
    await eventually(
        lambda: any(isinstance(e, DeviceStatusEvent) and e.online is False for e in log.events)
    )


async def test_document_firmware_sends_no_status_topic(
    private_broker: MosquittoBroker, client: SmartPbxClient, simulator: SimulatorRunner
) -> None:
    log = EventLog()
    client.add_event_listener(log)
    dialled = await client.dial("8001", "8002", autoanswer=True)
    await client.hangup(dialled.callid)
    await log.wait_for(3)  # extension_status events
    await asyncio.sleep(0.2)
    assert not [e for e in log.events if isinstance(e, UnknownEvent)]


async def test_integration_helpers_start_the_simulator_with_the_test_profile(
    real_broker: MosquittoBroker, sim_profile: FirmwareProfile
) -> None:
    runner = await start_simulator(real_broker)
    try:
        assert runner.pbx.config.profile is sim_profile
    finally:
        await runner.stop()
    chosen = await start_simulator(real_broker, replace(SMALL_PBX, profile=FirmwareProfile.FIELD))
    try:
        assert chosen.pbx.config.profile is FirmwareProfile.FIELD
    finally:
        await chosen.stop()

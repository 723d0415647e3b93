"""AiomqttTransport against a real Mosquitto: dispatch, sessions, reconnects, TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
import ipaddress
import logging
from pathlib import Path
import secrets
import socket
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest

from custom_components.smartpbx.pbx import (
    AiomqttTransport,
    PbxAuthError,
    PbxConnectionError,
    PbxInvalidArgumentError,
    PbxNotConnectedError,
)
from custom_components.smartpbx.pbx.aiomqtt_transport import (
    MQTT_LOGGER,
    topic_matches,
    validate_topic_filter,
)

from .broker import MosquittoBroker, free_port

TRANSPORT_LOGGER = "custom_components.smartpbx.pbx.aiomqtt_transport"


@pytest.fixture(autouse=True)
def _loopback_sockets(socket_enabled: None) -> None:
    """Sockets on (phcc re-disables them per test; 127.0.0.1 stays the only allowed host)."""


def make_transport(broker: MosquittoBroker, **kwargs: Any) -> AiomqttTransport:
    kwargs.setdefault("client_id", f"ha-{secrets.token_hex(6)}")
    return AiomqttTransport(
        broker.host, broker.port, reconnect_min=0.05, reconnect_max=0.2, **kwargs
    )


@pytest.fixture
async def transport(private_broker: MosquittoBroker) -> AsyncIterator[AiomqttTransport]:
    made = make_transport(private_broker)
    await made.connect()
    yield made
    await made.close()


class Inbox:
    """A message callback that records (topic, payload)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    async def wait_for(self, count: int, limit: float = 5.0) -> list[tuple[str, bytes]]:
        await eventually(lambda: len(self.messages) >= count, limit)
        return self.messages


async def eventually(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, polling the event loop."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110  # conditions set by MQTT callbacks
            await asyncio.sleep(0.01)


async def nothing_left_running(before: set[asyncio.Task[Any]]) -> None:
    """No task of the transport (or of aiomqtt's, e.g. its keepalive) outlives close().

    aiomqtt cancels its keepalive task when the socket closes without waiting for it,
    so it may take a turn or two of the loop to finish.
    """
    await eventually(lambda: not (asyncio.all_tasks() - before), limit=1.0)


# --- topic filters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("device/t/api/v1.0/+", "device/t/api/v1.0/event", True),
        ("device/t/api/v1.0/+", "device/t/api/v1.0/command/call", False),
        ("device/+/api/v1.0/command/#", "device/x/api/v1.0/command/call", True),
        ("device/+/api/v1.0/command/#", "device/x/api/v1.0/command", True),
        ("device/+/api/v1.0/command/#", "device/x/api/v1.0/event", False),
        ("#", "anything/at/all", True),
        ("#", "$SYS/broker/uptime", False),
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("a/+/c", "a//c", True),
        ("+", "a", True),
        ("+", "a/b", False),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize("topic_filter", ["a/b", "a/+/c", "#", "a/#", "+/+", "$SYS/#"])
def test_valid_topic_filters(topic_filter: str) -> None:
    assert validate_topic_filter(topic_filter) == topic_filter


@pytest.mark.parametrize("topic_filter", ["", "a/#/c", "a#", "a/b+", "+a/b", "a\x00b", 5])
def test_invalid_topic_filters(topic_filter: Any) -> None:
    with pytest.raises(PbxInvalidArgumentError, match="topic_filter"):
        validate_topic_filter(topic_filter)


# --- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"host": ""}, "host"),
        ({"host": "  "}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"keepalive": 0}, "keepalive"),
        ({"reconnect_min": 0}, "reconnect_min"),
        ({"reconnect_min": 5, "reconnect_max": 1}, "reconnect_min"),
        ({"reconnect_max": float("inf")}, "reconnect_max"),
        ({"client_id": ""}, "client_id"),
    ],
)
def test_constructor_validation(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"host": "127.0.0.1"} | kwargs
    with pytest.raises(PbxInvalidArgumentError, match=f"^{field}"):
        AiomqttTransport(**arguments)


def test_session_policy_and_repr() -> None:
    anonymous = AiomqttTransport("127.0.0.1", password="hunter2")
    assert anonymous.client_id.startswith("smartpbx-")
    assert anonymous.clean_session  # a random id must not leave a session behind
    assert "hunter2" not in repr(anonymous)
    assert AiomqttTransport("127.0.0.1").client_id != anonymous.client_id
    stable = AiomqttTransport("127.0.0.1", client_id="ha-entry-1")
    assert stable.client_id == "ha-entry-1"
    assert not stable.clean_session
    assert AiomqttTransport("127.0.0.1", client_id="x", clean_session=True).clean_session


def test_from_settings_as_a_config_entry_stores_them() -> None:
    settings = {"host": " 127.0.0.1 ", "port": 8883, "username": "", "password": "hunter2"}
    stable = AiomqttTransport.from_settings(settings, client_id="ha-entry-1")
    assert (stable.client_id, stable.clean_session, stable.connected) == (
        "ha-entry-1",
        False,
        False,
    )
    assert "127.0.0.1:8883" in repr(stable)
    assert "hunter2" not in repr(stable)
    assert AiomqttTransport.from_settings({"host": "127.0.0.1"}).clean_session


# --- subscriptions and dispatch ----------------------------------------------------------


async def test_dispatch_to_every_matching_subscription(
    private_broker: MosquittoBroker, transport: AiomqttTransport
) -> None:
    exact, same_filter, wildcard, everything = Inbox(), Inbox(), Inbox(), Inbox()
    await transport.subscribe("device/t/api/v1.0/event", exact)
    await transport.subscribe("device/t/api/v1.0/event", same_filter, qos=0)
    await transport.subscribe("device/+/api/v1.0/+", wildcard)
    await transport.subscribe("device/#", everything)

    await transport.publish("device/t/api/v1.0/event", b"1")
    await transport.publish("device/u/api/v1.0/cdr", b"2")
    await transport.publish("device/t/api/v1.0/command/call", b"3")
    await everything.wait_for(3)
    assert exact.messages == [("device/t/api/v1.0/event", b"1")]
    assert same_filter.messages == exact.messages
    assert wildcard.messages == [("device/t/api/v1.0/event", b"1"), ("device/u/api/v1.0/cdr", b"2")]
    assert [p for _, p in everything.messages] == [b"1", b"2", b"3"]


async def test_unsubscribe_one_keeps_the_other(
    private_broker: MosquittoBroker, transport: AiomqttTransport
) -> None:
    first, second = Inbox(), Inbox()
    remove_first = await transport.subscribe("a/b", first)
    remove_second = await transport.subscribe("a/b", second)
    remove_first()
    remove_first()  # twice is harmless
    await transport.publish("a/b", b"x")
    await second.wait_for(1)
    assert first.messages == []

    remove_second()  # the last one: the broker subscription goes too
    await asyncio.sleep(0.05)
    await transport.publish("a/b", b"y")
    await asyncio.sleep(0.1)
    assert second.messages == [("a/b", b"x")]


async def test_unsubscribe_then_subscribe_again_stays_subscribed(
    transport: AiomqttTransport,
) -> None:
    """The broker must see UNSUBSCRIBE before the new SUBSCRIBE, not after it."""
    first, second = Inbox(), Inbox()
    remove = await transport.subscribe("again/t", first)
    remove()
    await transport.subscribe("again/t", second)
    await asyncio.sleep(0.2)  # room for a late UNSUBSCRIBE to reach the broker
    await transport.publish("again/t", b"still here")
    assert await second.wait_for(1) == [("again/t", b"still here")]
    assert first.messages == []


async def test_subscribe_while_the_unsubscribe_is_on_its_way(
    transport: AiomqttTransport,
) -> None:
    remove = await transport.subscribe("again/u", Inbox())
    remove()
    await asyncio.sleep(0)  # the UNSUBSCRIBE is sent, its UNSUBACK not yet in
    inbox = Inbox()
    await transport.subscribe("again/u", inbox)
    await transport.publish("again/u", b"x")
    assert await inbox.wait_for(1) == [("again/u", b"x")]


async def test_a_burst_arrives_complete_and_in_order(
    private_broker: MosquittoBroker, transport: AiomqttTransport
) -> None:
    """Messages that pile up while the loop is busy are dispatched in arrival order."""
    inbox = Inbox()
    await transport.subscribe("burst/t", inbox, qos=1)
    publisher = make_transport(private_broker)
    await publisher.connect()
    for n in range(2000):
        await publisher.publish("burst/t", str(n).encode(), qos=0)
    await inbox.wait_for(2000)
    assert [int(payload) for _, payload in inbox.messages] == list(range(2000))
    await publisher.close()


async def test_callback_errors_are_isolated(
    transport: AiomqttTransport, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(topic: str, payload: bytes) -> None:
        raise RuntimeError("callback bug")

    inbox = Inbox()
    await transport.subscribe("x/#", broken)
    await transport.subscribe("x/#", inbox)
    await transport.publish("x/1", b"a")
    await transport.publish("x/2", b"b")
    await inbox.wait_for(2)
    assert caplog.text.count("Error in an MQTT message callback") == 2


async def test_many_topics_keep_the_match_cache_bounded(transport: AiomqttTransport) -> None:
    inbox = Inbox()
    await transport.subscribe("many/+", inbox)
    for n in range(1100):
        transport._dispatch(f"many/{n}", b"")
    assert len(inbox.messages) == 1100
    assert len(transport._match_cache) <= 1024


async def test_subscribe_arguments_are_checked(transport: AiomqttTransport) -> None:
    with pytest.raises(PbxInvalidArgumentError, match="topic_filter"):
        await transport.subscribe("a/#/b", Inbox())
    with pytest.raises(PbxInvalidArgumentError, match="qos"):
        await transport.subscribe("a/b", Inbox(), qos=3)


async def test_subscribe_and_unsubscribe_failures_wait_for_the_next_connection(
    transport: AiomqttTransport, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger=TRANSPORT_LOGGER)
    mqtt = transport._client
    assert mqtt is not None

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise aiomqtt.MqttError("broker said no")

    monkeypatch.setattr(mqtt, "subscribe", refuse)
    monkeypatch.setattr(mqtt, "unsubscribe", refuse)
    remove = await transport.subscribe("a/b", Inbox())
    assert "will retry on reconnect" in caplog.text
    remove()
    await eventually(lambda: "Unsubscribing failed" in caplog.text)


# --- publish -----------------------------------------------------------------------------


async def test_publish_needs_a_connection(private_broker: MosquittoBroker) -> None:
    transport = make_transport(private_broker)
    with pytest.raises(PbxNotConnectedError):
        await transport.publish("a/b", b"x")
    await transport.connect()
    await transport.publish("a/b", b"x")
    await transport.close()
    with pytest.raises(PbxNotConnectedError):
        await transport.publish("a/b", b"x")


async def test_publish_failure_is_a_connection_error(
    transport: AiomqttTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> None:
        raise aiomqtt.MqttCodeError(4, "Could not publish message")

    monkeypatch.setattr(transport._client, "publish", fail)
    with pytest.raises(PbxConnectionError, match="publishing"):
        await transport.publish("a/b", b"x")


def _sockets_to(port: int) -> list[socket.socket]:
    """This process's TCP sockets connected to 127.0.0.1:port (duplicates: close them)."""
    found = []
    for fd_path in list(Path("/proc/self/fd").iterdir()):  # a list: fromfd() adds fds
        try:
            fd = int(fd_path.name)
            if not fd_path.readlink().name.startswith("socket:"):
                continue
            sock = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)
        except (OSError, ValueError):
            continue
        try:
            peer = sock.getpeername()
        except OSError:
            peer = None
        if peer == ("127.0.0.1", port):
            found.append(sock)
        else:
            sock.close()
    return found


async def test_tcp_nodelay_is_set(
    private_broker: MosquittoBroker, transport: AiomqttTransport
) -> None:
    sockets = _sockets_to(private_broker.port)
    try:
        # One connection (its descriptor may be open more than once).
        assert len({sock.getsockname() for sock in sockets}) == 1
        assert all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


# --- connecting --------------------------------------------------------------------------


async def test_connect_is_idempotent_and_checks_its_timeout(
    private_broker: MosquittoBroker,
) -> None:
    transport = make_transport(private_broker)
    with pytest.raises(PbxInvalidArgumentError, match="timeout"):
        await transport.connect(timeout=0)
    await transport.connect()
    await transport.connect()
    assert transport.connected
    await transport.close()
    assert not transport.connected


async def test_subscriptions_made_before_connect(private_broker: MosquittoBroker) -> None:
    transport = make_transport(private_broker)
    inbox = Inbox()
    await transport.subscribe("early/+", inbox)
    await transport.connect()
    await transport.publish("early/1", b"x")
    await inbox.wait_for(1)
    await transport.close()


async def test_connection_refused_for_other_reasons(
    private_broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(self: aiomqtt.Client) -> None:
        raise MqttConnectError(3)  # server unavailable

    monkeypatch.setattr(aiomqtt.Client, "__aenter__", refuse)
    transport = make_transport(private_broker)
    with pytest.raises(PbxConnectionError, match="refused the connection") as refused:
        await transport.connect()
    assert not isinstance(refused.value, PbxAuthError)
    await transport.close()


async def test_subscribe_failure_while_connecting(
    private_broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = make_transport(private_broker)
    await transport.subscribe("a/b", Inbox())

    async def refuse(client: aiomqtt.Client) -> None:
        raise aiomqtt.MqttError("no subscriptions today")

    monkeypatch.setattr(transport, "_subscribe_all", refuse)
    with pytest.raises(PbxConnectionError, match="subscribing"):
        await transport.connect()
    assert not transport.connected
    await transport.close()


async def test_cancelling_connect_while_it_subscribes(
    private_broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = asyncio.all_tasks()
    transport = make_transport(private_broker)
    subscribing = asyncio.Event()

    async def never_acknowledged(client: aiomqtt.Client) -> None:
        subscribing.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(transport, "_subscribe_all", never_acknowledged)
    connecting = asyncio.create_task(transport.connect())
    await subscribing.wait()
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert not transport.connected
    await transport.close()
    await nothing_left_running(before)


async def test_close_while_connecting_ends_the_connect(
    private_broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = asyncio.all_tasks()
    transport = make_transport(private_broker)
    subscribing = asyncio.Event()

    async def never_acknowledged(client: aiomqtt.Client) -> None:
        subscribing.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(transport, "_subscribe_all", never_acknowledged)
    connecting = asyncio.create_task(transport.connect())
    await subscribing.wait()
    await transport.close()
    with pytest.raises(PbxConnectionError, match="closed"):
        async with asyncio.timeout(5):  # it used to wait forever
            await connecting
    assert not transport.connected
    await nothing_left_running(before)


async def test_connection_lost_while_subscribing_at_connect(
    private_broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = make_transport(private_broker)

    async def broker_goes_away(client: aiomqtt.Client) -> None:
        private_broker.stop()
        await asyncio.Event().wait()

    monkeypatch.setattr(transport, "_subscribe_all", broker_goes_away)
    with pytest.raises(PbxConnectionError, match="closed the connection"):
        await transport.connect()
    assert not transport.connected
    await transport.close()
    with pytest.raises(PbxConnectionError, match="closed"):
        await transport.connect()


async def test_an_unexpected_error_while_connecting_is_raised(
    private_broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = make_transport(private_broker)

    async def bug(client: aiomqtt.Client) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(transport, "_subscribe_all", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        await transport.connect()
    assert not transport.connected
    await transport.close()


async def test_cancelling_connect_undoes_the_attempt(private_broker: MosquittoBroker) -> None:
    before = asyncio.all_tasks()
    transport = make_transport(private_broker)
    connecting = asyncio.create_task(transport.connect())
    await asyncio.sleep(0)  # connect() is now waiting on the worker thread
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert not transport.connected
    await transport.close()
    await nothing_left_running(before)


# --- sessions ----------------------------------------------------------------------------


async def test_persistent_session_delivers_what_was_published_while_away(
    private_broker: MosquittoBroker,
) -> None:
    client_id = f"ha-{secrets.token_hex(6)}"
    first = make_transport(private_broker, client_id=client_id)
    await first.subscribe("pbx/response", Inbox(), qos=1)
    await first.connect()
    await first.close()

    publisher = make_transport(private_broker)
    await publisher.connect()
    await publisher.publish("pbx/response", b"while you were away", qos=1)
    await publisher.close()

    # Subscribe before connecting so that the queued message has somewhere to go.
    second = make_transport(private_broker, client_id=client_id)
    inbox = Inbox()
    await second.subscribe("pbx/response", inbox, qos=1)
    await second.connect()
    assert await inbox.wait_for(1) == [("pbx/response", b"while you were away")]
    await second.close()


async def test_discard_session_leaves_nothing_on_the_broker(
    private_broker: MosquittoBroker,
) -> None:
    client_id = f"ha-{secrets.token_hex(6)}"
    old = make_transport(private_broker, client_id=client_id)
    await old.subscribe("pbx/event", Inbox(), qos=1)
    await old.connect()
    await old.close()

    await make_transport(private_broker, client_id=client_id).discard_session()

    publisher = make_transport(private_broker)
    await publisher.connect()
    await publisher.publish("pbx/event", b"nobody should get this", qos=1)
    await publisher.close()
    # The same id again with a persistent session: nothing was queued for it (a kept
    # session would deliver the message right after CONNACK, as in the test above).
    again = make_transport(private_broker, client_id=client_id)
    inbox = Inbox()
    await again.subscribe("pbx/event", inbox, qos=1)
    await again.connect()
    await again.publish("pbx/event", b"after", qos=1)
    await inbox.wait_for(1)
    await asyncio.sleep(0.2)
    assert inbox.messages == [("pbx/event", b"after")]
    await again.close()


async def test_discard_session_reports_an_unreachable_broker() -> None:
    transport = AiomqttTransport("127.0.0.1", free_port(), client_id="ha-gone")
    with pytest.raises(PbxConnectionError):
        await transport.discard_session(timeout=2)
    with pytest.raises(PbxInvalidArgumentError, match="timeout"):
        await transport.discard_session(timeout=0)


async def test_clean_session_without_a_stable_id(private_broker: MosquittoBroker) -> None:
    first = AiomqttTransport(private_broker.host, private_broker.port)
    await first.subscribe("pbx/response", Inbox(), qos=1)
    await first.connect()
    await first.close()
    assert first.clean_session


# --- reconnecting ------------------------------------------------------------------------


async def test_reconnect_with_backoff_resubscribes_everything(
    private_broker: MosquittoBroker, transport: AiomqttTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=TRANSPORT_LOGGER)
    states: list[bool] = []
    remove_listener = transport.add_connection_listener(states.append)

    def broken_listener(connected: bool) -> None:
        raise RuntimeError("listener bug")

    transport.add_connection_listener(broken_listener)
    exact, wildcard = Inbox(), Inbox()
    await transport.subscribe("r/exact", exact)
    await transport.subscribe("r/+/deep/#", wildcard)

    private_broker.stop()
    await eventually(lambda: states == [False])
    await asyncio.sleep(0.4)  # several failed attempts with growing delays
    assert "Reconnecting to the MQTT broker failed" in caplog.text
    private_broker.start()
    await eventually(lambda: states == [False, True])
    assert "Reconnected to the MQTT broker" in caplog.text
    assert caplog.text.count("Error in an MQTT connection listener") == 2

    await transport.publish("r/exact", b"1")
    await transport.publish("r/x/deep/er", b"2")
    await exact.wait_for(1)
    await wildcard.wait_for(1)
    remove_listener()
    remove_listener()
    await transport.close()
    assert states == [False, True]


async def test_a_dropped_connection_is_reported_once_without_paho_errors(
    private_broker: MosquittoBroker,
    transport: AiomqttTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The transport's own warning reports the loss, once; paho's lines (among them an
    ERROR for a socket the peer resets) stay out of the log unless asked for."""
    caplog.set_level(logging.DEBUG)
    private_broker.stop()
    await eventually(lambda: not transport.connected)
    private_broker.start()
    await eventually(lambda: transport.connected)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    lost = [r for r in caplog.records if r.getMessage().startswith("Lost the connection")]
    assert len(lost) == 1
    assert lost[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.name == MQTT_LOGGER.name]

    # paho's own lines are one logger level away.
    MQTT_LOGGER.setLevel(logging.DEBUG)
    try:
        private_broker.stop()
        private_broker.start()
        await eventually(lambda: any(r.name == MQTT_LOGGER.name for r in caplog.records))
    finally:
        MQTT_LOGGER.setLevel(logging.CRITICAL)


async def test_refused_credentials_at_a_reconnect_stop_retrying_and_are_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = open_broker(users={"pbx": "secret"})
    transport = AiomqttTransport(
        first.host,
        first.port,
        username="pbx",
        password="secret",
        client_id="ha-auth",
        reconnect_min=0.05,
        reconnect_max=0.1,
    )
    refusals: list[PbxAuthError] = []
    transport.add_auth_failure_listener(refusals.append)

    def broken_listener(error: PbxAuthError) -> None:
        raise RuntimeError("listener bug")

    remove_broken = transport.add_auth_failure_listener(broken_listener)
    await transport.connect()
    assert transport.auth_error is None
    first.close()
    changed = open_broker(users={"pbx": "changed"}, port=first.port)
    try:
        await eventually(lambda: bool(refusals))
        assert isinstance(transport.auth_error, PbxAuthError)
        assert refusals == [transport.auth_error]
        assert not transport.connected
        assert "Not reconnecting until the credentials are updated" in caplog.text
        assert "Error in an MQTT auth failure listener" in caplog.text
        assert "secret" not in caplog.text
        remove_broken()

        # Stopped: with the old password accepted again it does not come back by itself
        # (it would within reconnect_max if it were still retrying)...
        changed.close()
        restored = open_broker(users={"pbx": "secret"}, port=first.port)
        await asyncio.sleep(0.5)
        assert not transport.connected
        assert len(refusals) == 1
        # ...until its owner, with the credentials fixed, connects it again.
        await transport.connect()
        assert transport.connected
        assert transport.auth_error is None
        await transport.close()
        restored.close()
    finally:
        await transport.close()
        changed.close()


async def test_refused_credentials_at_the_first_connect_raise() -> None:
    broker = open_broker(users={"pbx": "secret"})
    transport = AiomqttTransport(broker.host, broker.port, username="pbx", password="wrong")
    refusals: list[PbxAuthError] = []
    transport.add_auth_failure_listener(refusals.append)
    try:
        with pytest.raises(PbxAuthError):
            await transport.connect()
        assert refusals == []
        assert not transport.connected
    finally:
        await transport.close()
        broker.close()


async def test_resubscribe_failure_after_reconnect_retries(
    private_broker: MosquittoBroker,
    transport: AiomqttTransport,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger=TRANSPORT_LOGGER)
    inbox = Inbox()
    await transport.subscribe("s/t", inbox)
    original = transport._subscribe_all
    failures = [1]

    async def flaky(client: aiomqtt.Client) -> None:
        if failures:
            failures.pop()
            raise aiomqtt.MqttError("subscribe lost")
        await original(client)

    monkeypatch.setattr(transport, "_subscribe_all", flaky)
    private_broker.stop()
    await eventually(lambda: not transport.connected)
    private_broker.start()
    await eventually(lambda: transport.connected)
    assert "subscribing at the MQTT broker failed: subscribe lost" in caplog.text
    await transport.publish("s/t", b"ok")
    await inbox.wait_for(1)


async def test_close_during_reconnect(private_broker: MosquittoBroker) -> None:
    before = asyncio.all_tasks()
    transport = make_transport(private_broker)
    await transport.connect()
    private_broker.stop()
    await eventually(lambda: not transport.connected)
    await asyncio.sleep(0.1)
    await transport.close()
    await nothing_left_running(before)


# --- TLS ---------------------------------------------------------------------------------


class TlsBroker(MosquittoBroker):
    """Mosquitto with a TLS listener and a certificate for 127.0.0.1 from our own CA."""

    def __init__(self) -> None:
        super().__init__()
        self.ca_file = self._dir / "ca.pem"
        _write_certificates(self._dir)
        config = self._dir / "mosquitto.conf"
        config.write_text(
            config.read_text()
            + f"cafile {self._dir / 'ca.pem'}\n"
            + f"certfile {self._dir / 'server.pem'}\n"
            + f"keyfile {self._dir / 'server.key'}\n"
        )
        # Mosquitto started as root reads its files as the mosquitto user.
        self._dir.chmod(0o755)


def _write_certificates(directory: Path) -> None:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smartpbx test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    for path in directory.iterdir():
        path.chmod(0o644)


@pytest.fixture
def tls_broker() -> Iterator[TlsBroker]:
    made = TlsBroker()
    made.start()
    yield made
    made.close()


async def test_tls_with_our_ca(tls_broker: TlsBroker) -> None:
    transport = AiomqttTransport(
        tls_broker.host, tls_broker.port, tls=True, tls_ca_file=str(tls_broker.ca_file)
    )
    inbox = Inbox()
    await transport.subscribe("tls/t", inbox)
    await transport.connect(timeout=5)
    await transport.publish("tls/t", b"secure")
    await inbox.wait_for(1)
    await transport.close()


async def test_tls_insecure_skips_verification(tls_broker: TlsBroker) -> None:
    transport = AiomqttTransport(tls_broker.host, tls_broker.port, tls_insecure=True)
    await transport.connect(timeout=5)
    assert transport.connected
    await transport.close()


async def test_tls_with_an_unknown_ca_is_refused(tls_broker: TlsBroker) -> None:
    transport = AiomqttTransport(tls_broker.host, tls_broker.port, tls=True)
    with pytest.raises(PbxConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await transport.connect(timeout=5)
    await transport.close()


async def test_from_settings_verifies_the_certificate_unless_told_not_to(
    tls_broker: TlsBroker,
) -> None:
    settings = {"host": tls_broker.host, "port": tls_broker.port, "tls": True}
    verifying = AiomqttTransport.from_settings(settings)
    with pytest.raises(PbxConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await verifying.connect(timeout=5)
    await verifying.close()
    insecure = AiomqttTransport.from_settings(settings | {"verify_ssl": False})
    await insecure.connect(timeout=5)
    assert insecure.connected
    await insecure.close()


def open_broker(users: dict[str, str] | None = None, port: int | None = None) -> MosquittoBroker:
    """A started broker; with users, readable by the mosquitto user (see test_client)."""
    made = MosquittoBroker(users=users, port=port)
    made._dir.chmod(0o755)
    made.start()
    return made

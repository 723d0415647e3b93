"""A Transport over aiomqtt: a connection of our own to the broker the PBX uses.

Connection life cycle
    :meth:`AiomqttTransport.connect` makes the first connection and raises PbxAuthError
    when the broker refuses the credentials, PbxConnectionError when it cannot be reached.
    From then on a background task reads messages and, when the connection drops,
    reconnects with exponential backoff (``reconnect_min`` doubling up to
    ``reconnect_max``, each wait randomised to between half and all of it so that many
    clients do not reconnect in lockstep), re-subscribes every filter and tells the
    connection listeners. :meth:`AiomqttTransport.close` stops all of it and leaves no
    task behind.

Sessions
    With ``clean_session=False`` the broker keeps our subscriptions and queues QoS 1
    messages for us while we are briefly away, so a reply or event the PBX publishes
    during a reconnect is not lost. That needs a client id that stays the same: pass a
    stable ``client_id`` (e.g. derived from the config entry). Without one a random id is
    generated and the session is made clean, because a persistent session under an id
    nobody will use again stays on the broker, queueing messages, forever.

Dispatch
    Each incoming message goes, as soon as paho has read it (no queue in between), to
    every callback whose filter matches its topic (MQTT wildcard rules). The match result
    per topic is cached (the PBX publishes on a handful of topics), so dispatch is one
    dictionary lookup; the cache is reset whenever the subscriptions change.

Nothing here logs the password; topics (which contain the PBX token) are never logged.
"""

# ruff: noqa: ASYNC109  # connect(timeout) is aiomqtt's CONNACK wait: a connect half-done in
# its worker thread must not be abandoned by an asyncio.timeout around it.

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
import logging
import math
import random
import secrets
import socket
import ssl
import threading
from typing import Any, Final

import aiomqtt
from aiomqtt.types import PahoSocket
import paho.mqtt.client as paho

from .errors import PbxAuthError, PbxConnectionError, PbxInvalidArgumentError, PbxNotConnectedError
from .ratelimit import RateLimitedWarnings
from .transport import ConnectionCallback, MessageCallback, Unsubscribe

_LOGGER = logging.getLogger(__name__)


class _PahoAtDebug(logging.Filter):
    """paho's own log lines at debug level; aiomqtt's warnings keep theirs.

    paho reports a dropped socket at ERROR ("failed to receive on socket: [Errno 104]
    Connection reset by peer"), though it is only the start of a reconnect, which this
    transport reports once (rate-limited) itself. paho logs through one function,
    ``_easy_log``; aiomqtt's own lines, on the same logger, are left alone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.funcName != "_easy_log":
            return True
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        return _PAHO_LOGGER.isEnabledFor(logging.DEBUG)


_PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")
_PAHO_LOGGER.addFilter(_PahoAtDebug())


class _Client(aiomqtt.Client):
    """aiomqtt's client, dispatching messages as paho reads them, with a safer writer.

    Messages: aiomqtt queues each message paho reads and hands it out through an async
    iterator, which costs a task and a future per message (about a third of the cost of
    an event in a burst). paho's ``on_message`` already runs on the event loop (aiomqtt
    reads the socket from a loop reader callback), so each message goes straight to
    ``message_handler`` instead, in the order it arrived.

    Writer: paho asks for the socket to be watched for writability whenever it has
    something to send, e.g. the PUBACK of every QoS 1 message. aiomqtt hands that to the
    loop with ``call_soon_threadsafe`` and ``add_writer`` each time: a wake-up of the loop
    and two selector changes per message. Asked on the loop's own thread (always, except
    while connecting), this writes on the loop's next turn instead, and watches the
    socket only if its buffer is full.

    aiomqtt's registration also outlives the socket: when the connection drops in between
    (a publish racing a broker restart) the loop is given a closed file descriptor and
    logs "Exception in callback add_writer: Bad file descriptor" at ERROR level, or, were
    the number reused meanwhile, watches another socket. Nothing is written or watched
    here once paho has let go of the socket; the reader reports the lost connection.
    """

    def __init__(self, *args: Any, message_handler: MessageCallback, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._message_handler = message_handler
        self._loop_thread = threading.get_ident()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # MQTT requires UTF-8 topics; nothing of ours can match
            return
        self._message_handler(topic, message.payload)

    def _on_socket_register_write(
        self, client: paho.Client, userdata: Any, sock: PahoSocket
    ) -> None:
        def write() -> None:
            try:
                client.loop_write()
            except Exception as err:  # a broken connection: end the session with it
                if not self._disconnected.done():
                    self._disconnected.set_exception(err)

        def watch() -> None:
            if client.socket() is sock:
                self._loop.add_writer(sock.fileno(), write)

        def write_soon() -> None:
            if client.socket() is not sock:
                return
            write()
            # paho still counts the socket as watched (it is not told otherwise until
            # everything is written), so it will not ask again: watch it now.
            if client.want_write():
                watch()

        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(write_soon)
        else:
            self._loop.call_soon_threadsafe(watch)


DEFAULT_CONNECT_TIMEOUT: Final = 10.0
OPERATION_TIMEOUT: Final = 10.0
"""Longest wait for a SUBACK, PUBACK or graceful disconnect."""
_MATCH_CACHE_SIZE: Final = 1024
PENDING_PUBLISH_WARNING: Final = 4096

# CONNACK refusals that mean "wrong credentials": MQTT 3.1.1 return codes 4 (bad user
# name or password) and 5 (not authorised), and the MQTT 5 reason codes paho maps them to
# (0x86, 0x87), plus 0x8C (bad authentication method).
_AUTH_REFUSALS: Final = frozenset({4, 5, 0x86, 0x87, 0x8C})


def validate_topic_filter(topic_filter: str) -> str:
    """Check MQTT filter syntax: ``+`` fills a whole level, ``#`` only the last one."""
    if not isinstance(topic_filter, str) or not topic_filter:
        raise PbxInvalidArgumentError("topic_filter", "must be a non-empty string")
    if "\x00" in topic_filter or len(topic_filter.encode()) > 65535:
        raise PbxInvalidArgumentError("topic_filter", "is not a valid MQTT topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise PbxInvalidArgumentError("topic_filter", "'#' must be the whole last level")
        if "+" in level and level != "+":
            raise PbxInvalidArgumentError("topic_filter", "'+' must be a whole level")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` by MQTT's wildcard rules."""
    return _levels_match(tuple(topic_filter.split("/")), topic.split("/"))


def _levels_match(filter_levels: tuple[str, ...], topic_levels: list[str]) -> bool:
    # Topics starting with $ (broker internals) never match a leading wildcard.
    if topic_levels[0].startswith("$") and filter_levels[0] in {"+", "#"}:
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level not in {"+", topic_levels[index]}:
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(eq=False, slots=True)
class _Subscription:
    """One subscribe() call; compared by identity so each can be removed on its own."""

    topic_filter: str
    callback: MessageCallback
    qos: int
    levels: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.levels = tuple(self.topic_filter.split("/"))


def _is_auth_refusal(error: aiomqtt.MqttCodeError) -> bool:
    code = error.rc
    value = code if isinstance(code, int) else getattr(code, "value", None)
    return value in _AUTH_REFUSALS


class AiomqttTransport:
    """An MQTT connection that survives broker restarts, for :class:`SmartPbxClient`."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        tls_ca_file: str | None = None,
        tls_insecure: bool = False,
        client_id: str | None = None,
        keepalive: int = 60,
        clean_session: bool = False,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise PbxInvalidArgumentError("host", "must not be empty")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise PbxInvalidArgumentError("port", "must be 1-65535")
        if isinstance(keepalive, bool) or not isinstance(keepalive, int) or keepalive < 1:
            raise PbxInvalidArgumentError("keepalive", "must be a positive number of seconds")
        if not (math.isfinite(reconnect_min) and 0 < reconnect_min <= reconnect_max):
            raise PbxInvalidArgumentError("reconnect_min", "must be > 0 and <= reconnect_max")
        if not math.isfinite(reconnect_max):
            raise PbxInvalidArgumentError("reconnect_max", "must be finite")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise PbxInvalidArgumentError("client_id", "must be a non-empty string")

        self._host = host.strip()
        self._port = port
        self._username = username
        self._password = password
        self._tls = tls or tls_ca_file is not None or tls_insecure
        self._tls_ca_file = tls_ca_file
        self._tls_insecure = tls_insecure
        self._client_id = client_id or f"smartpbx-{secrets.token_hex(8)}"
        # A persistent session is only safe under an id that will be used again.
        self._clean_session = clean_session or client_id is None
        self._keepalive = keepalive
        self._reconnect_min = float(reconnect_min)
        self._reconnect_max = float(reconnect_max)

        self._subscriptions: dict[str, list[_Subscription]] = {}
        self._match_cache: dict[str, tuple[MessageCallback, ...]] = {}
        self._connection_listeners: list[ConnectionCallback] = []
        self._client: aiomqtt.Client | None = None
        """The connected (or, during a reconnect, connecting) aiomqtt client."""
        self._tls_context: ssl.SSLContext | None = None
        self._connected = False
        self._runner: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._warnings = RateLimitedWarnings(_LOGGER)

    def __repr__(self) -> str:
        # Never the password; the host is not secret.
        return f"<AiomqttTransport {self._host}:{self._port} connected={self._connected}>"

    @property
    def connected(self) -> bool:
        """Whether messages can be published right now."""
        return self._connected

    @property
    def client_id(self) -> str:
        """The MQTT client id used (generated when none was given)."""
        return self._client_id

    @property
    def clean_session(self) -> bool:
        """Whether the broker discards our session when we disconnect."""
        return self._clean_session

    # --- connection ---
    async def connect(self, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        """Connect for the first time; afterwards the transport reconnects by itself.

        Raises PbxAuthError if the broker refuses the credentials and PbxConnectionError
        if it cannot be reached (nothing is left running in either case). Calling it again
        while running does nothing.
        """
        if self._closed:
            raise PbxConnectionError("the transport is closed")
        if self._runner is not None:
            return
        if not (math.isfinite(timeout) and timeout > 0):
            raise PbxInvalidArgumentError("timeout", "must be a positive number of seconds")
        if self._tls and self._tls_context is None:
            # Loading CA files blocks: keep it off the event loop.
            self._tls_context = await asyncio.get_running_loop().run_in_executor(
                None, self._build_tls_context
            )
        client = await self._open(timeout)
        # As in _reconnect: subscribe() calls from here on reach the broker directly.
        self._client = client
        try:
            await self._subscribe_all(client)
        except BaseException as err:
            self._client = None
            await self._disconnect(client)
            if isinstance(err, aiomqtt.MqttError):
                raise PbxConnectionError(f"subscribing at the MQTT broker failed: {err}") from None
            raise
        self._runner = asyncio.create_task(self._run(client), name="smartpbx-mqtt")
        _LOGGER.debug("Connected to the MQTT broker at %s:%d", self._host, self._port)
        self._set_connected(True)

    def _new_client(self) -> aiomqtt.Client:
        # A fresh aiomqtt client per connection: a client whose connection dropped keeps
        # its "connected" state and would report the next attempt as connected before (or
        # even though the broker refused) the CONNACK. The broker-side session survives
        # because the client id stays the same.
        client = _Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=self._client_id,
            clean_session=self._clean_session,
            keepalive=self._keepalive,
            timeout=OPERATION_TIMEOUT,
            tls_context=self._tls_context,
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            logger=_PAHO_LOGGER,
            message_handler=self._dispatch,
        )
        # aiomqtt warns from 10 unacknowledged publications on; many commands at once are
        # normal here and SmartPbxClient bounds them (max_pending).
        client.pending_calls_threshold = PENDING_PUBLISH_WARNING
        return client

    def _build_tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._tls_ca_file)
        if self._tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _open(self, timeout: float) -> aiomqtt.Client:
        """Connect a new client; if cancelled meanwhile, finish and undo the attempt.

        aiomqtt opens the socket in a worker thread, which cannot be interrupted: an
        attempt abandoned half-way would come alive after we stopped watching it.
        """
        client = self._new_client()
        attempt = asyncio.ensure_future(self._connect_once(client, timeout))
        try:
            await asyncio.shield(attempt)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await attempt
                await self._disconnect(client)
            raise
        return client

    async def _connect_once(self, client: aiomqtt.Client, timeout: float) -> None:
        client.timeout = timeout  # bounds the wait for CONNACK
        try:
            await client.__aenter__()
        except aiomqtt.MqttCodeError as err:
            if _is_auth_refusal(err):
                raise PbxAuthError(
                    f"the MQTT broker at {self._host}:{self._port} refused the credentials"
                ) from None
            raise PbxConnectionError(
                f"the MQTT broker at {self._host}:{self._port} refused the connection: {err}"
            ) from None
        except aiomqtt.MqttError as err:
            raise PbxConnectionError(
                f"cannot connect to the MQTT broker at {self._host}:{self._port}: {err}"
            ) from None
        finally:
            client.timeout = OPERATION_TIMEOUT

    async def _disconnect(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
        # A connection that broke while we were closing it leaves its error on aiomqtt's
        # "disconnected" future, which nobody reads once we stop iterating messages;
        # asyncio would log it as "Future exception was never retrieved". It is no news.
        disconnected = getattr(client, "_disconnected", None)
        if (
            isinstance(disconnected, asyncio.Future)
            and disconnected.done()
            and not disconnected.cancelled()
        ):
            disconnected.exception()
        # aiomqtt cancels its keepalive task from the socket-close callback but does not
        # wait for it; wait here so that nothing of ours outlives a disconnect.
        keepalive_task = getattr(client, "_misc_task", None)
        if isinstance(keepalive_task, asyncio.Task) and not keepalive_task.done():
            keepalive_task.cancel()
            await asyncio.wait([keepalive_task])

    async def close(self) -> None:
        """Disconnect and stop every task. The transport cannot be reused."""
        self._closed = True
        tasks = list(self._background)
        if self._runner is not None:
            tasks.append(self._runner)
        self._runner = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        client, self._client = self._client, None
        if client is not None:
            await self._disconnect(client)
        self._set_connected(False)

    async def _run(self, client: aiomqtt.Client) -> None:
        """Read messages; on a lost connection, reconnect until it works or we close."""
        while True:
            await self._pump(client)
            # Disconnected from this moment on, before the dead client is torn down (which
            # awaits): publish() fails fast and listeners hear of it with no delay.
            self._set_connected(False)
            await self._disconnect(client)
            # (Left set when close() cancels the disconnect: close() then finishes it.)
            self._client = None
            client = await self._reconnect()
            self._set_connected(True)

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Wait until the connection ends; messages are dispatched by ``_Client``."""
        disconnected: asyncio.Future[None] = client._disconnected
        # asyncio.wait, not await: cancelling us must not cancel aiomqtt's own future,
        # which its disconnect still waits on.
        await asyncio.wait((disconnected,))
        err = disconnected.exception()
        self._warnings.warning(
            "lost", "Lost the connection to the MQTT broker: %s", err or "disconnected"
        )

    async def _reconnect(self) -> aiomqtt.Client:
        delay = self._reconnect_min
        while True:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._reconnect_max)
            try:
                client = await self._open(DEFAULT_CONNECT_TIMEOUT)
            except PbxAuthError as err:
                self._warnings.warning("auth", "Cannot reconnect to the MQTT broker: %s", err)
                continue
            except PbxConnectionError as err:
                _LOGGER.debug("Reconnecting to the MQTT broker failed: %s", err)
                continue
            # From here on subscribe() talks to the new client itself; filters added
            # earlier are in the snapshot _subscribe_all takes.
            self._client = client
            try:
                await self._subscribe_all(client)
            except aiomqtt.MqttError as err:
                _LOGGER.debug("Re-subscribing after reconnect failed: %s", err)
                self._client = None
                await self._disconnect(client)
                continue
            _LOGGER.info("Reconnected to the MQTT broker at %s:%d", self._host, self._port)
            return client

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        for listener in tuple(self._connection_listeners):
            try:
                listener(connected)
            except Exception:
                _LOGGER.exception("Error in an MQTT connection listener")

    def add_connection_listener(self, callback: ConnectionCallback) -> Unsubscribe:
        """Register for connect/disconnect notifications. Returns a sync remover."""
        self._connection_listeners.append(callback)

        def remove() -> None:
            if callback in self._connection_listeners:
                self._connection_listeners.remove(callback)

        return remove

    # --- publish / subscribe ---
    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish one message (waits for PUBACK at QoS 1).

        Raises PbxNotConnectedError when not connected, PbxConnectionError if the
        connection fails during the publish.
        """
        client = self._client
        if client is None or not self._connected:
            raise PbxNotConnectedError("not connected to the MQTT broker")
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError as err:
            raise PbxConnectionError(f"publishing to the MQTT broker failed: {err}") from None

    async def subscribe(
        self, topic_filter: str, callback: MessageCallback, qos: int = 1
    ) -> Unsubscribe:
        """Subscribe; the subscription survives reconnects. Returns a sync unsubscribe.

        While disconnected the filter is only recorded and subscribed on (re)connect.
        """
        validate_topic_filter(topic_filter)
        if qos not in (0, 1, 2):
            raise PbxInvalidArgumentError("qos", "must be 0, 1 or 2")
        subscription = _Subscription(topic_filter, callback, qos)
        existing = self._subscriptions.setdefault(topic_filter, [])
        needs_broker = not existing or qos > max(sub.qos for sub in existing)
        existing.append(subscription)
        self._match_cache.clear()
        client = self._client
        if needs_broker and client is not None:
            try:
                await client.subscribe(topic_filter, qos)
            except aiomqtt.MqttError as err:
                # The reconnect that follows a failure re-subscribes every filter.
                _LOGGER.debug("Subscribing failed, will retry on reconnect: %s", err)
        return lambda: self._remove_subscription(subscription)

    def _remove_subscription(self, subscription: _Subscription) -> None:
        subscriptions = self._subscriptions.get(subscription.topic_filter)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.remove(subscription)
        self._match_cache.clear()
        if subscriptions:
            return
        del self._subscriptions[subscription.topic_filter]
        client = self._client
        if client is not None:
            task = asyncio.get_running_loop().create_task(
                self._unsubscribe_on_broker(client, subscription.topic_filter)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _unsubscribe_on_broker(self, client: aiomqtt.Client, topic_filter: str) -> None:
        try:
            await client.unsubscribe(topic_filter)
        except aiomqtt.MqttError as err:
            _LOGGER.debug("Unsubscribing failed: %s", err)

    async def _subscribe_all(self, client: aiomqtt.Client) -> None:
        # A snapshot: subscribe() may add filters while we await; those subscribe directly.
        wanted = {
            topic_filter: max(sub.qos for sub in subs)
            for topic_filter, subs in self._subscriptions.items()
        }
        if wanted:
            await client.subscribe(list(wanted.items()))

    def _dispatch(self, topic: str, payload: bytes) -> None:
        callbacks = self._match_cache.get(topic)
        if callbacks is None:
            callbacks = self._matching_callbacks(topic)
            if len(self._match_cache) >= _MATCH_CACHE_SIZE:
                self._match_cache.clear()
            self._match_cache[topic] = callbacks
        for callback in callbacks:
            try:
                callback(topic, payload)
            except Exception:
                _LOGGER.exception("Error in an MQTT message callback")

    def _matching_callbacks(self, topic: str) -> tuple[MessageCallback, ...]:
        topic_levels = topic.split("/")
        return tuple(
            sub.callback
            for subs in self._subscriptions.values()
            for sub in subs
            if _levels_match(sub.levels, topic_levels)
        )

"""A Transport over aiomqtt: a connection of our own to the broker the PBX uses.

Only aiomqtt's public API is used (``async with``-style connect and disconnect,
``client.messages``, ``subscribe``, ``unsubscribe``, ``publish``, its exceptions), so any
aiomqtt 2.x from 2.5 on works (manifest: ``aiomqtt>=2.5,<3``).

Connection life cycle
    :meth:`AiomqttTransport.connect` makes the first connection and raises PbxAuthError
    when the broker refuses the credentials, PbxConnectionError when it cannot be reached.
    From then on a background task reads messages and, when the connection drops,
    reconnects with exponential backoff (``reconnect_min`` doubling up to
    ``reconnect_max``, each wait randomised to between half and all of it so that many
    clients do not reconnect in lockstep), re-subscribes every filter and tells the
    connection listeners. :meth:`AiomqttTransport.close` stops all of it.

Refused credentials
    If the broker refuses the credentials at a reconnect (CONNACK "bad user name or
    password" or "not authorised"), retrying cannot help and would hammer the broker: the
    transport stops, keeps the error in :attr:`AiomqttTransport.auth_error` and tells the
    auth failure listeners once (:meth:`AiomqttTransport.add_auth_failure_listener`), so
    that the owner can ask the user for new credentials.

Sessions
    With ``clean_session=False`` the broker keeps our subscriptions and queues QoS 1
    messages for us while we are away, so a reply or event the PBX publishes during a
    reconnect is not lost. That needs a client id that stays the same: pass a stable
    ``client_id`` (e.g. derived from the config entry). Without one a random id is
    generated and the session is made clean, because a persistent session under an id
    nobody will use again stays on the broker, queueing messages, forever. When a stable
    id is given up (its owner is removed), :meth:`AiomqttTransport.discard_session`
    removes its session from the broker.

Dispatch
    Messages are dispatched as aiomqtt puts them in its message queue (ours, through
    its documented ``queue_type``: see ``_new_client``), from the moment the broker
    accepts the connection (queued messages of a persistent session arrive before our
    SUBSCRIBE is acknowledged), in the order they arrived, and each goes to every
    callback whose filter matches its topic (MQTT wildcard rules). The match result
    per topic is cached (the PBX publishes on a handful of topics), so dispatch is one
    dictionary lookup; the cache is reset whenever the subscriptions change.

Logging
    aiomqtt and paho log through :data:`MQTT_LOGGER`, a child of this module's logger
    set to CRITICAL: paho reports every dropped socket at ERROR ("failed to receive on
    socket"), though it is only the start of a reconnect, which this transport reports
    itself, once and rate-limited, with the cause. Set that logger's level to see
    paho's own lines (the integration's manifest lists it, so Home Assistant's "Enable
    debug logging" includes it); at DEBUG they include topics, hence the PBX token.

Nothing here logs the password; topics (which contain the PBX token) are never logged.
"""

# ruff: noqa: ASYNC109  # connect(timeout) is aiomqtt's CONNACK wait: a connect half-done in
# its worker thread must not be abandoned by an asyncio.timeout around it.

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
import contextlib
from dataclasses import dataclass, field
import logging
import math
import random
import secrets
import socket
import ssl
from typing import Any, Final

import aiomqtt

from .errors import PbxAuthError, PbxConnectionError, PbxInvalidArgumentError, PbxNotConnectedError
from .ratelimit import RateLimitedWarnings
from .transport import ConnectionCallback, MessageCallback, Unsubscribe

_LOGGER = logging.getLogger(__name__)

MQTT_LOGGER: Final = logging.getLogger(f"{__name__}.mqtt")
"""The logger aiomqtt and paho write to (see Logging above); CRITICAL unless set."""
MQTT_LOGGER.setLevel(logging.CRITICAL)

type AuthFailureCallback = Callable[[PbxAuthError], None]
"""Called once with the error when the broker refuses the credentials at a reconnect."""

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
OPERATION_TIMEOUT: Final = 10.0
"""Longest wait for a SUBACK, UNSUBACK, PUBACK or graceful disconnect."""
_MATCH_CACHE_SIZE: Final = 1024
PENDING_PUBLISH_WARNING: Final = 4096

# CONNACK refusals that mean "wrong credentials": MQTT 3.1.1 return codes 4 (bad user
# name or password) and 5 (not authorised), and the MQTT 5 reason codes paho maps them to
# (0x86, 0x87), plus 0x8C (bad authentication method).
_AUTH_REFUSALS: Final = frozenset({4, 5, 0x86, 0x87, 0x8C})


class _SubscribeFailed(Exception):
    """Subscribing on a fresh connection failed (the cause says why)."""


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
        self._unsubscribing: dict[str, asyncio.Task[None]] = {}
        """UNSUBSCRIBEs under way, by filter: a new SUBSCRIBE of the filter waits for them."""
        self._connection_listeners: list[ConnectionCallback] = []
        self._auth_failure_listeners: list[AuthFailureCallback] = []
        self._auth_error: PbxAuthError | None = None
        self._client: aiomqtt.Client | None = None
        """The aiomqtt client of the current connection, from CONNACK until it ends."""
        self._tls_context: ssl.SSLContext | None = None
        self._connected = False
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._warnings = RateLimitedWarnings(_LOGGER)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], *, client_id: str | None = None
    ) -> AiomqttTransport:
        """A transport to the broker ``settings`` name, not yet connected.

        Keys: ``host``; optional ``port``, ``username`` and ``password`` (blank: anonymous),
        ``tls``, ``verify_ssl`` (default True). ``client_id`` should be stable for a
        persistent session; None gives a random id with a clean session (a one-off check).
        """
        tls = bool(settings.get("tls", False))
        return cls(
            settings["host"],
            settings.get("port", 1883),
            username=settings.get("username") or None,
            password=settings.get("password") or None,
            tls=tls,
            # Not verifying only means something with TLS on; it must not turn TLS on.
            tls_insecure=tls and not settings.get("verify_ssl", True),
            client_id=client_id,
        )

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

    @property
    def auth_error(self) -> PbxAuthError | None:
        """Why the transport stopped reconnecting: the broker refused the credentials.

        None while the credentials work (or were never refused after connecting). Cleared
        by a successful :meth:`connect`.
        """
        return self._auth_error

    # --- connection ---
    async def connect(self, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        """Connect for the first time; afterwards the transport reconnects by itself.

        Raises PbxAuthError if the broker refuses the credentials and PbxConnectionError
        if it cannot be reached (nothing is left running in either case). Calling it again
        while running does nothing; after the transport stopped on refused credentials it
        tries again.
        """
        if self._closed:
            raise PbxConnectionError("the transport is closed")
        if self._runner is not None:
            return
        if not (math.isfinite(timeout) and timeout > 0):
            raise PbxInvalidArgumentError("timeout", "must be a positive number of seconds")
        await self._load_tls_context()
        first_connection: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        runner = asyncio.create_task(self._run(first_connection, timeout), name="smartpbx-mqtt")
        self._runner = runner
        try:
            # Shielded: cancelling connect() cancels the runner below, which undoes the
            # attempt, instead of the future the runner reports to.
            await asyncio.shield(first_connection)
        except BaseException:
            if self._runner is runner:
                self._runner = None
            first_connection.cancel()  # nobody waits for it any more
            runner.cancel()
            await asyncio.wait([runner])
            raise
        self._auth_error = None

    async def _load_tls_context(self) -> None:
        if self._tls and self._tls_context is None:
            # Loading CA files blocks: keep it off the event loop.
            self._tls_context = await asyncio.get_running_loop().run_in_executor(
                None, self._build_tls_context
            )

    def _build_tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._tls_ca_file)
        if self._tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _new_client(self, connect_timeout: float, *, clean_session: bool) -> aiomqtt.Client:
        """A fresh aiomqtt client (one per connection: the broker-side session survives
        because the client id stays the same).

        Its message queue, given through aiomqtt's documented ``queue_type`` argument,
        is an ``asyncio.Queue`` that dispatches each message as it is put in (on the
        event loop, in the order paho read them) instead of keeping it for
        ``client.messages``: each step of that iterator costs a task and a future,
        about half of the transport's cost per message (BENCHMARKS.md).
        """
        dispatch = self._dispatch

        class Inbox(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                # Never raises (_dispatch logs a failing callback): an exception here
                # would end aiomqtt's read of the socket.
                dispatch(item.topic.value, item.payload)

        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            logger=MQTT_LOGGER,
            identifier=self._client_id,
            clean_session=clean_session,
            keepalive=self._keepalive,
            timeout=connect_timeout,  # bounds the wait for CONNACK; see _connection
            tls_context=self._tls_context,
            # Without it a QoS 1 round trip can stall ~40 ms on Nagle plus delayed ACK.
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            queue_type=Inbox,
        )
        # aiomqtt warns from 10 unacknowledged publications on; many commands at once are
        # normal here and SmartPbxClient bounds them (max_pending).
        client.pending_calls_threshold = PENDING_PUBLISH_WARNING
        return client

    @contextlib.asynccontextmanager
    async def _connection(self, client: aiomqtt.Client) -> AsyncIterator[None]:
        """``async with client`` that raises our errors and cannot be abandoned half-way.

        aiomqtt opens the socket in a worker thread, which cannot be interrupted: an
        attempt cancelled half-way would come alive after we stopped watching it, so a
        cancelled attempt is finished and then undone.
        """
        attempt = asyncio.ensure_future(self._enter(client))
        try:
            await asyncio.shield(attempt)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await attempt
                await self._exit(client)
            raise
        client.timeout = OPERATION_TIMEOUT
        try:
            yield
        finally:
            await self._exit(client)

    async def _enter(self, client: aiomqtt.Client) -> None:
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

    @staticmethod
    async def _exit(client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

    async def close(self) -> None:
        """Disconnect and stop every task. The transport cannot be reused."""
        self._closed = True
        tasks = list(self._unsubscribing.values())
        runner, self._runner = self._runner, None
        if runner is not None:
            tasks.append(runner)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._unsubscribing.clear()
        self._set_connected(False)

    async def discard_session(self, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        """Remove this client id's persistent session from the broker, and close.

        For an owner giving its client id up for good (e.g. a config entry that is
        removed or switched to another transport): connects once with a clean session
        under the same client id, which makes the broker drop the stored session (its
        subscriptions and queued messages) and keep nothing after the disconnect.
        Raises PbxAuthError or PbxConnectionError like :meth:`connect`; the transport is
        closed afterwards in every case.
        """
        await self.close()
        if not (math.isfinite(timeout) and timeout > 0):
            raise PbxInvalidArgumentError("timeout", "must be a positive number of seconds")
        await self._load_tls_context()
        client = self._new_client(timeout, clean_session=True)
        async with self._connection(client):
            _LOGGER.debug("Discarded the MQTT session of this client id")

    async def _run(self, first_connection: asyncio.Future[None], timeout: float) -> None:
        """Connect, read, and on a lost connection reconnect until it works or we stop."""
        try:
            await self._reconnect_forever(first_connection, timeout)
        except Exception as err:  # a bug: connect() raises it, or it is logged
            if first_connection.done():
                _LOGGER.exception("The MQTT connection stopped on an unexpected error")
            else:
                first_connection.set_exception(err)
        finally:
            if not first_connection.done():  # close() while connect() waits
                first_connection.set_exception(PbxConnectionError("the transport was closed"))

    async def _reconnect_forever(
        self, first_connection: asyncio.Future[None], timeout: float
    ) -> None:
        delay = self._reconnect_min
        while True:
            try:
                await self._session(first_connection, timeout)
            except (PbxAuthError, PbxConnectionError) as err:
                if not first_connection.done():
                    first_connection.set_exception(err)
                    return
                if isinstance(err, PbxAuthError):
                    self._stop_on_refused_credentials(err)
                    return
                _LOGGER.debug("Reconnecting to the MQTT broker failed: %s", err)
            else:
                if not first_connection.done():
                    first_connection.set_exception(
                        PbxConnectionError("the MQTT broker closed the connection at once")
                    )
                    return
                delay = self._reconnect_min  # it worked: start the backoff over
            timeout = DEFAULT_CONNECT_TIMEOUT
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._reconnect_max)

    async def _session(self, first_connection: asyncio.Future[None], timeout: float) -> None:
        """One connection: returns when it is lost after having worked.

        Raises PbxAuthError or PbxConnectionError when it cannot be made (connecting or
        subscribing fails).
        """
        client = self._new_client(timeout, clean_session=self._clean_session)
        async with self._connection(client):
            self._client = client
            lost: Exception = aiomqtt.MqttError("the message stream ended")
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._go_live(client, first_connection))
                    # The queue dispatches every message (see _new_client), so this
                    # waits for the connection to end; it would deliver a message that
                    # reached the queue some other way all the same.
                    async for message in client.messages:
                        self._dispatch(message.topic.value, message.payload)
            except ExceptionGroup as errors:
                lost = errors.exceptions[0]
            finally:
                # Disconnected from this moment on, before the client is torn down (which
                # awaits): publish() fails fast and listeners hear of it with no delay.
                self._client = None
                self._set_connected(False)
        if isinstance(lost, _SubscribeFailed):
            raise PbxConnectionError(f"subscribing at the MQTT broker failed: {lost}") from None
        if not isinstance(lost, aiomqtt.MqttError):
            raise lost
        self._warnings.warning(
            "lost", "Lost the connection to the MQTT broker: %s", lost.__cause__ or lost
        )

    async def _go_live(
        self, client: aiomqtt.Client, first_connection: asyncio.Future[None]
    ) -> None:
        try:
            await self._subscribe_all(client)
        except aiomqtt.MqttError as err:
            raise _SubscribeFailed(str(err)) from err
        self._set_connected(True)
        if first_connection.done():
            _LOGGER.info("Reconnected to the MQTT broker at %s:%d", self._host, self._port)
        else:
            _LOGGER.debug("Connected to the MQTT broker at %s:%d", self._host, self._port)
            first_connection.set_result(None)

    def _stop_on_refused_credentials(self, err: PbxAuthError) -> None:
        self._auth_error = err
        self._runner = None
        _LOGGER.warning("Not reconnecting until the credentials are updated: %s", err)
        for listener in tuple(self._auth_failure_listeners):
            try:
                listener(err)
            except Exception:
                _LOGGER.exception("Error in an MQTT auth failure listener")

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
        return _add_listener(self._connection_listeners, callback)

    def add_auth_failure_listener(self, callback: AuthFailureCallback) -> Unsubscribe:
        """Register for "the broker refused the credentials at a reconnect".

        Called once per refusal, after which the transport has stopped reconnecting
        (see :attr:`auth_error`); it stays usable for :meth:`close`, and :meth:`connect`
        tries again. A refusal at the first :meth:`connect` raises PbxAuthError instead.
        Returns a sync remover.
        """
        return _add_listener(self._auth_failure_listeners, callback)

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
        if needs_broker:
            unsubscribing = self._unsubscribing.get(topic_filter)
            if unsubscribing is not None:
                # The broker must see that UNSUBSCRIBE before this SUBSCRIBE, not after.
                await asyncio.wait([unsubscribing])
            client = self._client
            if client is not None:
                try:
                    await client.subscribe(topic_filter, qos)
                except aiomqtt.MqttError as err:
                    # The reconnect that follows a failure re-subscribes every filter.
                    _LOGGER.debug("Subscribing failed, will retry on reconnect: %s", err)
        return lambda: self._remove_subscription(subscription)

    def _remove_subscription(self, subscription: _Subscription) -> None:
        topic_filter = subscription.topic_filter
        subscriptions = self._subscriptions.get(topic_filter)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.remove(subscription)
        self._match_cache.clear()
        if subscriptions:
            return
        del self._subscriptions[topic_filter]
        if self._client is None or topic_filter in self._unsubscribing:
            return
        task = asyncio.get_running_loop().create_task(self._unsubscribe_on_broker(topic_filter))
        self._unsubscribing[topic_filter] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._unsubscribing.get(topic_filter) is done:
                del self._unsubscribing[topic_filter]

        task.add_done_callback(forget)

    async def _unsubscribe_on_broker(self, topic_filter: str) -> None:
        client = self._client
        # Subscribed again before this task ran: the broker subscription stays.
        if client is None or topic_filter in self._subscriptions:
            return
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


def _add_listener[T](listeners: list[T], callback: T) -> Unsubscribe:
    listeners.append(callback)

    def remove() -> None:
        if callback in listeners:
            listeners.remove(callback)

    return remove

"""SimulatorRunner: a SimulatedPbx on a real MQTT broker, as a PBX connects to one.

The PBX is an MQTT client: it subscribes to ``device/<token>/api/v1.0/command/#``, feeds
each command to the state machine and publishes what comes out with QoS 1. The simulated
clock follows the wall clock, so answer delays and ring timeouts happen in real time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
import contextlib
import dataclasses
from datetime import datetime
import logging
import socket
import time
from types import TracebackType
from typing import Self

import aiomqtt

from . import wire
from .config import PbxConfig
from .model import Extension, ExtStatus
from .pbx import SimulatedPbx, topic_kind
from .traffic import TrafficGenerator

_LOGGER = logging.getLogger(__name__)

# Publications awaiting PUBACK at once; beyond it the sender waits (keeps order, bounds memory).
_MAX_IN_FLIGHT = 100


class _SessionEnd(Exception):
    """Raised inside a session to drop the broker connection on purpose."""


class SimulatorRunner:
    """Connects a :class:`SimulatedPbx` to a broker; reconnects when the broker goes away.

    Use ``async with SimulatorRunner(...) as runner:`` or ``await start()`` / ``await
    stop()``. ``start`` returns once the first connection is up (or raises
    ``TimeoutError`` after ``connect_timeout``; ``connect_timeout=None`` does not wait).
    Waiting helpers take ``limit`` seconds and raise ``TimeoutError`` past it.
    """

    def __init__(
        self,
        pbx: SimulatedPbx | PbxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        traffic: float = 0.0,
        tick_interval: float = 0.05,
        reconnect_interval: float = 1.0,
        keepalive: int = 30,
        wall_clock: bool = True,
    ) -> None:
        """Build a runner.

        ``pbx`` is a ready PBX, or a config to build one from; with ``wall_clock`` a
        config's start time and time zone are replaced by the machine's, as a real device
        keeps the real time. ``traffic`` is random live traffic in calls per minute.
        """
        if not isinstance(pbx, SimulatedPbx):
            config = pbx or PbxConfig()
            if wall_clock:
                config = dataclasses.replace(
                    config,
                    start_time=time.time(),
                    timezone=datetime.now().astimezone().tzinfo or config.timezone,
                )
            pbx = SimulatedPbx(config)
        self._pbx = pbx
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._client_id = client_id
        self._tick_interval = tick_interval
        self._reconnect_interval = reconnect_interval
        self._keepalive = keepalive
        self.traffic = TrafficGenerator(pbx, traffic)
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._in_flight = 0
        self._connected = False
        self._connected_event: asyncio.Event | None = None
        self._kick: asyncio.Event | None = None
        self._between_sessions: list[Callable[[], None]] = []
        self._outage_until = 0.0
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self.connections = 0
        """How many times the runner has connected to the broker."""
        self.sent_counts: Counter[str] = Counter()
        """Messages the broker acknowledged, per topic kind (response, event, cdr...)."""
        self.offline_drops = 0
        """Messages the PBX produced while not connected (lost, as on a real device)."""
        self.last_error: str | None = None
        pbx.publish = self._enqueue

    # ------------------------------------------------------------------ lifecycle

    @property
    def pbx(self) -> SimulatedPbx:
        return self._pbx

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    async def start(self, connect_timeout: float | None = 10.0) -> None:
        if self.running:
            return
        self._stopping = False
        self._connected_event = asyncio.Event()
        self._kick = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._ticker = asyncio.create_task(self._tick_loop(), name="smartpbx-sim-clock")
        self._main = asyncio.create_task(self._connection_loop(), name="smartpbx-sim-mqtt")
        self.traffic.start()
        if connect_timeout is not None:
            try:
                await self.wait_connected(connect_timeout)
            except TimeoutError:
                await self.stop()
                raise

    async def stop(self, grace: float = 5.0) -> None:
        """Deliver what is pending, disconnect gracefully, end every task the runner started."""
        self.traffic.stop()
        if self._connected:
            # A clean disconnect does not fire the will: say "offline" ourselves.
            self._pbx.emit_device_status(online=False)
            with contextlib.suppress(TimeoutError):
                await self.wait_drained(limit=grace)
        self._stopping = True
        if self._kick is not None:
            self._kick.set()
        tasks = [t for t in (self._main, self._ticker) if t is not None]
        if self._ticker is not None:
            self._ticker.cancel()
        if self._main is not None:
            done, _ = await asyncio.wait({self._main}, timeout=grace)
            if not done:
                self._main.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._main = self._ticker = None
        self._connected = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _tick_loop(self) -> None:
        # The simulated clock follows the monotonic clock: timers (answers, ring timeouts,
        # traffic) fire in real time even while the broker is away.
        last = time.monotonic()
        while True:
            await asyncio.sleep(self._tick_interval)
            now = time.monotonic()
            try:
                self._pbx.advance(now - last)
            except Exception:
                # A failing timer (a simulator bug) must not stop the clock for good.
                _LOGGER.exception("Simulated clock step failed")
            last = now
            self._notify()

    async def _connection_loop(self) -> None:
        assert self._kick is not None
        assert self._connected_event is not None
        while not self._stopping:
            while self._between_sessions:
                self._between_sessions.pop(0)()
            pause = self._outage_until - time.monotonic()
            if pause > 0:
                await self._sleep_unless_stopping(pause)
                continue
            self._kick.clear()
            try:
                await self._session()
            except* _SessionEnd:
                pass
            except* aiomqtt.MqttError as group:
                self.last_error = str(group.exceptions[0])
                _LOGGER.warning("Broker connection lost or refused: %s", self.last_error)
            except* Exception as group:
                # Keep the simulated device alive whatever happens; reconnect and carry on.
                self.last_error = repr(group.exceptions[0])
                _LOGGER.exception("Simulator session failed")
            finally:
                self._connected = False
                self._connected_event.clear()
                self._notify()
            if not self._stopping and self._outage_until <= time.monotonic():
                await self._sleep_unless_stopping(self._reconnect_interval)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        assert self._kick is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._kick.wait(), timeout=seconds)
        if not self._stopping:
            self._kick.clear()

    async def _session(self) -> None:
        assert self._kick is not None
        assert self._connected_event is not None
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=self._client_id,
            keepalive=self._keepalive,
            # Without it every QoS 1 round trip can stall ~40 ms on delayed ACKs (Nagle).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            max_inflight_messages=_MAX_IN_FLIGHT,
            will=self._will(),
        )
        # Many unacknowledged publications are this runner's design, not a symptom.
        client.pending_calls_threshold = _MAX_IN_FLIGHT + 10
        async with client:
            await client.subscribe(self._pbx.command_filter, qos=1)
            # Whatever the PBX said while offline is gone; do not replay stale replies.
            while not self._outbox.empty():
                self._outbox.get_nowait()
            self._connected = True
            self.connections += 1
            self._connected_event.set()
            self.last_error = None
            _LOGGER.info("Connected to %s:%s as the PBX", self._host, self._port)
            self._pbx.emit_device_status(online=True)
            self._notify()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._receive(client))
                group.create_task(self._send(client, group))
                group.create_task(self._watch_kick())

    def _will(self) -> aiomqtt.Will | None:
        """Field profile: the broker says ``offline`` on the status topic if the PBX vanishes.

        Not retained: whether field devices retain it is unknown, and a retained status
        would outlive the simulator on a shared test broker.
        """
        if not self._pbx.config.field_firmware:
            return None
        return aiomqtt.Will(
            f"{self._pbx.base_topic}/status",
            wire.encode(SimulatedPbx.device_status_payload(online=False)),
            qos=1,
            retain=False,
        )

    async def _watch_kick(self) -> None:
        assert self._kick is not None
        await self._kick.wait()
        raise _SessionEnd

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            # bytes on the wire; PayloadType's str/number variants only exist on publish.
            data = bytes(message.payload)
            self._pbx.handle_command(str(message.topic), data)
            self._notify()

    async def _send(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        slots = asyncio.Semaphore(_MAX_IN_FLIGHT)
        while True:
            topic, payload = await self._outbox.get()
            # Acquiring here, before the task exists, keeps publications in order: each
            # task hands its message to paho in its first step, in creation order.
            await slots.acquire()
            self._in_flight += 1
            group.create_task(self._publish(client, topic, payload, slots))

    async def _publish(
        self, client: aiomqtt.Client, topic: str, payload: bytes, slots: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(topic, payload, qos=1, timeout=30)
        except aiomqtt.MqttError as err:
            _LOGGER.debug("Publication on %s lost: %s", topic_kind(topic), err)
            self.offline_drops += 1
        else:
            self.sent_counts[topic_kind(topic)] += 1
        finally:
            self._in_flight -= 1
            slots.release()
            self._notify()

    def _enqueue(self, topic: str, payload: bytes) -> None:
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug("%s %s", topic_kind(topic), payload[:300].decode(errors="replace"))
        if self._connected:
            self._outbox.put_nowait((topic, payload))
        else:
            self.offline_drops += 1

    # ------------------------------------------------------------------ waiting helpers

    def _notify(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], limit: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every message and tick)."""
        async with asyncio.timeout(limit):
            while not predicate():
                wakeup = self._wakeup or asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), timeout=self._tick_interval * 2)

    async def wait_connected(self, limit: float = 10.0) -> None:
        await self.wait_until(lambda: self._connected, limit)

    async def wait_disconnected(self, limit: float = 10.0) -> None:
        await self.wait_until(lambda: not self._connected, limit)

    async def wait_commands(self, count: int, limit: float = 10.0) -> None:
        """Wait until the PBX has received ``count`` commands in total."""
        await self.wait_until(lambda: self._pbx.commands_received >= count, limit)

    async def wait_sent(self, kind: str, count: int, limit: float = 10.0) -> None:
        """Wait until the broker acknowledged ``count`` messages of ``kind`` in total."""
        await self.wait_until(lambda: self.sent_counts[kind] >= count, limit)

    async def wait_drained(self, limit: float = 10.0) -> None:
        """Wait until everything the PBX produced so far has been acknowledged."""
        await self.wait_until(lambda: self._outbox.empty() and self._in_flight == 0, limit)

    # ------------------------------------------------------------------ outages

    async def disconnect(self, downtime: float = 0.0, limit: float = 10.0) -> None:
        """Drop the broker connection, stay away ``downtime`` seconds, then reconnect."""
        self._outage_until = time.monotonic() + downtime
        if self._kick is not None:
            self._kick.set()
        await self.wait_disconnected(limit)

    async def reboot(
        self, config: PbxConfig | None = None, downtime: float = 1.0, limit: float = 10.0
    ) -> None:
        """Reboot the PBX: it leaves the broker, restarts (uptime 0) and comes back."""
        if not self.running:
            self._pbx.reboot(config)
            return
        self._between_sessions.append(lambda: self._pbx.reboot(config))
        await self.disconnect(downtime, limit)

    # ------------------------------------------------------------------ scripting (delegates)

    @property
    def silent(self) -> bool:
        return self._pbx.silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self._pbx.silent = value

    @property
    def published_counts(self) -> Counter[str]:
        """What the PBX produced, per topic kind (``sent_counts`` is what was acknowledged)."""
        return self._pbx.published_counts

    def ivr_keypress(self, ivr: str, caller: str, dtmf: str, callid: str | None = None) -> str:
        return self._pbx.ivr_keypress(ivr, caller, dtmf, callid)

    def incoming_call(
        self,
        from_number: str,
        to_number: str,
        *,
        trunk: str | None = None,
        autoanswer: bool = False,
    ) -> str:
        return self._pbx.incoming_call(from_number, to_number, trunk=trunk, autoanswer=autoanswer)

    def place_call(
        self,
        caller: str,
        callee: str,
        *,
        dialpermission: str | None = None,
        autoanswer: bool = False,
    ) -> str:
        return self._pbx.place_call(
            caller, callee, dialpermission=dialpermission, autoanswer=autoanswer
        )

    def hangup_call(self, callid_or_channel: str) -> None:
        self._pbx.hangup_call(callid_or_channel)

    def emit_cdr(
        self,
        src: str = "2005",
        dst: str = "2006",
        *,
        disposition: str = "ANSWERED",
        billsec: int = 0,
        direction: str = "Internal",
        srctech: str | None = None,
        dsttech: str | None = None,
        callid: str | None = None,
        dtmf: str = "",
        recordfile: str = "",
    ) -> dict[str, object]:
        return self._pbx.emit_cdr(
            src,
            dst,
            disposition=disposition,
            billsec=billsec,
            direction=direction,
            srctech=srctech,
            dsttech=dsttech,
            callid=callid,
            dtmf=dtmf,
            recordfile=recordfile,
        )

    def set_extension_status(self, number: str, status: ExtStatus | str) -> None:
        self._pbx.set_extension_status(number, status)

    def burst_extension_status(self, count: int) -> int:
        return self._pbx.burst_extension_status(count)

    def add_extension(
        self,
        number: str | None = None,
        *,
        kind: str = "SIP",
        username: str | None = None,
        port: int | None = None,
        registered: bool = True,
    ) -> Extension:
        return self._pbx.add_extension(
            number, kind=kind, username=username, port=port, registered=registered
        )

    def remove_extension(self, number: str) -> None:
        self._pbx.remove_extension(number)

    def publish_raw(self, topic_suffix: str, payload: bytes) -> None:
        self._pbx.publish_raw(topic_suffix, payload)

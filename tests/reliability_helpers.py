"""Tools for the reliability, security and fuzz tests: fault injection and observation.

- ``TcpProxy``: sits between our MQTT client and the broker, and can drop our connection
  (and refuse new ones) while the broker and the simulated PBX carry on.
- ``BrokerSpy``: a separate MQTT client that records what is published on a filter, e.g.
  every command sent to any PBX (``device/+/api/v1.0/command/#``).
- ``BusRecorder``: records Home Assistant bus events of given types.
- ``entry_states`` / ``all_state_text``: every state of an entry's entities, for
  asserting what may never show up in them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
import contextlib
import json
from types import TracebackType
from typing import Any, Self

from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er

from custom_components.smartpbx.pbx.aiomqtt_transport import AiomqttTransport

from .broker import MosquittoBroker

COMMAND_FILTER = "device/+/api/v1.0/command/#"
"""Every command to every PBX on a broker."""


class TcpProxy:
    """A TCP relay on 127.0.0.1 to a broker that can cut its connections on demand.

    While cut, the listening socket is closed too, so reconnect attempts are refused as
    when the network is down; ``resume`` listens again on the same port.
    """

    def __init__(self, target: MosquittoBroker) -> None:
        self._target_host = target.host
        self._target_port = target.port
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        """Connections accepted so far."""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drop every relayed connection (abruptly) and stop accepting new ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        links = list(self._links)
        for link in links:
            link.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def resume(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self._target_host, self._target_port
            )
            self._writers.add(upstream_writer)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(reader, upstream_writer))
                group.create_task(self._pipe(upstream_reader, writer))
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()
            self._links.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.transport.abort()


class BrokerSpy:
    """An MQTT client of its own that records every message on ``topic_filter``."""

    def __init__(self, broker: MosquittoBroker, topic_filter: str = COMMAND_FILTER) -> None:
        self._transport = AiomqttTransport(broker.host, broker.port)
        self._filter = topic_filter
        self.messages: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> Self:
        await self._transport.subscribe(self._filter, self._record, qos=1)
        await self._transport.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._transport.close()

    def _record(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    def commands(self) -> list[str]:
        """The ``cmd`` of every recorded message (``<unreadable>`` if it has none)."""
        names = []
        for _, payload in self.messages:
            try:
                names.append(str(json.loads(payload)["cmd"]))
            except ValueError, KeyError, TypeError:
                names.append("<unreadable>")
        return names

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish as this client (e.g. a sentinel that proves earlier traffic arrived)."""
        await self._transport.publish(topic, payload, qos=1)


class BusRecorder:
    """Records the data of Home Assistant bus events of the given types, in order."""

    def __init__(self, hass: HomeAssistant, event_types: Iterable[str]) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._unsubscribes = [
            hass.bus.async_listen(event_type, self._record) for event_type in event_types
        ]

    @callback
    def _record(self, event: Event) -> None:
        self.events.append((str(event.event_type), dict(event.data)))

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == event_type]

    def stop(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()


def entry_states(hass: HomeAssistant, entry_id: str) -> dict[str, State]:
    """The current state of every entity of a config entry that has one."""
    registry = er.async_get(hass)
    states = {}
    for item in er.async_entries_for_config_entry(registry, entry_id):
        if (state := hass.states.get(item.entity_id)) is not None:
            states[item.entity_id] = state
    return states


def all_state_text(hass: HomeAssistant) -> str:
    """Every state and attribute in Home Assistant as one string, for secret searches."""
    return "\n".join(
        f"{state.entity_id}={state.state} {json.dumps(dict(state.attributes), default=str)}"
        for state in hass.states.async_all()
    )


async def eventually(predicate: Callable[[], bool], limit: float = 10.0) -> float:
    """Wait until ``predicate()`` holds; returns how long it took (fails after ``limit``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110  # Home Assistant state has nothing to await
            await asyncio.sleep(0.01)
    return loop.time() - started


@contextlib.contextmanager
def collecting_tasks() -> Any:
    """Yields a function that lists tasks created since entry and still running."""
    before = asyncio.all_tasks()

    def new_tasks() -> set[asyncio.Task[Any]]:
        return {task for task in asyncio.all_tasks() - before if not task.done()}

    yield new_tasks

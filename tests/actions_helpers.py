"""Helpers for the action, event and logbook tests.

- ``command_spy(broker)``: records every command anybody publishes for any PBX on the
  broker (``device/+/api/v1.0/command/#``), to prove what an action sent, or that it sent
  nothing.
- ``assert_translated_error(err, key, **placeholders)``: the error carries our
  translation key and placeholders, en.json has that key, and the message Home Assistant
  renders is the translated text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass
import json
from pathlib import Path
import re
import socket
from typing import Any
import uuid

import aiomqtt
from homeassistant.exceptions import HomeAssistantError

from custom_components.smartpbx.const import DOMAIN

from .broker import MosquittoBroker

COMMAND_FILTER = "device/+/api/v1.0/command/#"
INTEGRATION_DIR = Path(__file__).parent.parent / "custom_components" / "smartpbx"
_PLACEHOLDER = re.compile(r"{(\w+)}")


def load_json(name: str) -> dict[str, Any]:
    """A JSON file of the integration (``translations/en.json``, ``icons.json``)."""
    data: dict[str, Any] = json.loads((INTEGRATION_DIR / name).read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True, slots=True)
class SpiedCommand:
    """One command somebody published for a PBX."""

    topic: str
    payload: dict[str, Any]

    @property
    def token(self) -> str:
        return self.topic.split("/")[1]

    @property
    def sub_topic(self) -> str:
        return self.topic.rsplit("/", 1)[1]

    @property
    def cmd(self) -> str:
        return str(self.payload.get("cmd"))


class CommandSpy:
    """What the spy saw, in the order the broker delivered it."""

    def __init__(self) -> None:
        self.commands: list[SpiedCommand] = []

    def cmds(self) -> list[str]:
        return [command.cmd for command in self.commands]

    def of(self, cmd: str) -> list[SpiedCommand]:
        return [command for command in self.commands if command.cmd == cmd]

    def last(self, cmd: str) -> SpiedCommand:
        found = self.of(cmd)
        assert found, f"no {cmd} was published; saw {self.cmds()}"
        return found[-1]

    def clear(self) -> None:
        self.commands.clear()

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():  # noqa: ASYNC110  # messages arrive from another task
                await asyncio.sleep(0.01)

    async def wait_cmd(self, cmd: str, count: int = 1, limit: float = 5.0) -> SpiedCommand:
        await self.wait_for(lambda: len(self.of(cmd)) >= count, limit)
        return self.of(cmd)[-1]

    async def commands_before_marker(self, publish_marker: Callable[[str], Any]) -> list[str]:
        """Every command seen (since the last clear) before a marker published now.

        ``publish_marker(marker)`` must publish a command carrying ``"marker": marker``.
        MQTT keeps one connection's publications in order, so once the marker arrives
        anything published before it has arrived too: proof that nothing else was sent,
        without sleeping and hoping.
        """
        marker = uuid.uuid4().hex
        await publish_marker(marker)

        def index() -> int | None:
            return next(
                (i for i, c in enumerate(self.commands) if c.payload.get("marker") == marker),
                None,
            )

        await self.wait_for(lambda: index() is not None)
        position = index()
        assert position is not None
        return self.cmds()[:position]


@contextlib.asynccontextmanager
async def command_spy(broker: MosquittoBroker) -> AsyncIterator[CommandSpy]:
    """A CommandSpy subscribed to every PBX's command topics on ``broker``."""
    spy = CommandSpy()
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )
    async with client:
        await client.subscribe(COMMAND_FILTER, qos=1)

        async def receive() -> None:
            async for message in client.messages:
                payload = json.loads(bytes(message.payload))
                spy.commands.append(SpiedCommand(str(message.topic), payload))

        task = asyncio.create_task(receive(), name="command spy")
        try:
            yield spy
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def assert_translated_error(
    err: HomeAssistantError, key: str, **placeholders: str
) -> dict[str, str]:
    """``err`` is our translated error ``key`` with (at least) these placeholders."""
    assert err.translation_domain == DOMAIN, err
    assert err.translation_key == key, (err.translation_key, err)
    given = dict(err.translation_placeholders or {})
    for name, value in placeholders.items():
        assert given.get(name) == value, (name, given)
    message = load_json("translations/en.json")["exceptions"][key]["message"]
    assert set(_PLACEHOLDER.findall(message)) == set(given), (message, given)
    # Home Assistant drops a trailing full stop from translated exception messages.
    assert str(err) == message.rstrip(".").format(**given)
    return given

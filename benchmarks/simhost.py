"""Simulated PBXs in a process of their own, driven by JSON lines on stdin.

A real PBX is another machine: running the simulator in its own process keeps its work
(state machine, JSON encoding, QoS 1 publishing) off the event loop being measured, and
lets it use the second core, as a device would not compete with Home Assistant.

``SimHost`` (used by the benchmarks) starts ``python -m benchmarks.simhost`` and sends it
one JSON object per line; the process answers each with one JSON line. Operations:

- ``add``: ``{"name", "config": PbxConfig fields}``: start a SimulatorRunner; answers
  the numbers of the extensions that can take status changes (``pool``).
- ``burst``: ``{"name", "count"}``: ``burst_extension_status(count)``, then wait until the
  broker acknowledged everything; answers when production started and ended and when the
  last PUBACK came (time.monotonic(), which is one clock for every process on Linux).
- ``paced``: ``{"name", "rate", "count"}``: status changes at ``rate`` per second, cycling
  over the pool and alternating InUse/Idle; answers each event's production time and
  extension, in order.
- ``stats``: ``{"name"}``: commands received, messages produced and acknowledged.
- ``remove`` / ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
from pathlib import Path
import socket
import struct
import sys
import time
from typing import Any

from smartpbx_sim import ExtStatus, PbxConfig
from smartpbx_sim.runner import SimulatorRunner

from .common import ROOT, die_with_parent

_LOGGER = logging.getLogger("benchmarks.simhost")


def status_pool(runner: SimulatorRunner) -> list[str]:
    """Extensions whose status a burst may flip: registered, idle, not forced."""
    pbx = runner.pbx
    return [
        number
        for number, ext in pbx.extensions.items()
        if ext.available and not pbx.calls_of(number) and ext.status_override is None
    ]


def _remaining_length(length: int) -> bytes:
    encoded = bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


class FastPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a plain asyncio socket.

    Used for bursts and paced runs: the events still come from the simulator's state
    machine, but are written straight to the socket (a few microseconds each), so the
    sender is never what limits a measurement. SimulatorRunner's aiomqtt path peaks
    around 4,000 messages/s on these machines, and under half that when Home Assistant
    busies the other core: a baseline would measure the sender, not the receiver.
    PUBACKs are counted so that a run ends only when the broker has everything.
    """

    def __init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ack_task: asyncio.Task[None] | None = None
        self._packet_ids = itertools.cycle(range(1, 65536))
        self.sent = 0
        self.acked = 0
        self._acked_event = asyncio.Event()

    async def connect(self, host: str, port: int, client_id: str) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port)
        sock = self._writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # CONNECT: protocol MQTT level 4, clean session, keep-alive off.
        body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + _utf8(client_id)
        self._writer.write(b"\x10" + _remaining_length(len(body)) + body)
        await self._writer.drain()
        connack = await self._reader.readexactly(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the fast publisher: {connack!r}")
        self._ack_task = asyncio.create_task(self._read_acks())

    def send(self, topic: str, payload: bytes) -> None:
        assert self._writer is not None
        variable = _utf8(topic) + struct.pack("!H", next(self._packet_ids))
        self._writer.write(b"\x32" + _remaining_length(len(variable) + len(payload)) + variable)
        self._writer.write(payload)
        self.sent += 1

    async def _read_acks(self) -> None:
        reader = self._reader
        assert reader is not None
        while True:
            packet_type = (await reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                digit = (await reader.readexactly(1))[0]
                length |= (digit & 0x7F) << shift
                shift += 7
                if not digit & 0x80:
                    break
            if length:
                await reader.readexactly(length)
            if packet_type & 0xF0 == 0x40:  # PUBACK
                self.acked += 1
                self._acked_event.set()

    async def wait_acked(self, count: int, limit: float) -> None:
        assert self._writer is not None
        await self._writer.drain()
        async with asyncio.timeout(limit):
            while self.acked < count:
                self._acked_event.clear()
                await self._acked_event.wait()

    async def close(self) -> None:
        if self._ack_task is not None:
            self._ack_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError):
                await self._ack_task
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.write(b"\xe0\x00")  # DISCONNECT
                await self._writer.drain()
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


class _Host:
    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._runners: dict[str, SimulatorRunner] = {}
        self._publishers: dict[str, FastPublisher] = {}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.pop("op")
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise ValueError(f"unknown op {op!r}")
        result: dict[str, Any] = await method(**request)
        return result

    async def op_add(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        runner = SimulatorRunner(
            PbxConfig(**config),
            host=self._host,
            port=self._port,
            client_id=f"bench-sim-{name}-{os.getpid()}",
        )
        await runner.start()
        self._runners[name] = runner
        return {"pool": status_pool(runner), "extensions": len(runner.pbx.extensions)}

    async def op_remove(self, name: str) -> dict[str, Any]:
        if (publisher := self._publishers.pop(name, None)) is not None:
            await publisher.close()
        runner = self._runners.pop(name)
        await runner.stop()
        return {}

    async def _fast(self, name: str) -> tuple[SimulatorRunner, FastPublisher]:
        runner = self._runners[name]
        if name not in self._publishers:
            publisher = FastPublisher()
            await publisher.connect(self._host, self._port, f"bench-fast-{name}-{os.getpid()}")
            self._publishers[name] = publisher
        return runner, self._publishers[name]

    async def op_burst(self, name: str, count: int) -> dict[str, Any]:
        runner, publisher = await self._fast(name)
        first = publisher.sent
        runner.pbx.publish = publisher.send
        try:
            started = time.monotonic()
            produced = runner.burst_extension_status(count)
            produced_at = time.monotonic()
        finally:
            runner.pbx.publish = runner._enqueue  # the runner's own sender
        await publisher.wait_acked(first + produced, limit=120)
        return {
            "count": produced,
            "t_start": started,
            "t_produced": produced_at,
            "t_acked": time.monotonic(),
        }

    async def op_paced(self, name: str, rate: float, count: int) -> dict[str, Any]:
        runner, publisher = await self._fast(name)
        pool = status_pool(runner)
        busy = dict.fromkeys(pool, False)
        times: list[float] = []
        numbers: list[str] = []
        runner.pbx.publish = publisher.send
        try:
            start = time.monotonic()
            sent = 0
            while sent < count:
                due = min(count, int((time.monotonic() - start) * rate) + 1)
                while sent < due:
                    number = pool[sent % len(pool)]
                    busy[number] = not busy[number]
                    times.append(time.monotonic())
                    numbers.append(number)
                    runner.set_extension_status(
                        number, ExtStatus.IN_USE if busy[number] else ExtStatus.IDLE
                    )
                    sent += 1
                # ~1 ms granularity (the loop's timer resolution), so mostly one at a time.
                await asyncio.sleep(0.0005)
            # Leave every extension idle, as it started, so later runs see the same pool.
            for number, is_busy in busy.items():
                if is_busy:
                    runner.set_extension_status(number, ExtStatus.IDLE)
        finally:
            runner.pbx.publish = runner._enqueue
        await publisher.wait_acked(publisher.sent, limit=120)
        return {"times": times, "numbers": numbers, "t_acked": time.monotonic()}

    async def op_stats(self, name: str) -> dict[str, Any]:
        runner = self._runners[name]
        return {
            "commands_received": runner.pbx.commands_received,
            "published": dict(runner.published_counts),
            "sent": dict(runner.sent_counts),
            "offline_drops": runner.offline_drops,
        }

    async def op_quit(self) -> dict[str, Any]:
        for publisher in self._publishers.values():
            await publisher.close()
        self._publishers.clear()
        for runner in self._runners.values():
            await runner.stop()
        self._runners.clear()
        return {}


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    served = _Host(host, port)
    while line := await reader.readline():
        request = json.loads(line)
        op = request.get("op")
        try:
            reply = await served.handle(request)
        except Exception as err:  # reported to the benchmark, which fails loudly
            _LOGGER.exception("simhost op %s failed", op)
            reply = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if op == "quit":
            return
    await served.op_quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve(args.host, args.port))


class SimHostError(RuntimeError):
    """The simulator process reported a failure."""


class SimHost:
    """The client side: start the simulator process and call its operations."""

    def __init__(self, host: str, port: int, log_path: Path | None = None) -> None:
        self._host = host
        self._port = port
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = open(self._log_path, "ab") if self._log_path else asyncio.subprocess.DEVNULL  # noqa: SIM115, ASYNC230
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.simhost",
            "--host",
            self._host,
            "--port",
            str(self._port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            preexec_fn=die_with_parent,
            limit=1 << 26,
        )
        if not isinstance(log, int):
            log.close()

    async def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write((json.dumps({"op": op, **arguments}) + "\n").encode())
        await process.stdin.drain()
        line = await process.stdout.readline()
        if not line:
            raise SimHostError(f"simulator process exited during {op}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise SimHostError(f"{op}: {reply['error']}")
        return reply

    async def add_pbx(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Start a simulated PBX built from ``config`` (PbxConfig fields)."""
        return await self.call("add", name=name, config=config)

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(15):
                await self._call_on(process, "quit")
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()

    async def _call_on(self, process: asyncio.subprocess.Process, op: str) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write((json.dumps({"op": op}) + "\n").encode())
        await process.stdin.drain()
        await process.stdout.readline()


if __name__ == "__main__":
    main()

"""Command round trip: the client library against raw aiomqtt, to the same simulator.

Both sides run in this process, each against its own simulated PBX (same plan, its own
token, so that no reply is delivered to both) in one simulator process, through the same
Mosquitto. They take turns in small blocks (25 sequential commands, 10 dial/hangup
pairs, one round of concurrent commands), so drift of the machine during the run hits
both alike.

- ``raw``: an aiomqtt client subscribed to the same ``device/<token>/api/v1.0/+`` filter
  at QoS 1, publishing a pre-shaped command with a request_id at QoS 1 and resolving a
  future when the reply with that id arrives: the least any client must do.
- ``client``: ``SmartPbxClient`` over ``AiomqttTransport`` (validation, unique ids,
  reply correlation and typed parsing on top of the same work).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import itertools
from pathlib import Path
import socket
import time
from typing import Any

import aiomqtt
import orjson

from custom_components.smartpbx.pbx.aiomqtt_transport import AiomqttTransport
from custom_components.smartpbx.pbx.client import SmartPbxClient

from .common import BenchResult, Row, median, percentile
from .simhost import SimHost

TOKEN = "bench-commands"
RAW_TOKEN = "bench-commands-raw"
SIM_CONFIG: dict[str, Any] = {
    "token": TOKEN,
    "sip_extensions": 12,
    "fxs_extensions": 4,
    "queues": 2,
    "conferences": 2,
    # Dialled calls ring until the benchmark hangs them up.
    "answer_delay": None,
    "ring_timeout": 3600,
    "unregistered_ratio": 0.0,
}
CALLER, CALLEE = "8001", "8002"
QUEUE = "6666"
CONCURRENT = 1000
CONCURRENT_TIMEOUT = 60.0

type Request = Callable[[], Awaitable[Any]]


class RawRequester:
    """A bare request/reply client on aiomqtt (the baseline)."""

    def __init__(self, host: str, port: int, token: str = RAW_TOKEN) -> None:
        self._client = aiomqtt.Client(
            host,
            port,
            identifier="bench-raw",
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        self._client.pending_calls_threshold = 10 * CONCURRENT
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._base = f"device/{token}/api/v1.0"
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RawRequester:
        await self._client.__aenter__()
        await self._client.subscribe(f"{self._base}/+", qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        response_topic = f"{self._base}/response"
        async for message in self._client.messages:
            if message.topic.value != response_topic:
                continue
            reply = orjson.loads(message.payload)
            future = self._pending.pop(reply.get("request_id"), None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def request(self, sub: str, command: str, **fields: str) -> dict[str, Any]:
        request_id = f"r{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        payload = orjson.dumps({"cmd": command, "request_id": request_id, **fields})
        try:
            await self._client.publish(f"{self._base}/command/{sub}", payload, qos=1)
            return await future
        finally:
            self._pending.pop(request_id, None)


class LibraryClient:
    """The client library over its own transport, connected for one turn."""

    def __init__(self, host: str, port: int, qos: int = 1) -> None:
        self.transport = AiomqttTransport(host, port, client_id="bench-client")
        self.client = SmartPbxClient(self.transport, TOKEN, qos=qos)

    async def __aenter__(self) -> SmartPbxClient:
        await self.transport.connect()
        await self.client.start()
        return self.client

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.stop()
        await self.transport.close()


async def _timed(calls: int, request: Request) -> list[float]:
    """Sequential latencies in milliseconds."""
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        await request()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


async def _concurrent(requests: list[Request]) -> tuple[float, int, list[str]]:
    """Run all at once; wall time (ms), answered count, and the errors of the others."""

    async def guarded(request: Request) -> bool:
        async with asyncio.timeout(CONCURRENT_TIMEOUT):
            await request()
        return True

    start = time.perf_counter()
    results = await asyncio.gather(*(guarded(r) for r in requests), return_exceptions=True)
    wall = (time.perf_counter() - start) * 1000
    answered = sum(1 for r in results if r is True)
    errors = sorted({type(r).__name__ for r in results if r is not True})
    return wall, answered, errors


def _raw_dial_hangup(raw: RawRequester) -> Request:
    async def pair() -> None:
        reply = await raw.request("call", "dial", caller=CALLER, callee=CALLEE)
        await raw.request("call", "hangup", callid=reply["callid"])

    return pair


def _client_dial_hangup(client: SmartPbxClient) -> Request:
    async def pair() -> None:
        result = await client.dial(CALLER, CALLEE)
        await client.hangup(result.callid)

    return pair


def _raw_mix(raw: RawRequester, count: int) -> list[Request]:
    kinds: list[Request] = [
        lambda: raw.request("system", "deviceInfo"),
        lambda: raw.request("system", "extension_list"),
        lambda: raw.request("system", "trunk_list"),
        lambda: raw.request("queue", "queue_status", queue=QUEUE),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


def _client_mix(client: SmartPbxClient, count: int) -> list[Request]:
    kinds: list[Request] = [
        client.device_info,
        client.extension_list,
        client.trunk_list,
        lambda: client.queue_status(QUEUE),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


async def _nagle_rows(
    host: str, default_port: int, quick: bool, tuned_median: float, sim_log: Path | None
) -> list[Row]:
    """The same client against a Mosquitto left at its defaults (set_tcp_nodelay false).

    There every sequential command waits ~40 ms: on the broker's connection to the PBX,
    the next command (a small segment) is held back by Nagle's algorithm until the PBX's
    kernel acknowledges the broker's previous small segment (the PUBACK for the last
    reply), which it delays. Also measured with the client's ``qos=0``, to show that
    nothing on our side of the broker avoids it.
    """
    sim = SimHost(host, default_port, log_path=sim_log)
    await sim.start()
    try:
        await sim.add_pbx("commands", SIM_CONFIG)
        calls = 40 if quick else 150
        medians = {}
        for qos in (1, 0):
            async with LibraryClient(host, default_port, qos=qos) as client:
                await _timed(10, client.device_info)
                medians[qos] = median(await _timed(calls, client.device_info))
    finally:
        await sim.close()
    return [
        Row(
            "2 commands",
            "deviceInfo median, Mosquitto defaults (Nagle on)",
            medians[1],
            "ms",
            tuned_median,
            "same, set_tcp_nodelay true",
            note="client as shipped (QoS 1); ~40 ms is Nagle + delayed ACK on the"
            " broker's connection to the PBX",
        ),
        Row(
            "2 commands",
            "deviceInfo median, Mosquitto defaults, QoS 0",
            medians[0],
            "ms",
            tuned_median,
            "QoS 1, set_tcp_nodelay true",
            note="SmartPbxClient(qos=0): the stall is not on our connection",
        ),
    ]


async def run(
    host: str,
    port: int,
    quick: bool,
    sim: SimHost,
    default_port: int | None = None,
    sim_log: Path | None = None,
) -> BenchResult:
    info_blocks = 12 if quick else 80  # x 25 deviceInfo per side
    pair_blocks = 10 if quick else 50  # x 10 dial + hangup per side
    rounds = 2 if quick else 4  # of CONCURRENT commands per side
    await sim.add_pbx("commands", SIM_CONFIG)
    await sim.add_pbx("commands-raw", {**SIM_CONFIG, "token": RAW_TOKEN})

    samples: dict[str, list[float]] = {
        key: []
        for key in ("raw_info", "client_info", "raw_pair", "client_pair", "raw_conc", "client_conc")
    }
    answered = {"raw": 0, "client": 0}
    errors: dict[str, list[str]] = {"raw": [], "client": []}
    async with RawRequester(host, port) as raw, LibraryClient(host, port) as client:
        raw_info: Request = lambda: raw.request("system", "deviceInfo")  # noqa: E731
        await _timed(30, raw_info)  # warm-up, both
        await _timed(30, client.device_info)
        for _ in range(info_blocks):
            samples["raw_info"] += await _timed(25, raw_info)
            samples["client_info"] += await _timed(25, client.device_info)
        for _ in range(pair_blocks):
            samples["raw_pair"] += await _timed(10, _raw_dial_hangup(raw))
            samples["client_pair"] += await _timed(10, _client_dial_hangup(client))
        for _ in range(rounds):
            wall, ok, errs = await _concurrent(_raw_mix(raw, CONCURRENT))
            samples["raw_conc"].append(wall)
            answered["raw"] += ok
            errors["raw"] += errs
            wall, ok, errs = await _concurrent(_client_mix(client, CONCURRENT))
            samples["client_conc"].append(wall)
            answered["client"] += ok
            errors["client"] += errs

    stats = await sim.call("stats", name="commands")
    await sim.call("remove", name="commands")
    await sim.call("remove", name="commands-raw")

    expected = rounds * CONCURRENT
    lost = expected - answered["client"]
    result = BenchResult(name="commands", lost_events=lost)
    info_ratio = median(samples["client_info"]) / median(samples["raw_info"])
    pair_ratio = median(samples["client_pair"]) / median(samples["raw_pair"])
    result.rows += [
        Row(
            "2 commands",
            "deviceInfo round trip, median",
            median(samples["client_info"]),
            "ms",
            median(samples["raw_info"]),
            "raw aiomqtt",
            target="≤ 1.5x raw",
            met=info_ratio <= 1.5,
        ),
        Row(
            "2 commands",
            "deviceInfo round trip, p99",
            percentile(samples["client_info"], 0.99),
            "ms",
            percentile(samples["raw_info"], 0.99),
            "raw aiomqtt",
        ),
        Row(
            "2 commands",
            "dial + hangup (2 round trips), median",
            median(samples["client_pair"]),
            "ms",
            median(samples["raw_pair"]),
            "raw aiomqtt",
            target="≤ 1.5x raw",
            met=pair_ratio <= 1.5,
        ),
        Row(
            "2 commands",
            f"{CONCURRENT} concurrent commands, wall time",
            median(samples["client_conc"]),
            "ms",
            median(samples["raw_conc"]),
            "raw aiomqtt",
            target=f"all {CONCURRENT} answered",
            met=lost == 0,
            note=f"answered {answered['client']}/{expected} (raw {answered['raw']}/{expected})"
            + (f"; errors {errors['client']}" if errors["client"] else ""),
        ),
    ]
    if default_port is not None:
        result.rows += await _nagle_rows(
            host, default_port, quick, median(samples["client_info"]), sim_log
        )
    result.details = {
        "device_info_calls_per_side": 25 * info_blocks,
        "dial_hangup_pairs_per_side": 10 * pair_blocks,
        "concurrent_rounds": rounds,
        "simulator": stats,
        "errors": errors,
    }
    return result

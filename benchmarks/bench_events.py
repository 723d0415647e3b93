"""Event ingestion: extension_status events from the simulator to written entity states.

One Home Assistant (with Home Assistant's MQTT integration on the same broker), five
simulated PBXs (same plan, different tokens) in the simulator process, one Mosquitto.
Two paths, each against its own baseline, and a reference side:

- ``direct``: the Smart PBX entry of one PBX over its own connection (AiomqttTransport);
  an event counts when that extension's status sensor state is written.
  ``direct-baseline``: a bare aiomqtt subscriber on another PBX's topics that parses the
  same JSON and calls ``hass.states.async_set`` for the same two states the integration
  writes (status, on a call).
- ``ha-mqtt``: the Smart PBX entry of a third PBX over Home Assistant's MQTT.
  ``ha-mqtt-baseline``: a bare ``mqtt.async_subscribe`` callback on a fourth PBX's
  topics that parses the same JSON and writes the same two states.
- ``ha-mqtt-entities`` (a reference, bursts only, no target): a bare callback on a fifth
  PBX's topics that hands each status event to the ``ha-mqtt`` entry's coordinator:
  Home Assistant's entity writes without the integration's client.

All sides are observed the same way (a state-change listener stamping
``time.monotonic()``, one clock for all processes on Linux) and take turns, alternating
over the rounds. The do-it-yourself peer (Home Assistant's MQTT sensors with templates,
one per extension) runs in a Home Assistant process of its own: ``bench_events_diy``.

- Throughput: ``burst_extension_status(N)`` publishes N events back to back (QoS 1);
  events/s = N / (last matching state written - burst start).
- Latency: a paced publisher (1,000 events/s) stamps each event when the PBX produces
  it; latency = state written - produced, matched per extension in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import gc
import os
from pathlib import Path
import socket
import time
from typing import Any

import aiomqtt
from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.util.json import json_loads

from custom_components.smartpbx.pbx.models import ExtensionStatusEvent
from custom_components.smartpbx.pbx.parsing import extension_state

from .common import BenchResult, Row, median, percentile
from .hass_harness import (
    add_entry,
    add_ha_mqtt,
    direct_entry,
    ha_mqtt_entry,
    running_hass,
    runtime,
    settle,
    status_entity_ids,
)
from .profiling import profiled
from .simhost import SimHost

EXTENSIONS = 100
PACED_RATE = 1000.0
LATENCY_TARGET_MS = 20.0
THROUGHPUT_TARGET = 0.8
PATHS = {
    # path: (integration side, baseline side, what the baseline is)
    "direct": ("direct", "direct-baseline", "bare aiomqtt → async_set"),
    "ha-mqtt": ("ha-mqtt", "ha-mqtt-baseline", "bare mqtt.async_subscribe → async_set"),
}
ENTITIES_ONLY = "ha-mqtt-entities"
"""A reference side without a target, measured in the bursts only: see EntitiesOnlySubscriber."""
TOKENS = {
    "direct": ("bench-events", "BENCHEV0001"),
    "direct-baseline": ("bench-baseline", "BENCHEV0002"),
    "ha-mqtt": ("bench-events-ha", "BENCHEV0003"),
    "ha-mqtt-baseline": ("bench-baseline-ha", "BENCHEV0004"),
    ENTITIES_ONLY: ("bench-entities-ha", "BENCHEV0005"),
}


def pbx_config(token: str, serial: str) -> dict[str, Any]:
    return {
        "token": token,
        "serial": serial,
        "sip_extensions": EXTENSIONS,
        "fxs_extensions": 0,
        "sip_trunks": 2,
        "fxo_trunks": 2,
        "queues": 2,
        "conferences": 2,
        "first_sip": 10001,
        "unregistered_ratio": 0.0,
        "answer_delay": None,
        "ring_timeout": 3600,
    }


class StateRecorder:
    """Stamps every state change of the watched entities, by extension number."""

    def __init__(self, hass: HomeAssistant, entity_to_number: dict[str, str]) -> None:
        self._entity_to_number = entity_to_number
        self.times: dict[str, list[float]] = {n: [] for n in entity_to_number.values()}
        self.count = 0
        self.last = 0.0
        # One bus listener with a filter, the cheapest way to see every write; the same
        # for both sides so it cancels out of the ratios.
        self._unsub = hass.bus.async_listen(
            EVENT_STATE_CHANGED, self._record, event_filter=self._wanted
        )

    @callback
    def _wanted(self, event_data: EventStateChangedData) -> bool:
        return event_data["entity_id"] in self._entity_to_number

    @callback
    def _record(self, event: Event[EventStateChangedData]) -> None:
        now = time.monotonic()
        self.times[self._entity_to_number[event.data["entity_id"]]].append(now)
        self.count += 1
        self.last = now

    def reset(self) -> None:
        for times in self.times.values():
            times.clear()
        self.count = 0
        self.last = 0.0

    def close(self) -> None:
        self._unsub()


# Wire words of the states in which the integration's "On a call" sensor is on.
_ON_A_CALL_WORDS = frozenset({"inuse", "busy", "hold", "onhold", "inuse&hold"})


def _apply(hass: HomeAssistant, prefix: str, payload: bytes | bytearray | str) -> None:
    """What both baselines do with a message: parse, pick extension_status, async_set.

    They write the same two states the integration writes for a status event (the status
    and whether the extension is on a call), so that the ratio measures the integration's
    overhead, not the fact that it gives the user two entities where a bare bridge
    would give one.
    """
    data = json_loads(payload)
    if isinstance(data, dict) and data.get("event") == "extension_status":
        status = str(data["status"])
        hass.states.async_set(f"{prefix}{data['extension']}", status)
        on_a_call = "on" if status.lower() in _ON_A_CALL_WORDS else "off"
        hass.states.async_set(f"binary_{prefix}{data['extension']}_on_a_call", on_a_call)


class BaselineSubscriber:
    """The least an MQTT-to-state bridge on its own connection does: subscribe, parse,
    async_set."""

    prefix = "sensor.bench_baseline_"

    def __init__(self, hass: HomeAssistant, host: str, port: int, token: str) -> None:
        self._hass = hass
        self._client = aiomqtt.Client(
            host,
            port,
            identifier="bench-baseline-subscriber",
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        self._filter = f"device/{token}/api/v1.0/+"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._client.__aenter__()
        await self._client.subscribe(self._filter, qos=1)
        self._task = self._hass.async_create_background_task(self._run(), "bench baseline")

    async def _run(self) -> None:
        hass = self._hass
        async for message in self._client.messages:
            _apply(hass, self.prefix, message.payload)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.__aexit__(None, None, None)


class HassMqttBaselineSubscriber:
    """The same over Home Assistant's MQTT: a bare ``mqtt.async_subscribe`` callback."""

    prefix = "sensor.bench_ha_baseline_"

    def __init__(self, hass: HomeAssistant, token: str) -> None:
        self._hass = hass
        self._filter = f"device/{token}/api/v1.0/+"
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unsubscribe = await mqtt.async_subscribe(
            self._hass, self._filter, self._on_message, qos=1, encoding=None
        )

    @callback
    def _on_message(self, message: mqtt.ReceiveMessage) -> None:
        _apply(self._hass, self.prefix, message.payload)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()


class EntitiesOnlySubscriber(HassMqttBaselineSubscriber):
    """Home Assistant's entity writes alone: a bare ``mqtt.async_subscribe`` callback that
    hands each status event to the ha-mqtt entry's coordinator, which writes the same two
    entities as for its own client, with their context.

    None of the integration's client is in the way (no checks of the payload, no typed
    parse of all of it, no redelivery filter, no routing, no live-call poll): its ratio to
    the HA MQTT baseline is the ceiling that Home Assistant's entity model sets for the
    ha-mqtt path, and the ha-mqtt side's ratio to it is what the client's pipeline costs.

    Its events come from a PBX of their own, while the entry polls the ha-mqtt PBX (every
    extension Idle between bursts): a system poll landing in a reference burst (one burst
    in ~50: 30 s between polls, ~0.6 s per burst) puts the extensions back to Idle, and
    some of the burst's writes are then the poll's.
    """

    def __init__(self, hass: HomeAssistant, token: str, entry: ConfigEntry) -> None:
        super().__init__(hass, token)
        self._system = runtime(entry).system

    @callback
    def _on_message(self, message: mqtt.ReceiveMessage) -> None:
        data = json_loads(message.payload)
        if isinstance(data, dict) and data.get("event") == "extension_status":
            status = str(data["status"])
            self._system.async_handle_extension_status(
                ExtensionStatusEvent(
                    extension=str(data["extension"]),
                    state=extension_state(status),
                    state_raw=status,
                )
            )


class LoopLag:
    """How late a 5 ms timer fires on the event loop: shows when the whole process
    waited (a busy machine, a long callback) rather than the integration being slow."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            self.lags.append((time.monotonic() - before - 0.005) * 1000)

    def start(self) -> None:
        self.lags.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _collect_garbage() -> None:
    """Collect before each measured section, so that neither side pays for the other.

    Python's collector runs when enough new objects have piled up, and one pass over a
    whole Home Assistant heap (tens of milliseconds) lands in whichever section happens to
    be running then, often the one after setting up the entry: that alone moved the
    integration's CPU per event by a third from one run to the next.
    """
    gc.collect()


async def _burst(
    sim: SimHost, name: str, recorder: StateRecorder, count: int
) -> tuple[float, float, int, float]:
    """Events/s into states, events/s the publisher achieved, events not seen, and CPU
    microseconds of the event loop's thread per event (robust against a busy machine).
    """
    recorder.reset()
    _collect_garbage()
    cpu_before = time.thread_time()
    reply = await sim.call("burst", name=name, count=count)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            while recorder.count < count:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
    cpu_us = (time.thread_time() - cpu_before) / count * 1e6
    seen = recorder.count
    elapsed = (recorder.last or time.monotonic()) - reply["t_start"]
    published = reply["count"] / (reply["t_acked"] - reply["t_start"])
    return min(seen, count) / elapsed, published, max(0, count - seen), cpu_us


async def _paced(
    sim: SimHost, name: str, recorder: StateRecorder, count: int
) -> tuple[list[float], float, int]:
    """Per-event latencies (ms), the rate achieved, and events not seen."""
    recorder.reset()
    _collect_garbage()
    reply = await sim.call("paced", name=name, rate=PACED_RATE, count=count)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while recorder.count < count:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
    produced: dict[str, list[float]] = {}
    for stamp, number in zip(reply["times"], reply["numbers"], strict=True):
        produced.setdefault(number, []).append(stamp)
    latencies = []
    lost = 0
    for number, stamps in produced.items():
        written = recorder.times.get(number, [])
        lost += max(0, len(stamps) - len(written))
        latencies += [(w - p) * 1000 for p, w in zip(stamps, written, strict=False)]
    times = reply["times"]
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return latencies, rate, lost


async def run(host: str, port: int, quick: bool, sim: SimHost, profile: Path | None) -> BenchResult:
    rounds = 1 if quick else 3
    pool_cycles = 20 if quick else 50  # burst = pool x cycles (even: every extension ends Idle)
    paced_seconds = 3 if quick else 10

    result = BenchResult(name="events")
    async with running_hass() as (hass, _boot):
        await add_ha_mqtt(hass, host, port)
        pools = {}
        for side, (token, serial) in TOKENS.items():
            pools[side] = (await sim.add_pbx(side, pbx_config(token, serial)))["pool"]
        pool = pools["direct"]
        assert all(len(p) == EXTENSIONS for p in pools.values()), pools
        assert all(p == pool for p in pools.values()), "the PBXs' plans differ"
        burst_count = len(pool) * pool_cycles
        paced_count = int(PACED_RATE * paced_seconds) // (2 * len(pool)) * 2 * len(pool)

        entries = {
            "direct": direct_entry(host, port, *TOKENS["direct"]),
            "ha-mqtt": ha_mqtt_entry(*TOKENS["ha-mqtt"]),
        }
        recorders: dict[str, StateRecorder] = {}
        for side, entry in entries.items():
            await add_entry(hass, entry)
            await settle(hass)
            by_number = status_entity_ids(hass, entry)
            assert set(by_number) == set(pool), "status sensors do not match the extensions"
            recorders[side] = StateRecorder(hass, {eid: n for n, eid in by_number.items()})
        # Writes the ha-mqtt entry's entities: the ha-mqtt side's watcher counts them (the
        # sides take turns; a second listener would cost both of them one call per write).
        entities_only = EntitiesOnlySubscriber(hass, TOKENS[ENTITIES_ONLY][0], entries["ha-mqtt"])
        await entities_only.start()
        recorders[ENTITIES_ONLY] = recorders["ha-mqtt"]
        direct_baseline = BaselineSubscriber(hass, host, port, TOKENS["direct-baseline"][0])
        ha_baseline = HassMqttBaselineSubscriber(hass, TOKENS["ha-mqtt-baseline"][0])
        for side, baseline in (
            ("direct-baseline", direct_baseline),
            ("ha-mqtt-baseline", ha_baseline),
        ):
            await baseline.start()
            recorders[side] = StateRecorder(hass, {f"{baseline.prefix}{n}": n for n in pool})
        # Home Assistant's MQTT sends new subscriptions after a short cool-down.
        await settle(hass)

        sides = list(TOKENS)
        tput: dict[str, list[float]] = {side: [] for side in sides}
        cpu: dict[str, list[float]] = {side: [] for side in sides}
        publisher: dict[str, list[float]] = {side: [] for side in sides}
        latency: dict[str, list[float]] = {side: [] for side in sides}
        round_p99: dict[str, list[float]] = {side: [] for side in sides}
        loop_lag_max: dict[str, list[float]] = {side: [] for side in sides}
        paced_rate: dict[str, list[float]] = {side: [] for side in sides}
        lost = dict.fromkeys(sides, 0)
        lag = LoopLag()
        # Warm-up, not measured: first-time code paths, caches, the broker's buffers.
        for side in sides:
            await _burst(sim, side, recorders[side], 2 * len(pool))
        await settle(hass)
        for index in range(rounds):
            # Baseline first, then its integration, path by path; the order of the paths
            # alternates over the rounds.
            order = list(PATHS.values()) if index % 2 == 0 else list(PATHS.values())[::-1]
            for ours, base, _label in order:
                for side in (base, ours, *([ENTITIES_ONLY] if ours == "ha-mqtt" else [])):
                    recorder = recorders[side]
                    profile_here = profile if side == "direct" and index == 0 else None
                    with profiled(profile_here, "events-burst"):
                        events_per_s, published, missing, cpu_us = await _burst(
                            sim, side, recorder, burst_count
                        )
                    tput[side].append(events_per_s)
                    cpu[side].append(cpu_us)
                    publisher[side].append(published)
                    lost[side] += missing
                    await settle(hass)
                    if side == ENTITIES_ONLY:
                        continue  # a ceiling to read the ratio against: no latency to meet
                    with profiled(profile_here, "events-paced"):
                        lag.start()
                        samples, rate, missing = await _paced(sim, side, recorder, paced_count)
                        await lag.stop()
                    latency[side] += samples
                    round_p99[side].append(percentile(samples, 0.99))
                    loop_lag_max[side].append(max(lag.lags, default=0.0))
                    paced_rate[side].append(rate)
                    lost[side] += missing
                    await settle(hass)

        for recorder in set(recorders.values()):
            recorder.close()
        await direct_baseline.stop()
        await ha_baseline.stop()
        await entities_only.stop()
        for entry in entries.values():
            assert await hass.config_entries.async_unload(entry.entry_id)

    result.lost_events = sum(lost.values())
    for path, (ours, base, label) in PATHS.items():
        ratio = median(tput[ours]) / median(tput[base])
        # The median over rounds of each round's p99: one round disturbed by another
        # process on the machine must not decide the figure (full mode has 3 rounds).
        p99 = median(round_p99[ours])
        result.rows += [
            Row(
                "1 events",
                f"{path}: burst of {burst_count} extension_status → states, throughput",
                median(tput[ours]),
                "events/s",
                median(tput[base]),
                label,
                ratio=ratio,
                target=f"≥ {THROUGHPUT_TARGET}x baseline",
                met=ratio >= THROUGHPUT_TARGET,
                note=f"publisher acked {median(publisher[ours]):,.0f}/s"
                f" (baseline run {median(publisher[base]):,.0f}/s)",
            ),
            Row(
                "1 events",
                f"{path}: CPU per event in the burst (event loop thread)",
                median(cpu[ours]),
                "µs",
                median(cpu[base]),
                label,
                note="baseline/integration is the throughput ratio a free core would give",
            ),
            Row(
                "1 events",
                f"{path}: publish → state latency at {PACED_RATE:,.0f}/s, p50",
                median(latency[ours]),
                "ms",
                median(latency[base]),
                label,
            ),
            Row(
                "1 events",
                f"{path}: publish → state latency at {PACED_RATE:,.0f}/s, p99",
                p99,
                "ms",
                median(round_p99[base]),
                label,
                target=f"≤ {LATENCY_TARGET_MS:g} ms",
                met=p99 <= LATENCY_TARGET_MS,
                note=f"median of {rounds} round(s) of {paced_count} events, paced at"
                f" {median(paced_rate[ours]):,.0f}/s; max"
                f" {max(latency[ours], default=float('nan')):.1f} ms (baseline"
                f" {max(latency[base], default=float('nan')):.1f} ms); longest event loop"
                f" lag {max(loop_lag_max[ours]):.0f} ms (baseline"
                f" {max(loop_lag_max[base]):.0f} ms); load average"
                f" {os.getloadavg()[0]:.1f}",
            ),
        ]
    ha_label = PATHS["ha-mqtt"][2]
    result.rows += [
        Row(
            "1 events",
            "ha-mqtt, entities only (reference): burst throughput",
            median(tput[ENTITIES_ONLY]),
            "events/s",
            median(tput["ha-mqtt-baseline"]),
            ha_label,
            note="a bare callback hands each event to the ha-mqtt entry's coordinator: Home"
            " Assistant's entity writes without the integration's client, the ceiling of"
            " the ha-mqtt ratio",
        ),
        Row(
            "1 events",
            "ha-mqtt, entities only (reference): CPU per event in the burst",
            median(cpu[ENTITIES_ONLY]),
            "µs",
            median(cpu["ha-mqtt-baseline"]),
            ha_label,
        ),
        Row(
            "1 events",
            "ha-mqtt: burst throughput against entities only",
            median(tput["ha-mqtt"]),
            "events/s",
            median(tput[ENTITIES_ONLY]),
            "entities only (reference)",
            note="what the integration's client costs: MQTT message to coordinator",
        ),
    ]
    result.rows.append(
        Row(
            "1 events",
            "events lost (every side: integration, baselines, reference)",
            float(result.lost_events),
            "events",
            target="0",
            met=result.lost_events == 0,
        )
    )
    result.details = {
        "extensions": EXTENSIONS,
        "rounds": rounds,
        "burst_count": burst_count,
        "paced_count": paced_count,
        "throughput": tput,
        "cpu_us_per_event": cpu,
        "publisher_rate": publisher,
        "paced_rate": paced_rate,
        "p99_per_round_ms": round_p99,
        "loop_lag_max_ms": loop_lag_max,
        "lost": lost,
    }
    return result

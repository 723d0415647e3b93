"""The do-it-yourself peer of event ingestion, in a Home Assistant process of its own.

What a user builds without the integration: Home Assistant's MQTT integration with one
MQTT sensor per extension on the PBX's event topic, each with a value template that
takes the status from the events of its extension and keeps its state for the others.
Every event is therefore rendered by every extension's template. Same plan (100
extensions), same burst as ``bench_events``; the ratio to the integration's figures is
taken by ``python -m benchmarks`` (each side alone in its own process).
"""

from __future__ import annotations

from pathlib import Path

from .bench_events import EXTENSIONS, StateRecorder, _burst, pbx_config
from .common import BenchResult, Row, median
from .hass_harness import add_ha_mqtt, running_hass, settle, wait_until
from .simhost import SimHost

TOKEN = "bench-diy"
SERIAL = "BENCHEV0009"


def sensors_yaml(token: str, numbers: list[str]) -> str:
    """configuration.yaml: one MQTT sensor per extension, as a user would write it."""
    lines = ["mqtt:", "  sensor:"]
    for number in numbers:
        lines += [
            f"    - name: DIY {number}",
            f"      unique_id: diy_{number}",
            f"      state_topic: device/{token}/api/v1.0/event",
            "      value_template: >-",
            "        {% if value_json.event == 'extension_status'"
            f" and value_json.extension | string == '{number}' %}}"
            "{{ value_json.status }}{% else %}{{ this.state }}{% endif %}",
        ]
    return "\n".join(lines) + "\n"


def entity_id(number: str) -> str:
    return f"sensor.diy_{number}"


async def run(host: str, port: int, quick: bool, sim: SimHost, profile: Path | None) -> BenchResult:
    rounds = 1 if quick else 3
    pool_cycles = 20 if quick else 50  # the same bursts as bench_events
    result = BenchResult(name="events-diy")
    async with running_hass() as (hass, _boot):
        pool = (await sim.add_pbx("diy", pbx_config(TOKEN, SERIAL)))["pool"]
        assert len(pool) == EXTENSIONS, pool
        await add_ha_mqtt(hass, host, port, sensors_yaml(TOKEN, pool))
        await wait_until(lambda: all(hass.states.get(entity_id(n)) for n in pool), 30)
        await settle(hass)
        recorder = StateRecorder(hass, {entity_id(n): n for n in pool})
        burst_count = len(pool) * pool_cycles
        await _burst(sim, "diy", recorder, 2 * len(pool))  # warm-up
        await settle(hass)
        throughput: list[float] = []
        cpu: list[float] = []
        lost = 0
        for _ in range(rounds):
            events_per_s, _published, missing, cpu_us = await _burst(
                sim, "diy", recorder, burst_count
            )
            throughput.append(events_per_s)
            cpu.append(cpu_us)
            lost += missing
            await settle(hass)
        recorder.close()
    result.lost_events = lost
    result.rows.append(
        Row(
            "1 events",
            f"DIY peer (MQTT sensor + template per extension): burst of {burst_count}",
            median(throughput),
            "events/s",
            note=f"CPU {median(cpu):,.0f} µs per event; own Home Assistant process",
        )
    )
    result.details = {"burst_count": burst_count, "throughput": throughput, "cpu_us": cpu}
    return result

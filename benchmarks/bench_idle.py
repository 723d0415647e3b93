"""Idle cost: MQTT messages and CPU seconds per minute for an idle 100-extension PBX.

The PBX is idle (no calls, no status changes); the config entry uses the default poll
interval. CPU is this process's (user + system, every thread), which holds Home
Assistant and the integration but not the simulator or the broker. MQTT messages are
the PUBLISH packets between Home Assistant and the PBX (commands received and messages
sent by the simulated PBX); the transport's keep-alive (a PINGREQ/PINGRESP pair per
minute) comes on top.

Baseline: the same Home Assistant, idle, before the entry is added.

Two ways to get "per minute", both reported in full mode:

- measured: a real window (2 minutes in full mode);
- extrapolated (quick mode's only one): every coordinator is refreshed once by hand,
  which also restarts its poll timer, then a short window without any poll follows;
  per minute = idle rate x 60 + polls per minute x (cost of one poll cycle).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from custom_components.smartpbx.const import POLL_INTERVAL

from .common import BenchResult, Row, cpu_seconds
from .hass_harness import add_entry, direct_entry, running_hass, runtime, settle
from .simhost import SimHost

TOKEN = "bench-idle"
SERIAL = "BENCHIDLE001"
CONFIG: dict[str, Any] = {
    "token": TOKEN,
    "serial": SERIAL,
    "sip_extensions": 96,
    "fxs_extensions": 4,
    "sip_trunks": 2,
    "fxo_trunks": 4,
    "queues": 4,
    "queue_members": 5,
    "conferences": 2,
    "first_sip": 10001,
}


def _messages(stats: dict[str, Any]) -> int:
    return int(stats["commands_received"]) + int(sum(stats["published"].values()))


async def _window(sim: SimHost, seconds: float) -> tuple[float, int]:
    """CPU seconds and MQTT messages over ``seconds`` of doing nothing."""
    stats_before = await sim.call("stats", name="idle")
    cpu_before = cpu_seconds()
    await asyncio.sleep(seconds)
    cpu = cpu_seconds() - cpu_before
    stats_after = await sim.call("stats", name="idle")
    return cpu, _messages(stats_after) - _messages(stats_before)


async def run(host: str, port: int, quick: bool, sim: SimHost) -> BenchResult:
    bare_window = 5.0 if quick else 60.0
    quiet_window = 10.0 if quick else 25.0
    measured_window = None if quick else 120.0
    polls_per_minute = 60.0 / POLL_INTERVAL.total_seconds()

    result = BenchResult(name="idle")
    async with running_hass() as (hass, _boot):
        await settle(hass)
        cpu_before = cpu_seconds()
        await asyncio.sleep(bare_window)
        bare_cpu_per_min = (cpu_seconds() - cpu_before) / bare_window * 60

        await sim.add_pbx("idle", CONFIG)
        entry = direct_entry(host, port, TOKEN, SERIAL, options={})
        await add_entry(hass, entry)
        await settle(hass)
        data = runtime(entry)

        # One poll cycle by hand (it restarts every poll timer), then a quiet window.
        stats_before = await sim.call("stats", name="idle")
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(c.async_refresh() for c in data.coordinators))
        await hass.async_block_till_done()
        poll_wall = time.perf_counter() - started
        poll_cpu = cpu_seconds() - cpu_before
        poll_messages = _messages(await sim.call("stats", name="idle")) - _messages(stats_before)
        quiet_cpu, quiet_messages = await _window(sim, quiet_window)
        model_cpu = quiet_cpu / quiet_window * 60 + polls_per_minute * poll_cpu
        model_messages = quiet_messages / quiet_window * 60 + polls_per_minute * poll_messages

        measured: tuple[float, int] | None = None
        if measured_window is not None:
            cpu, messages = await _window(sim, measured_window)
            measured = (cpu / measured_window * 60, round(messages / measured_window * 60))
        assert await hass.config_entries.async_unload(entry.entry_id)

    cpu_per_min = measured[0] if measured else model_cpu
    messages_per_min = measured[1] if measured else model_messages
    how = (
        "measured over 2 min"
        if measured
        else f"extrapolated from one poll + {quiet_window:g} s quiet"
    )
    result.rows += [
        Row(
            "4 idle",
            "MQTT messages per minute, idle 100-ext PBX",
            float(messages_per_min),
            "msg/min",
            note=f"{how}; one poll cycle = {poll_messages} messages, every"
            f" {POLL_INTERVAL.total_seconds():.0f} s; model {model_messages:.0f}/min",
        ),
        Row(
            "4 idle",
            "CPU per minute, idle 100-ext PBX",
            cpu_per_min,
            "s/min",
            bare_cpu_per_min,
            "same HA without the entry",
            note=f"{how}; one poll cycle {poll_cpu * 1000:.0f} ms CPU,"
            f" {poll_wall * 1000:.0f} ms wall; model {model_cpu:.3f} s/min",
        ),
    ]
    result.details = {
        "bare_window_s": bare_window,
        "bare_cpu_per_min": bare_cpu_per_min,
        "poll_cpu_s": poll_cpu,
        "poll_wall_s": poll_wall,
        "poll_messages": poll_messages,
        "quiet_window_s": quiet_window,
        "quiet_cpu_s": quiet_cpu,
        "quiet_messages": quiet_messages,
        "model_cpu_per_min": model_cpu,
        "model_messages_per_min": model_messages,
        "measured": measured,
    }
    return result

"""Scale: one large PBX set up in a fresh Home Assistant (one extension count per process).

The PBX has ``extensions`` SIP extensions, 64 trunks (60 SIP + 4 FXO), 50 queues of 20
members and 20 conferences; only the extension count varies between processes, so the
orchestrator can fit the per-extension slope.

Measured here, for one extension count:

- setup: ``async_add`` of the config entry until every enabled entity of it has a state.
  A small entry is set up first, so that imports and the entity components' own set-up
  (a one-off for the first Smart PBX) are not counted. Baseline, in the same process:
  registering as many entities in the entity registry and writing their states with
  ``hass.states.async_set`` (the floor any integration with that many entities pays).
- memory: RSS growth from just before to just after that setup (after a full garbage
  collection), and the same for the baseline's entities.
- poll cycle: all four coordinators refreshed at once (as their timers line up), wall
  time and MQTT messages (commands and responses, counted by the simulator).
- event cost: CPU time of the event loop's thread per extension_status event in a burst
  (shows whether handling one event grows with the PBX).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from pathlib import Path
import time
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY

from .common import BenchResult, Row, median, settled_rss
from .hass_harness import (
    add_entry,
    direct_entry,
    enabled_entity_ids,
    missing_states,
    running_hass,
    runtime,
    settle,
    status_entity_ids,
    wait_until,
)
from .profiling import profiled
from .simhost import SimHost

TOKEN = "bench-scale"
SERIAL = "BENCHSCALE01"


def pbx_config(extensions: int) -> dict[str, Any]:
    return {
        "token": TOKEN,
        "serial": SERIAL,
        "sip_extensions": extensions,
        "fxs_extensions": 0,
        "sip_trunks": 60,
        "fxo_trunks": 4,
        "queues": 50,
        "queue_members": 20,
        "conferences": 20,
        "first_sip": 10001,
        "unregistered_ratio": 0.0,
        "answer_delay": None,
        "ring_timeout": 3600,
    }


ENTITY_CAP = MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
"""Home Assistant adds at most this many enabled entities per config entry (10,000)."""

WARMUP_CONFIG: dict[str, Any] = {"token": "bench-warmup", "serial": "BENCHWARM001"}


async def _bare_entities(hass: HomeAssistant, count: int) -> tuple[float, int]:
    """Register and write ``count`` plain entities: seconds taken and RSS added."""
    registry = er.async_get(hass)
    before = settled_rss()
    started = time.perf_counter()
    for index in range(count):
        item = registry.async_get_or_create(
            "sensor", "bench_bare", f"bare_{index}", suggested_object_id=f"bare_{index}"
        )
        hass.states.async_set(
            item.entity_id,
            "idle",
            {"friendly_name": f"Bare {index}", "device_class": "enum"},
        )
    await hass.async_block_till_done()
    seconds = time.perf_counter() - started
    return seconds, settled_rss() - before


async def _poll_cycle(sim: SimHost, hass: HomeAssistant, entry: Any) -> tuple[float, int, int]:
    """One refresh of every coordinator at once: seconds, commands, responses."""
    data = runtime(entry)
    before = await sim.call("stats", name="scale")
    started = time.perf_counter()
    await asyncio.gather(*(coordinator.async_refresh() for coordinator in data.coordinators))
    seconds = time.perf_counter() - started
    after = await sim.call("stats", name="scale")
    for coordinator in data.coordinators:
        if not coordinator.last_update_success:
            raise RuntimeError(f"{coordinator.name} poll failed: {coordinator.last_exception}")
    commands = after["commands_received"] - before["commands_received"]
    responses = after["published"].get("response", 0) - before["published"].get("response", 0)
    return seconds, commands, responses


async def _event_cost(
    sim: SimHost, hass: HomeAssistant, entry: Any, pool: list[str], cycles: int
) -> tuple[float, int]:
    """CPU microseconds of the loop thread per extension_status event, and events lost.

    The burst cycles over every extension; only those with a status sensor can show
    that an event arrived (above Home Assistant's entity cap some have none), so only
    theirs are counted.
    """
    by_number = status_entity_ids(hass, entry)
    count = len(pool) * cycles
    expected = cycles * len(set(pool) & set(by_number))
    written = 0
    watched = set(by_number.values())

    @callback
    def on_change(_event: Any) -> None:
        nonlocal written
        written += 1

    @callback
    def wanted(event_data: Any) -> bool:
        return event_data["entity_id"] in watched

    unsub = hass.bus.async_listen("state_changed", on_change, event_filter=wanted)
    try:
        cpu_before = time.thread_time()
        await sim.call("burst", name="scale", count=count)
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: written >= expected, limit=120, interval=0.01)
        cpu = time.thread_time() - cpu_before
    finally:
        unsub()
    return cpu / count * 1e6, max(0, expected - written)


async def run(
    host: str,
    port: int,
    quick: bool,
    sim: SimHost,
    extensions: int,
    profile: Path | None,
    *,
    broker_label: str | None = None,
) -> BenchResult:
    """One extension count; ``broker_label`` marks a run on a differently set-up broker
    (its rows say so, and the orchestrator keeps it out of the slopes)."""
    polls = 2 if quick else 3
    suffix = f", {broker_label}" if broker_label else ""
    result = BenchResult(name=f"scale-{extensions}" + (f"-{broker_label}" if broker_label else ""))
    async with running_hass() as (hass, boot_seconds):
        await sim.add_pbx("warmup", WARMUP_CONFIG)
        warmup = direct_entry(host, port, WARMUP_CONFIG["token"], WARMUP_CONFIG["serial"])
        warm_started = time.perf_counter()
        await add_entry(hass, warmup)
        warm_seconds = time.perf_counter() - warm_started
        await settle(hass)

        added = await sim.add_pbx("scale", pbx_config(extensions))
        entry = direct_entry(host, port, TOKEN, SERIAL)
        rss_before = settled_rss()
        gc.disable()  # a collection in the middle of one run and not another is noise
        try:
            with profiled(profile, f"scale-{extensions}-setup"):
                started = time.perf_counter()
                await add_entry(hass, entry)
                returned = time.perf_counter() - started
                entity_ids = enabled_entity_ids(hass, entry)
                await wait_until(lambda: missing_states(hass, entity_ids) == 0, limit=120)
                setup_seconds = time.perf_counter() - started
        finally:
            gc.enable()
        await settle(hass)
        rss_added = settled_rss() - rss_before
        all_entities = len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id))

        phases = {"setup + settle": time.perf_counter() - started}
        mark = time.perf_counter()
        poll_samples = []
        messages = []
        with profiled(profile, f"scale-{extensions}-poll"):
            for _ in range(polls):
                seconds, commands, responses = await _poll_cycle(sim, hass, entry)
                poll_samples.append(seconds)
                messages.append(commands + responses)
                await hass.async_block_till_done()

        phases["polls"] = time.perf_counter() - mark
        mark = time.perf_counter()

        burst_target = 1000 if quick else 4000
        event_us, lost = await _event_cost(
            sim,
            hass,
            entry,
            added["pool"],
            cycles=max(2, burst_target // max(extensions, 1) // 2 * 2),
        )
        await settle(hass)
        phases["event burst"] = time.perf_counter() - mark
        mark = time.perf_counter()

        bare_seconds, bare_rss = await _bare_entities(hass, len(entity_ids))
        phases["bare baseline"] = time.perf_counter() - mark
        mark = time.perf_counter()
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert await hass.config_entries.async_unload(warmup.entry_id)
        phases["unload"] = time.perf_counter() - mark

    poll = median(poll_samples)
    judged = extensions == 1000 and broker_label is None
    capped = (
        f" (Home Assistant's cap of {ENTITY_CAP:,} per entry reached: entities are missing)"
        if len(entity_ids) >= ENTITY_CAP
        else ""
    )
    result.lost_events = lost
    result.rows += [
        Row(
            "3 scale",
            f"setup to all states written, {extensions} ext{suffix}",
            setup_seconds,
            "s",
            bare_seconds,
            f"bare HA: register + write {len(entity_ids)} entities",
            target="≤ 5 s at 1,000" if judged else "",
            met=setup_seconds <= 5.0 if judged else None,
        ),
        Row(
            "3 scale",
            f"memory added by the entry, {extensions} ext{suffix}",
            rss_added / 1024 / extensions,
            "KiB/ext",
            bare_rss / 1024 / extensions,
            "bare HA: same entity count",
            note=f"{rss_added / 2**20:.1f} MiB in all (fixed costs included);"
            f" {len(entity_ids)} enabled entities{capped}",
        ),
        Row(
            "3 scale",
            f"full poll cycle, {extensions} ext{suffix}",
            poll,
            "s",
            target="≤ 1 s" if judged else "",
            met=poll <= 1.0 if judged else None,
            note=f"{median([float(m) for m in messages]):.0f} MQTT messages (commands + responses)",
        ),
    ]
    result.details = {
        "broker": broker_label or "set_tcp_nodelay true",
        "extensions": extensions,
        "boot_seconds": boot_seconds,
        "warmup_entry_setup_seconds": warm_seconds,
        "setup_seconds": setup_seconds,
        "setup_returned_seconds": returned,
        "enabled_entities": len(entity_ids),
        "all_entities": all_entities,
        "rss_added": rss_added,
        "bare_seconds": bare_seconds,
        "bare_rss": bare_rss,
        "poll_seconds": poll_samples,
        "poll_messages": messages,
        "event_cpu_us": event_us,
        "phases_seconds": phases,
    }
    return result

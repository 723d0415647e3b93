"""A PBX that stops answering (the broker stays up).

Bound (docs/reliability.md): entities go unavailable at most one poll interval plus one
command timeout after the PBX falls silent (plus up to a second: Home Assistant spreads
polls over the second), with one log line at warning level or above; they come back
within a poll interval of the PBX answering again. Actions sent meanwhile fail with a
timeout, never hang, and the table of commands awaiting replies stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

import custom_components.smartpbx as integration
from custom_components.smartpbx.const import DOMAIN

from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
)
from .reliability_helpers import eventually

POLL_INTERVAL = 1
COMMAND_TIMEOUT = 0.5
SCHEDULING_SLACK = 1.0
"""DataUpdateCoordinator schedules at a whole second plus a fixed fraction."""
UNAVAILABLE_BOUND = POLL_INTERVAL + COMMAND_TIMEOUT + SCHEDULING_SLACK
STATUS_8001 = "sensor.extension_8001_status"
WAITING_CALLS = "sensor.queue_6666_waiting_calls"
CONNECTIVITY = "binary_sensor.spx1004o4s_connectivity"


def _ours_at_warning(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name.startswith("custom_components.smartpbx")
        and record.levelno >= logging.WARNING
    ]


KINDS = {"system": 1, "queues": 1, "conferences": 1, "live calls": 1}


def _failures_by_kind(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    """How often each coordinator logged a failure (all our warnings must be those)."""
    counts: dict[str, int] = {}
    for record in _ours_at_warning(caplog):
        name = str(record.args[0]) if isinstance(record.args, tuple) else ""
        assert record.msg == "Error fetching %s data: %s", record.getMessage()
        kind = name.removeprefix("Smart PBX ")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


async def _queue_status(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
    )


async def test_silent_pbx_goes_unavailable_within_the_bound_and_comes_back(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    entry, runner = await smartpbx(poll_interval=POLL_INTERVAL, command_timeout=COMMAND_TIMEOUT)
    data = runtime(entry)
    caplog.clear()

    runner.silent = True
    silent_since = time.monotonic()
    # Each coordinator polls at its own random fraction of a second (Home Assistant's
    # spread), so the queues may fail a moment after the system: the bound holds for both.
    await eventually(
        lambda: hass.states.get(STATUS_8001).state == STATE_UNAVAILABLE
        and hass.states.get(WAITING_CALLS).state == STATE_UNAVAILABLE,
        limit=10,
    )
    went_unavailable = time.monotonic() - silent_since
    assert hass.states.get(CONNECTIVITY).state == "off"

    # Several more polls fail while it stays silent; still one line per kind of data.
    await asyncio.sleep(3 * POLL_INTERVAL)
    assert _failures_by_kind(caplog) == KINDS, _ours_at_warning(caplog)

    # Actions meanwhile: each fails after its timeout, none hangs, nothing stays pending.
    started = time.monotonic()
    results = await asyncio.gather(
        *(_queue_status(hass) for _ in range(20)), return_exceptions=True
    )
    took = time.monotonic() - started
    assert all(isinstance(result, HomeAssistantError) for result in results), results
    assert {result.translation_key for result in results} == {"command_timeout"}  # type: ignore[union-attr]
    assert took < COMMAND_TIMEOUT + SCHEDULING_SLACK
    await eventually(lambda: data.client.pending_count == 0)

    runner.silent = False
    answering_since = time.monotonic()
    await eventually(lambda: hass.states.get(STATUS_8001).state == "idle", limit=10)
    came_back = time.monotonic() - answering_since
    await eventually(lambda: hass.states.get(WAITING_CALLS).state == "0")
    assert hass.states.get(CONNECTIVITY).state == "on"
    assert _failures_by_kind(caplog) == KINDS
    assert [r.getMessage() for r in caplog.records].count(
        "Fetching Smart PBX system data recovered"
    ) == 1

    print(
        f"silent PBX: unavailable after {went_unavailable:.2f} s "
        f"(bound {UNAVAILABLE_BOUND:g} s), back {came_back:.2f} s after it answered; "
        f"20 actions timed out in {took:.2f} s"
    )
    assert went_unavailable <= UNAVAILABLE_BOUND
    assert came_back <= POLL_INTERVAL + SCHEDULING_SLACK + COMMAND_TIMEOUT


async def test_pending_requests_stay_bounded(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the bound an action fails at once (busy) instead of queueing without end."""
    monkeypatch.setattr(integration, "MAX_PENDING_COMMANDS", 10)
    entry, runner = await smartpbx(command_timeout=COMMAND_TIMEOUT)
    data = runtime(entry)
    runner.silent = True

    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, data.client.pending_count)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(
        *(_queue_status(hass) for _ in range(25)), return_exceptions=True
    )
    sampler.cancel()
    keys = [getattr(result, "translation_key", result) for result in results]
    assert keys.count("command_timeout") == 10
    assert keys.count("pbx_busy") == 15
    assert peak == 10
    assert data.client.pending_count == 0
    assert data.client.stats.commands_timed_out >= 10

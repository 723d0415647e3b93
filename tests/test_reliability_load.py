"""Load: 500 actions at once, from scripts, all answered and matched to their requests.

Two parallel-mode scripts ask for the status of one of ten queues or ten conferences and
report what came back. Every reply must name the subject its own request asked about
(replies share one response topic: correlation by request id), none may be lost, and
afterwards nothing is left behind: no pending request, no extra task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.setup import async_setup_component

from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
)
from .reliability_helpers import eventually

ACTIONS = 500
BUSY_PBX = dataclasses.replace(SMALL_PBX, queues=10, conferences=10)
QUEUES = [str(6666 + index) for index in range(10)]
CONFERENCES = [str(7001 + index) for index in range(10)]
RESULT_EVENT = "pbx_load_result"


def _script(action: str, field: str, reply_field: str) -> dict[str, Any]:
    return {
        "mode": "parallel",
        "max": ACTIONS,
        "sequence": [
            {
                "action": f"smartpbx.{action}",
                "data": {field: "{{ subject }}"},
                "response_variable": "reply",
            },
            {
                "event": RESULT_EVENT,
                "event_data": {
                    "run": "{{ run }}",
                    "asked": "{{ subject }}",
                    "got": f"{{{{ reply.{reply_field} }}}}",
                },
            },
        ],
    }


async def test_500_concurrent_actions_from_scripts(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, _ = await smartpbx(sim_config=BUSY_PBX, command_timeout=30.0)
    data = runtime(entry)
    assert set(data.queues.data) == set(QUEUES)
    assert await async_setup_component(
        hass,
        "script",
        {
            "script": {
                "queue_load": _script("get_queue_status", "queue", "queue"),
                "conference_load": _script("get_conference_status", "conference", "conference"),
            }
        },
    )
    await hass.async_block_till_done()
    results: list[dict[str, Any]] = []

    @callback
    def collect(event: Event) -> None:
        results.append(dict(event.data))

    stop_collecting = hass.bus.async_listen(RESULT_EVENT, collect)
    tasks_before = {task for task in asyncio.all_tasks() if not task.done()}
    answered_before = data.client.stats.commands_answered
    peak = 0

    async def watch_pending() -> None:
        nonlocal peak
        while True:
            peak = max(peak, data.client.pending_count)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch_pending())
    started = time.monotonic()
    for run in range(ACTIONS):
        script, subjects = (
            ("queue_load", QUEUES) if run % 2 == 0 else ("conference_load", CONFERENCES)
        )
        await hass.services.async_call(
            "script", script, {"run": run, "subject": subjects[run % 10]}, blocking=False
        )
    await eventually(lambda: len(results) >= ACTIONS, limit=60)
    took = time.monotonic() - started
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    await hass.async_block_till_done()
    stop_collecting()

    # All answered, each with its own subject, each run once.
    assert sorted(int(result["run"]) for result in results) == list(range(ACTIONS))
    mismatched = [result for result in results if str(result["asked"]) != str(result["got"])]
    assert mismatched == []
    assert data.client.stats.commands_answered - answered_before >= ACTIONS
    assert data.client.stats.commands_timed_out == 0
    assert peak > 1  # they really were in flight together

    # Nothing left behind.
    assert data.client.pending_count == 0
    # (aiomqtt waits for each message in a task of its own, so compare counts, not sets.)
    await eventually(
        lambda: len([t for t in asyncio.all_tasks() if not t.done()]) <= len(tasks_before)
    )
    print(
        f"load: {ACTIONS} script actions answered and matched in {took:.2f} s "
        f"({ACTIONS / took:.0f}/s), up to {peak} awaiting replies at once"
    )

"""``python -m tests.soak``: random faults under steady traffic, through a real Home Assistant.

Runs a real (headless) Home Assistant with the integration set up for a simulated PBX on
a private Mosquitto, our connection going through a TCP relay so that it alone can be
cut. For ``--minutes`` it keeps up traffic, CDRs with numbered call ids (the ones
counted), extension status changes, random calls of the simulator's own, and actions from
a few concurrent workers, while it injects one fault at a time, in random order:

- ``broker_restart``: Mosquitto stops for 1-5 s (it keeps no sessions across restarts);
- ``pbx_silent``: the PBX stops answering and publishing for 2-8 s;
- ``pbx_reboot``: the PBX leaves the broker for 1-3 s and comes back with uptime 0;
- ``client_cut``: only our own connection drops for 2-4 s (the broker and PBX stay).

A CDR may be lost only when it was published inside the window of a fault that loses
messages by nature (broker down, PBX silent or rebooting; ``client_cut`` loses nothing:
persistent session, QoS 1). An action may fail or time out only around a fault. At the
end it checks for leaks: memory growth, commands still awaiting replies, tasks of the
integration left after unloading it. It prints the figures and exits 1 on any lost
event, unexpected action failure, hung action, reload, or leak.
"""

from __future__ import annotations

import argparse
from array import array
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
import gc
import logging
import os
import random
import sys
import tempfile
import time
from types import MappingProxyType
from typing import Any
from unittest.mock import patch

from homeassistant import bootstrap, config_entries, loader
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

import custom_components.smartpbx as integration
from custom_components.smartpbx import coordinator as coordinator_module
from custom_components.smartpbx.const import (
    CONF_TLS,
    CONF_TOKEN,
    CONF_TRANSPORT,
    CONF_VERIFY_SSL,
    DOMAIN,
    EVENT_CDR,
    TRANSPORT_DIRECT,
)
from custom_components.smartpbx.coordinator import SmartPbxData
from custom_components.smartpbx.pbx.client import SmartPbxClient
from smartpbx_sim import PbxConfig
from smartpbx_sim.runner import SimulatorRunner

from .broker import MosquittoBroker
from .reliability_helpers import TcpProxy

FAULTS = ("broker_restart", "pbx_silent", "pbx_reboot", "client_cut")
LOSSY_FAULTS = frozenset({"broker_restart", "pbx_silent", "pbx_reboot"})
POLL_INTERVAL = 5
COMMAND_TIMEOUT = 2.0
HANG_MARGIN = 10.0
"""An action still running this long after its command timeout has hung."""
RECOVERY_LIMIT = 45.0
"""Longest wait for connections to return after a fault (reconnect backoff tops at 30 s)."""
CALLID_BASE = "990000000"
PBX = PbxConfig(
    token="soak-token",
    serial="XR0000SOAK000001",
    sip_extensions=8,
    fxs_extensions=2,
    queues=2,
    conferences=2,
    answer_delay=1.0,
    ring_timeout=10.0,
)
ACTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("get_queue_status", {"queue": "6666"}),
    ("get_queue_status", {"queue": "6667"}),
    ("get_conference_status", {"conference": "7001"}),
    ("get_live_calls", {}),
    ("send_command", {"sub_topic": "system", "payload": {"cmd": "deviceInfo"}}),
)

_LOGGER = logging.getLogger("soak")


@dataclass(slots=True)
class Window:
    """One fault, from its start to the moment everything was connected again."""

    kind: str
    start: float
    end: float

    def covers(self, moment: float, before: float = 0.0, after: float = 0.0) -> bool:
        return self.start - before <= moment <= self.end + after


@dataclass(slots=True)
class ActionOutcome:
    started: float
    ended: float
    outcome: str
    """failed, timed_out or hung."""
    detail: str = ""


@dataclass
class ActionLog:
    """Actions that were not ok, in parallel arrays (thousands fail fast in an outage)."""

    started: array[float] = field(default_factory=lambda: array("d"))
    ended: array[float] = field(default_factory=lambda: array("d"))
    what: array[int] = field(default_factory=lambda: array("H"))
    """Index into ``descriptions``."""
    descriptions: list[tuple[str, str]] = field(default_factory=list)
    _index: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, outcome: ActionOutcome) -> None:
        key = (outcome.outcome, outcome.detail)
        if (index := self._index.get(key)) is None:
            index = self._index[key] = len(self.descriptions)
            self.descriptions.append(key)
        self.started.append(outcome.started)
        self.ended.append(outcome.ended)
        self.what.append(index)

    def __iter__(self) -> Iterator[ActionOutcome]:
        for started, ended, index in zip(self.started, self.ended, self.what, strict=True):
            yield ActionOutcome(started, ended, *self.descriptions[index])


@dataclass
class Figures:
    """Everything the run measured, kept compact: memory growth is one of the verdicts.

    CDR number ``n`` (call id ``CALLID_BASE.n``) was sent at ``sent[n - 1]`` and received
    ``received[n - 1]`` times.
    """

    minutes: float = 0.0
    seed: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    sent: array[float] = field(default_factory=lambda: array("d"))
    received: array[int] = field(default_factory=lambda: array("H"))
    actions_ok: int = 0
    actions: ActionLog = field(default_factory=ActionLog)
    windows: list[Window] = field(default_factory=list)
    recoveries: dict[str, list[float]] = field(default_factory=dict)
    memory_start: int = 0
    memory_end: int = 0
    pending_end: int = -1
    tasks_left: list[str] = field(default_factory=list)
    reloaded: bool = False
    unavailable_end: list[str] = field(default_factory=list)
    log_counts: Counter[str] = field(default_factory=Counter)


def rss_bytes() -> int:
    """Resident memory after a full collection, so dead cycles do not count."""
    gc.collect()
    gc.collect()
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class _CountingHandler(logging.Handler):
    """Counts the integration's log lines at warning and above, by message template."""

    def __init__(self, counts: Counter[str]) -> None:
        super().__init__(logging.WARNING)
        self._counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        self._counts[f"{record.levelname} {record.name}: {str(record.msg)[:70]}"] += 1


@contextlib.asynccontextmanager
async def headless_hass(config_dir: str, name: str = "Soak") -> AsyncIterator[HomeAssistant]:
    """A started Home Assistant with its core only (no frontend, recorder or http).

    Built as ``homeassistant.bootstrap`` builds one (core, registries, restore state,
    translations, core config; real storage in ``config_dir``). The benchmarks use it too.
    """
    hass = HomeAssistant(config_dir)
    loader.async_setup(hass)
    hass.config.skip_pip = True
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await loader.async_get_custom_components(hass)
    if not await bootstrap.async_load_base_functionality(hass):
        raise RuntimeError("Home Assistant's base functionality did not load")
    for domain in sorted(bootstrap.CORE_INTEGRATIONS):
        if not await async_setup_component(hass, domain, {}):
            raise RuntimeError(f"core integration {domain} did not set up")
    await async_process_ha_core_config(
        hass,
        {
            "name": name,
            "latitude": 52.37,
            "longitude": 4.89,
            "elevation": 0,
            "unit_system": "metric",
            "time_zone": "UTC",
        },
    )
    await hass.async_start()
    await hass.async_block_till_done()
    try:
        yield hass
    finally:
        await hass.async_stop()


def direct_entry(host: str, port: int) -> ConfigEntry:
    return ConfigEntry(
        domain=DOMAIN,
        title="Soak PBX",
        data={
            CONF_TRANSPORT: TRANSPORT_DIRECT,
            CONF_HOST: host,
            CONF_PORT: port,
            CONF_USERNAME: None,
            CONF_PASSWORD: None,
            CONF_TLS: False,
            CONF_VERIFY_SSL: True,
            CONF_TOKEN: PBX.token,
        },
        options={},
        source=config_entries.SOURCE_USER,
        unique_id=PBX.serial,
        version=1,
        minor_version=1,
        discovery_keys=MappingProxyType({}),
        subentries_data=None,
    )


async def wait_until(predicate: Callable[[], bool], limit: float) -> float:
    """Wait for ``predicate``; returns how long it took (raises TimeoutError past limit)."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110  # nothing to await on here
            await asyncio.sleep(0.02)
    return time.monotonic() - started


class Soak:
    """One soak run; ``await run()`` fills ``figures``."""

    def __init__(self, minutes: float, seed: int, event_rate: float, workers: int) -> None:
        self.figures = Figures(minutes=minutes, seed=seed)
        self._duration = minutes * 60
        self._random = random.Random(seed)
        self._event_rate = event_rate
        self._workers = workers
        self._stopping = asyncio.Event()
        self._broker = MosquittoBroker()
        self._proxy = TcpProxy(self._broker)
        self._runner: SimulatorRunner | None = None
        self._hass: HomeAssistant | None = None
        self._data: SmartPbxData | None = None

    # --- set-up -----------------------------------------------------------------------

    async def run(self) -> Figures:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._broker.start)
        await self._proxy.start()
        self._runner = SimulatorRunner(
            PBX,
            host=self._broker.host,
            port=self._broker.port,
            traffic=20.0,
            reconnect_interval=0.5,
        )
        counting = _CountingHandler(self.figures.log_counts)
        logging.getLogger("custom_components.smartpbx").addHandler(counting)
        try:
            await self._runner.start()
            with tempfile.TemporaryDirectory(prefix="smartpbx-soak-") as config_dir:
                async with headless_hass(config_dir) as hass:
                    self._hass = hass
                    await self._run_in(hass)
        finally:
            logging.getLogger("custom_components.smartpbx").removeHandler(counting)
            await self._runner.stop()
            await self._proxy.close()
            await loop.run_in_executor(None, self._broker.close)
        return self.figures

    async def _run_in(self, hass: HomeAssistant) -> None:
        entry = direct_entry(self._proxy.host, self._proxy.port)
        # The integration's own 30 s / 15 s, shortened so that a soak run sees many polls
        # and timeouts (the values are read once, at setup).
        with (
            patch.object(
                integration, "SmartPbxClient", partial(SmartPbxClient, timeout=COMMAND_TIMEOUT)
            ),
            patch.object(coordinator_module, "SETUP_ANSWER_WITHIN", COMMAND_TIMEOUT),
            patch.object(coordinator_module, "POLL_INTERVAL", timedelta(seconds=POLL_INTERVAL)),
        ):
            await hass.config_entries.async_add(entry)
        if entry.state is not ConfigEntryState.LOADED:
            raise RuntimeError(f"the config entry did not load: {entry.state}")
        data: SmartPbxData = entry.runtime_data
        self._data = data
        unsubscribe = hass.bus.async_listen(EVENT_CDR, self._on_cdr)

        traffic = [
            asyncio.create_task(self._emit_events(), name="soak events"),
            *(
                asyncio.create_task(self._act(hass), name=f"soak actions {index}")
                for index in range(self._workers)
            ),
        ]
        await asyncio.sleep(3)  # warm up: caches, first polls, first calls
        self.figures.memory_start = rss_bytes()
        await self._inject_faults()
        self._stopping.set()
        await asyncio.gather(*traffic)

        # Settle: everything sent arrives, the last polls land.
        await self._settle()
        self.figures.reloaded = entry.runtime_data is not data or (
            entry.state is not ConfigEntryState.LOADED
        )
        self.figures.pending_end = data.client.pending_count
        self.figures.unavailable_end = [
            state.entity_id
            for item in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
            if item.disabled_by is None
            and (state := hass.states.get(item.entity_id)) is not None
            and state.state == "unavailable"
        ]
        self.figures.memory_end = rss_bytes()
        unsubscribe()

        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert self._runner is not None
        await self._runner.stop()  # its own aiomqtt client must not count
        await asyncio.sleep(0.5)
        self.figures.tasks_left = _integration_tasks()

    @callback
    def _on_cdr(self, event: Event) -> None:
        callid = event.data.get("callid") or ""
        prefix, _, number = callid.partition(".")
        if prefix != CALLID_BASE or not number.isdigit():
            return
        index = int(number) - 1
        received = self.figures.received
        if index >= len(received):
            received.extend([0] * (index + 1 - len(received)))
        received[index] = min(received[index] + 1, 0xFFFF)

    async def _settle(self) -> None:
        last = -1
        quiet_since = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            total = sum(self.figures.received)
            if total != last:
                last, quiet_since = total, time.monotonic()
            elif time.monotonic() - quiet_since > 3 and self._all_up():
                break
            await asyncio.sleep(0.1)
        assert self._data is not None
        for coordinator in self._data.coordinators:
            await coordinator.async_refresh()
        assert self._hass is not None
        await self._hass.async_block_till_done()

    # --- traffic ------------------------------------------------------------------------

    async def _emit_events(self) -> None:
        runner = self._runner
        assert runner is not None
        number = 0
        while not self._stopping.is_set():
            number += 1
            callid = f"{CALLID_BASE}.{number}"
            self.figures.sent.append(time.monotonic())
            runner.emit_cdr("8001", "8002", callid=callid, billsec=number % 90)
            if number % 3 == 0:
                runner.burst_extension_status(1)
            await asyncio.sleep(1 / self._event_rate)

    async def _act(self, hass: HomeAssistant) -> None:
        while not self._stopping.is_set():
            action, data = self._random.choice(ACTIONS)
            started = time.monotonic()
            outcome, detail = "ok", ""
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT + HANG_MARGIN):
                    await hass.services.async_call(
                        DOMAIN, action, data, blocking=True, return_response=True
                    )
            except TimeoutError:
                outcome, detail = "hung", action
            except HomeAssistantError as err:
                timed_out = err.translation_key == "command_timeout"
                outcome = "timed_out" if timed_out else "failed"
                detail = f"{action}: {err.translation_key or err}"
            if outcome == "ok":
                self.figures.actions_ok += 1
            else:
                self.figures.actions.add(ActionOutcome(started, time.monotonic(), outcome, detail))
            await asyncio.sleep(self._random.uniform(0.02, 0.08))

    # --- faults -------------------------------------------------------------------------

    def _all_up(self) -> bool:
        assert self._runner is not None
        assert self._data is not None
        return self._runner.connected and self._data.transport.connected

    async def _inject_faults(self) -> None:
        deadline = time.monotonic() + self._duration
        order: list[str] = []
        while True:
            calm = self._random.uniform(4.0, 7.0)
            if time.monotonic() + calm + 12 > deadline:
                break
            await asyncio.sleep(calm)
            if not order:
                order = list(FAULTS)
                self._random.shuffle(order)
            kind = order.pop()
            fault: Callable[[], Awaitable[None]] = getattr(self, f"_{kind}")
            start = time.monotonic()
            _LOGGER.info("fault: %s", kind)
            await fault()
            took = await wait_until(self._all_up, RECOVERY_LIMIT)
            end = time.monotonic()
            self.figures.windows.append(Window(kind, start, end))
            self.figures.recoveries.setdefault(kind, []).append(took)
            self.figures.faults[kind] += 1
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def _broker_restart(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._broker.stop)
        await asyncio.sleep(self._random.uniform(1.0, 5.0))
        await loop.run_in_executor(None, self._broker.start)

    async def _pbx_silent(self) -> None:
        assert self._runner is not None
        self._runner.silent = True
        await asyncio.sleep(self._random.uniform(2.0, 8.0))
        self._runner.silent = False

    async def _pbx_reboot(self) -> None:
        assert self._runner is not None
        await self._runner.reboot(downtime=self._random.uniform(1.0, 3.0), limit=RECOVERY_LIMIT)
        await self._runner.wait_connected(RECOVERY_LIMIT)

    async def _client_cut(self) -> None:
        await self._proxy.cut()
        await asyncio.sleep(self._random.uniform(2.0, 4.0))
        await self._proxy.resume()


def _integration_tasks() -> list[str]:
    """Running tasks whose code is the integration's or aiomqtt's (none after unload)."""
    left = []
    for task in asyncio.all_tasks():
        if task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if "custom_components/smartpbx" in filename or "aiomqtt" in filename:
            left.append(f"{task.get_name()} ({getattr(code, 'co_qualname', '?')})")
    return left


# --- verdict -----------------------------------------------------------------------------


@dataclass(slots=True)
class Verdict:
    lines: list[str]
    failures: list[str]


def judge(figures: Figures, max_growth_mb: float) -> Verdict:
    lossy = [w for w in figures.windows if w.kind in LOSSY_FAULTS]

    # A message emitted just before a broker or PBX outage may still be in the PBX's
    # outbox when it goes (the simulator drops it, as a device does): half a second.
    def received(index: int) -> int:
        return figures.received[index] if index < len(figures.received) else 0

    def in_lossy_window(at: float) -> bool:
        return any(window.covers(at, before=0.5) for window in lossy)

    expected = [index for index, at in enumerate(figures.sent) if not in_lossy_window(at)]
    in_windows = len(figures.sent) - len(expected)
    lost = [f"{CALLID_BASE}.{index + 1}" for index in expected if received(index) == 0]
    lost_in_windows = sum(
        1 for index, at in enumerate(figures.sent) if received(index) == 0 and in_lossy_window(at)
    )
    duplicates = sum(count - 1 for count in figures.received if count > 1)
    outcomes = Counter(action.outcome for action in figures.actions)
    outcomes["ok"] = figures.actions_ok
    unexpected = [
        action
        for action in figures.actions
        if not any(
            window.covers(action.started, after=COMMAND_TIMEOUT + 1)
            or window.covers(action.ended, before=0.1, after=COMMAND_TIMEOUT + 1)
            or (action.started <= window.start and action.ended >= window.end)
            for window in figures.windows
        )
    ]
    growth_mb = (figures.memory_end - figures.memory_start) / 2**20
    recoveries = ", ".join(
        f"{kind} max {max(times):.1f} s" for kind, times in sorted(figures.recoveries.items())
    )
    faults = ", ".join(f"{kind} x{count}" for kind, count in sorted(figures.faults.items()))
    lines = [
        f"soak: {figures.minutes:g} min, seed {figures.seed}, faults: {faults or 'none'}",
        f"recovery (until PBX and Home Assistant were connected again): {recoveries or '-'}",
        f"events: sent {len(figures.sent)}, expected {len(expected)}, "
        f"received {sum(1 for count in figures.received if count)} distinct, "
        f"lost {len(lost)}, duplicates {duplicates}; inside fault windows {in_windows} sent, "
        f"{lost_in_windows} lost as expected",
        f"actions: ok {outcomes['ok']}, failed {outcomes['failed']}, "
        f"timed out {outcomes['timed_out']}, hung {outcomes['hung']}; "
        f"outside fault windows not ok: {len(unexpected)}",
        f"memory: start {figures.memory_start / 2**20:.1f} MB, end "
        f"{figures.memory_end / 2**20:.1f} MB ({growth_mb:+.1f} MB, limit {max_growth_mb:g})",
        f"pending at end: {figures.pending_end}, integration tasks after unload: "
        f"{len(figures.tasks_left)}, reloaded: {'yes' if figures.reloaded else 'no'}, "
        f"unavailable entities at end: {len(figures.unavailable_end)}",
    ]
    if figures.log_counts:
        lines.append("integration log lines at warning or above:")
        lines += [f"  {count:5d}  {text}" for text, count in figures.log_counts.most_common(12)]
    failures = []
    if lost:
        failures.append(f"{len(lost)} events lost outside fault windows, e.g. {lost[:5]}")
    if unexpected:
        failures.append(
            f"{len(unexpected)} actions not ok outside fault windows, e.g. "
            + "; ".join(f"{a.outcome} {a.detail}" for a in unexpected[:5])
        )
    if outcomes["hung"]:
        failures.append(f"{outcomes['hung']} actions hung")
    if growth_mb > max_growth_mb:
        failures.append(f"memory grew {growth_mb:.1f} MB")
    if figures.pending_end != 0:
        failures.append(f"{figures.pending_end} commands still awaiting replies")
    if figures.tasks_left:
        failures.append(f"tasks left after unload: {figures.tasks_left}")
    if figures.reloaded:
        failures.append("the config entry was reloaded or is no longer loaded")
    if figures.unavailable_end:
        failures.append(f"entities still unavailable: {figures.unavailable_end[:5]}")
    if not figures.sent or not figures.actions_ok:
        failures.append("no traffic")
    return Verdict(lines, failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="fault order and timing")
    parser.add_argument(
        "--event-rate", type=float, default=20.0, help="counted CDRs per second (default 20)"
    )
    parser.add_argument("--workers", type=int, default=4, help="concurrent action loops")
    parser.add_argument(
        "--max-memory-growth-mb",
        type=float,
        default=64.0,
        help="fail when resident memory grows more than this (default 64)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the faults")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**31)

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("soak").setLevel(logging.INFO if args.verbose else logging.WARNING)
    # Expected noise: HA's notice about custom integrations, the simulator's reconnects.
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)
    logging.getLogger("smartpbx_sim").setLevel(logging.ERROR)
    if not args.verbose:
        # Counted (and summarised) rather than printed: the faults make them on purpose.
        logging.getLogger("custom_components.smartpbx").propagate = False

    soak = Soak(args.minutes, seed, args.event_rate, args.workers)
    figures = asyncio.run(soak.run())
    verdict = judge(figures, args.max_memory_growth_mb)
    print("\n".join(verdict.lines))
    if verdict.failures:
        print("FAILED:\n  " + "\n  ".join(verdict.failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

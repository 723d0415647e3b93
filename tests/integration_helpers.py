"""Set the integration up against the simulator on a real broker, for any test that needs it.

Stable API (other test modules rely on it):

- ``await setup_integration(hass, broker, *, sim_config=None, data=None, ...)``
  starts a :class:`SimulatorRunner` on ``broker``, adds a direct-transport config entry
  for it and sets it up; returns ``(entry, runner)``. The caller owns both: unload the
  entry and ``await runner.stop()`` afterwards, or use the fixture below, which does it.
- ``smartpbx`` fixture: an async factory with the same keyword arguments (``broker``
  defaults to the session broker); everything it made is unloaded and stopped at teardown.
  Import the fixture functions (their ``name=`` is what tests ask for) into a test module:
  ``from .integration_helpers import real_broker_fixture, smartpbx_fixture  # noqa: F401``
  and use ``real_broker`` / ``smartpbx`` as test arguments.
- ``direct_entry_data(broker, token)``, ``add_entry(...)`` build entries without setting
  them up (e.g. to test setup failures).
- ``set_timing(command_timeout=..., poll_interval=...)``: the command timeout and poll
  interval of entries set up from then on in this test (``command_timeout`` and
  ``poll_interval`` arguments of the helpers below call it).
- ``await wait_for(predicate, limit=...)`` polls a condition on the event loop with a
  deadline; ``entity_id_of(hass, platform, unique_id)`` finds an entity id by unique id.
- ``SIM_PROFILE`` / ``with_profile(config)``: the firmware profile the helpers' simulators
  play; the ``sim_profile`` fixture (conftest) sets it, and ``real_broker`` asks for that
  fixture, so every test on the real broker runs against both profiles.
- ``real_broker`` fixture: the session ``broker``, created only after this test enabled
  sockets. phcc disables sockets in its own ``pytest_runtest_setup`` hook, which runs
  after pytest-socket's, so the ``enable_socket`` marker alone does not help, and a
  session fixture is set up before any function fixture (like ``socket_enabled``) would
  enable them. Tests that need their own brokers list ``socket_enabled`` before
  ``private_broker`` / ``broker_factory``.

Tests keep the poll interval long (TEST_POLL_INTERVAL) so that nothing polls unless the
test asks: a test refreshes coordinators itself, or fires time, and counts polls exactly.
The integration has no such options (core's rules); the ``test_timing`` fixture (autouse,
conftest.py) patches its client and poll interval instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
import errno
from functools import partial
import json
from typing import Any
from unittest.mock import MagicMock

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.smartpbx as integration
from custom_components.smartpbx import coordinator
from custom_components.smartpbx.const import (
    CONF_TLS,
    CONF_TOKEN,
    CONF_TRANSPORT,
    CONF_VERIFY_SSL,
    DOMAIN,
    TRANSPORT_DIRECT,
    TRANSPORT_HA_MQTT,
)
from custom_components.smartpbx.coordinator import SmartPbxData
from custom_components.smartpbx.pbx.client import SmartPbxClient
from smartpbx_sim import FirmwareProfile, PbxConfig, SimulatedPbx
from smartpbx_sim.runner import SimulatorRunner

from .broker import MosquittoBroker
from .config_flow_helpers import attach_pbx_to_ha_mqtt

SIM_PROFILE = FirmwareProfile.DOCUMENT
"""The firmware the helpers' simulators play (set per test by the ``sim_profile`` fixture)."""


def with_profile(sim_config: PbxConfig) -> PbxConfig:
    """``sim_config`` with SIM_PROFILE, unless the test chose the field profile itself."""
    if sim_config.profile is FirmwareProfile.DOCUMENT and SIM_PROFILE is not sim_config.profile:
        return replace(sim_config, profile=SIM_PROFILE)
    return sim_config


@pytest.fixture(name="real_broker")
def real_broker_fixture(
    socket_enabled: None, sim_profile: FirmwareProfile, request: pytest.FixtureRequest
) -> MosquittoBroker:
    """The session-wide anonymous broker, with sockets enabled for this test.

    Asks for ``sim_profile``: a test using it runs once per simulator firmware profile.
    """
    running: MosquittoBroker = request.getfixturevalue("broker")
    return running


TEST_COMMAND_TIMEOUT = 2.0
"""Commands fail fast in tests when nothing answers (the integration waits 15 s)."""
TEST_POLL_INTERVAL = 3600.0
"""No polling during a test unless it asks."""

_timing_patch: list[pytest.MonkeyPatch] = []


def set_timing(*, command_timeout: float | None = None, poll_interval: float | None = None) -> None:
    """Set the command timeout and poll interval of entries set up from now on.

    Also the time setup gives the PBX's first answer, which is one command timeout.
    """
    monkeypatch = _timing_patch[-1]
    if command_timeout is not None:
        monkeypatch.setattr(
            integration, "SmartPbxClient", partial(SmartPbxClient, timeout=command_timeout)
        )
        monkeypatch.setattr(coordinator, "SETUP_ANSWER_WITHIN", command_timeout)
    if poll_interval is not None:
        monkeypatch.setattr(coordinator, "POLL_INTERVAL", timedelta(seconds=poll_interval))


@pytest.fixture(name="test_timing")
def test_timing_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with TEST_COMMAND_TIMEOUT and TEST_POLL_INTERVAL."""
    _timing_patch.append(monkeypatch)
    set_timing(command_timeout=TEST_COMMAND_TIMEOUT, poll_interval=TEST_POLL_INTERVAL)
    yield
    _timing_patch.remove(monkeypatch)


SMALL_PBX = PbxConfig(
    sip_extensions=3,
    fxs_extensions=1,
    sip_trunks=1,
    fxo_trunks=1,
    queues=1,
    queue_members=2,
    conferences=1,
    # An answered call stays up until a test hangs it up; nothing rings out by itself.
    answer_delay=None,
    ring_timeout=3600,
)
"""A PBX with one of everything (and a few extensions), small enough to read in a snapshot."""


def direct_entry_data(
    broker: MosquittoBroker,
    token: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """Config entry data for the direct transport to ``broker``."""
    return {
        CONF_TRANSPORT: TRANSPORT_DIRECT,
        CONF_HOST: broker.host,
        CONF_PORT: broker.port,
        CONF_USERNAME: username,
        CONF_PASSWORD: password,
        CONF_TLS: False,
        CONF_VERIFY_SSL: True,
        CONF_TOKEN: token,
    }


def add_entry(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    sim_config: PbxConfig,
    *,
    command_timeout: float | None = None,
    poll_interval: float | None = None,
    data: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> MockConfigEntry:
    """Add (not set up) a direct-transport entry for the PBX ``sim_config`` describes."""
    set_timing(command_timeout=command_timeout, poll_interval=poll_interval)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=sim_config.devicename,
        unique_id=sim_config.serial,
        data={**direct_entry_data(broker, sim_config.token), **(data or {})},
        options=dict(options or {}),
    )
    entry.add_to_hass(hass)
    return entry


async def start_simulator(
    broker: MosquittoBroker, sim_config: PbxConfig | None = None, **runner_kwargs: Any
) -> SimulatorRunner:
    """A running simulator connected to ``broker`` (stop it with ``await runner.stop()``)."""
    runner = SimulatorRunner(
        with_profile(sim_config or SMALL_PBX),
        host=broker.host,
        port=broker.port,
        reconnect_interval=0.2,
        **runner_kwargs,
    )
    await runner.start()
    return runner


def tolerate_aiomqtt_writer_race(hass: HomeAssistant) -> None:
    """Let the event loop drop aiomqtt 2.5.1's known "Bad file descriptor" callback error.

    aiomqtt schedules ``loop.add_writer(fd, ...)`` for the next turn of the loop when paho
    has something to send; when the broker drops the connection in between, the socket
    is closed by then and the loop reports ``OSError(EBADF)`` from that callback (an
    upstream bug, fixed in aiomqtt's repository after 2.5.1). Nothing of ours runs there
    and nothing is lost (the connection is gone and the transport reconnects), but
    phcc's ``hass`` fixture fails a test on any loop exception, so the broker-restart
    tests would fail about one run in six. Every other loop exception still fails the
    test. See README "Known limitations".
    """
    loop = hass.loop
    fail_test = loop.get_exception_handler()
    assert fail_test is not None
    if fail_test.__name__ == "drop_aiomqtt_writer_race":
        return  # already in place

    def drop_aiomqtt_writer_race(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if (
            isinstance(error, OSError)
            and error.errno == errno.EBADF
            and "add_writer" in repr(context.get("handle"))
        ):
            return
        fail_test(loop, context)

    loop.set_exception_handler(drop_aiomqtt_writer_race)


async def setup_integration(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    *,
    sim_config: PbxConfig | None = None,
    command_timeout: float | None = None,
    poll_interval: float | None = None,
    data: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[MockConfigEntry, SimulatorRunner]:
    """Start a simulator on ``broker`` and set up a config entry for it; both running.

    ``sim_config`` defaults to SMALL_PBX, ``data`` is merged over the direct-transport
    data (see set_timing for the rest). Fails the test unless the entry loads.
    """
    tolerate_aiomqtt_writer_race(hass)
    sim_config = sim_config or SMALL_PBX
    runner = await start_simulator(broker, sim_config)
    try:
        entry = add_entry(
            hass,
            broker,
            sim_config,
            command_timeout=command_timeout,
            poll_interval=poll_interval,
            data=data,
            options=options,
        )
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED, entry.state
    except BaseException:
        await runner.stop()
        raise
    return entry, runner


async def unload_integration(
    hass: HomeAssistant, entry: MockConfigEntry, runner: SimulatorRunner | None = None
) -> None:
    """Unload ``entry`` (if loaded) and stop ``runner``."""
    if entry.state is ConfigEntryState.LOADED:
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    if runner is not None:
        await runner.stop()


type SmartPbxFactory = Callable[..., Awaitable[tuple[MockConfigEntry, SimulatorRunner]]]


@pytest.fixture(name="smartpbx")
async def smartpbx_fixture(
    hass: HomeAssistant, real_broker: MosquittoBroker
) -> AsyncIterator[SmartPbxFactory]:
    """Factory: ``entry, runner = await smartpbx(sim_config=..., command_timeout=..., ...)``.

    Everything it set up is unloaded and stopped when the test ends.
    """
    made: list[tuple[MockConfigEntry, SimulatorRunner]] = []

    async def factory(
        *,
        sim_config: PbxConfig | None = None,
        command_timeout: float | None = None,
        poll_interval: float | None = None,
        data: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        broker: MosquittoBroker = real_broker,
    ) -> tuple[MockConfigEntry, SimulatorRunner]:
        result = await setup_integration(
            hass,
            broker,
            sim_config=sim_config,
            command_timeout=command_timeout,
            poll_interval=poll_interval,
            data=data,
            options=options,
        )
        made.append(result)
        return result

    yield factory
    for entry, runner in reversed(made):
        await unload_integration(hass, entry, runner)


def runtime(entry: MockConfigEntry) -> SmartPbxData:
    """The entry's typed runtime data."""
    data: SmartPbxData = entry.runtime_data
    return data


async def wait_for(
    predicate: Callable[[], bool], limit: float = 5.0, interval: float = 0.01
) -> None:
    """Wait until ``predicate()`` holds, checking every ``interval``; fail after ``limit``.

    Polling, not an Event: the conditions are about Home Assistant's state, which has no
    single thing to wait on.
    """
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(interval)


def entity_id_of(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    """The entity id registered for ``unique_id`` on ``platform`` (fails if none)."""
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert entity_id is not None, f"no {platform} entity with unique id {unique_id}"
    return entity_id


def record_commands(runner: SimulatorRunner) -> list[str]:
    """Start recording the ``cmd`` of every command the simulated PBX receives, in order.

    Returns the list it appends to (clear it to start counting afresh).
    """
    received: list[str] = []
    pbx = runner.pbx
    handle = pbx.handle_command

    def recording(sub_topic: str, payload: bytes | str) -> None:
        try:
            received.append(str(json.loads(payload).get("cmd")))
        except ValueError, AttributeError:
            received.append("<unreadable>")
        handle(sub_topic, payload)

    pbx.handle_command = recording  # type: ignore[method-assign]
    return received


async def setup_over_ha_mqtt(
    hass: HomeAssistant,
    mqtt_client_mock: MagicMock,
) -> tuple[MockConfigEntry, SimulatedPbx]:
    """SMALL_PBX behind Home Assistant's (phcc-mocked) MQTT client, and an entry set up
    for it over that connection."""
    pbx = SimulatedPbx(with_profile(SMALL_PBX))
    attach_pbx_to_ha_mqtt(hass, mqtt_client_mock, pbx)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SMALL_PBX.serial,
        data={CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: SMALL_PBX.token},
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry, pbx

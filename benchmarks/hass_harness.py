"""A real Home Assistant for the benchmarks: no pytest, no mocks, real storage.

The soak test's ``headless_hass`` (tests/soak.py): built the way ``homeassistant.bootstrap``
builds one, minus the default integrations (frontend, http, recorder...) that the
benchmarks do not exercise. Config
entries are added as Home Assistant adds stored ones at start-up, and set up for real
against the simulator on Mosquitto. The integration is imported from the project's
``custom_components`` (the project root is on ``sys.path``: the benchmarks run with
``python -m`` from it), so the benchmark code and Home Assistant share its modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
import logging
from pathlib import Path
import tempfile
import time
from types import MappingProxyType
from typing import Any

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

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
from tests.broker import free_port
from tests.soak import headless_hass


def quiet_logs() -> None:
    """Warnings only: log formatting must not be part of what is measured."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("homeassistant", "custom_components", "aiomqtt", "smartpbx_sim"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Home Assistant warns once that a custom integration is loaded; expected here.
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)


@contextlib.asynccontextmanager
async def running_hass() -> AsyncIterator[tuple[HomeAssistant, float]]:
    """A started Home Assistant in a temporary config dir; yields it and its boot time (s)."""
    with tempfile.TemporaryDirectory(prefix="smartpbx-bench-hass-") as config_dir:
        quiet_logs()
        started = time.perf_counter()
        async with headless_hass(config_dir, name="Benchmark") as hass:
            yield hass, time.perf_counter() - started


def direct_entry(
    host: str,
    port: int,
    token: str,
    serial: str,
    *,
    options: dict[str, Any] | None = None,
) -> ConfigEntry:
    """A direct-transport entry, as the config flow stores it (default options)."""
    return ConfigEntry(
        domain=DOMAIN,
        title=f"Smart PBX {serial}",
        data={
            CONF_TRANSPORT: TRANSPORT_DIRECT,
            CONF_HOST: host,
            CONF_PORT: port,
            CONF_USERNAME: None,
            CONF_PASSWORD: None,
            CONF_TLS: False,
            CONF_VERIFY_SSL: True,
            CONF_TOKEN: token,
        },
        options=options or {},
        source=config_entries.SOURCE_USER,
        unique_id=serial,
        version=1,
        minor_version=1,
        discovery_keys=MappingProxyType({}),
        subentries_data=None,
    )


def ha_mqtt_entry(token: str, serial: str) -> ConfigEntry:
    """An entry over Home Assistant's MQTT integration, as the config flow stores it."""
    return ConfigEntry(
        domain=DOMAIN,
        title=f"Smart PBX {serial}",
        data={CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: token},
        options={},
        source=config_entries.SOURCE_USER,
        unique_id=serial,
        version=1,
        minor_version=1,
        discovery_keys=MappingProxyType({}),
        subentries_data=None,
    )


async def add_ha_mqtt(
    hass: HomeAssistant, host: str, port: int, configuration_yaml: str | None = None
) -> None:
    """Set up Home Assistant's MQTT integration on the benchmark broker.

    ``configuration_yaml`` (e.g. MQTT sensors) is written to the config dir first: the
    MQTT entry reads its YAML items from there when it is set up. MQTT discovery is off:
    with it, every event payload on the integration's manifest topics of a PBX without
    an entry would start a discovery flow, which no side of a benchmark should pay for.
    """
    # The MQTT entry reads configuration.yaml when it is set up: it must exist.
    Path(hass.config.path("configuration.yaml")).write_text(configuration_yaml or "")
    # MQTT depends on http (its file upload view); the server is never started here.
    http_config = {"http": {"server_host": ["127.0.0.1"], "server_port": free_port()}}
    if not await async_setup_component(hass, "http", http_config):
        raise RuntimeError("http did not set up")
    entry = ConfigEntry(
        domain="mqtt",
        title="MQTT",
        data={"broker": host, "port": port, "protocol": "5"},
        options={"discovery": False},
        source=config_entries.SOURCE_USER,
        unique_id=None,
        version=2,
        minor_version=1,
        discovery_keys=MappingProxyType({}),
        subentries_data=None,
    )
    await add_entry(hass, entry)


async def add_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Add and set up ``entry``; fail unless it loads."""
    await hass.config_entries.async_add(entry)
    if entry.state is not ConfigEntryState.LOADED:
        raise RuntimeError(f"the config entry did not load: {entry.state} {entry.reason}")


def runtime(entry: ConfigEntry) -> SmartPbxData:
    data: SmartPbxData = entry.runtime_data
    return data


def enabled_entity_ids(hass: HomeAssistant, entry: ConfigEntry) -> list[str]:
    registry = er.async_get(hass)
    return [
        item.entity_id
        for item in er.async_entries_for_config_entry(registry, entry.entry_id)
        if item.disabled_by is None
    ]


def missing_states(hass: HomeAssistant, entity_ids: list[str]) -> int:
    return sum(1 for entity_id in entity_ids if hass.states.get(entity_id) is None)


async def wait_until(predicate: Callable[[], bool], limit: float, interval: float = 0.005) -> None:
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110  # Home Assistant state has nothing to await
            await asyncio.sleep(interval)


def status_entity_ids(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, str]:
    """Extension number -> entity id of that extension's status sensor."""
    registry = er.async_get(hass)
    prefix = f"{runtime(entry).serial}_extension_"
    found = {}
    for item in er.async_entries_for_config_entry(registry, entry.entry_id):
        unique_id = item.unique_id
        if (
            item.domain == "sensor"
            and unique_id.startswith(prefix)
            and unique_id.endswith("_status")
        ):
            found[unique_id[len(prefix) : -len("_status")]] = item.entity_id
    return found


async def settle(hass: HomeAssistant) -> None:
    """Let everything scheduled run (the debounced live-call poll included)."""
    await hass.async_block_till_done()
    await asyncio.sleep(1.0)
    await hass.async_block_till_done()

"""Setting up, unloading and reloading the integration, and why setup can fail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
import threading
from typing import Any
from unittest.mock import MagicMock

from awesomeversion import AwesomeVersion
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import paho.mqtt.client as paho
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.smartpbx import async_remove_config_entry_device
from custom_components.smartpbx.config_flow import direct_client_id
from custom_components.smartpbx.const import (
    CONF_TOKEN,
    CONF_TRANSPORT,
    DOMAIN,
    TRANSPORT_HA_MQTT,
)
from custom_components.smartpbx.identifiers import child_identifier, pbx_identifier
from smartpbx_sim import PbxConfig

from .broker import MosquittoBroker
from .config_flow_helpers import close_ha_mqtt_socket
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    TEST_POLL_INTERVAL,
    SmartPbxFactory,
    add_entry,
    real_broker_fixture,
    runtime,
    setup_over_ha_mqtt,
    smartpbx_fixture,
    start_simulator,
    unload_integration,
)


async def test_setup_loads_everything_and_unload_releases_it(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx()
    data = runtime(entry)
    assert data.serial == SMALL_PBX.serial
    assert set(data.system.data.extensions) == set(runner.pbx.extensions)
    assert set(data.queues.data) == set(runner.pbx.queues)
    assert set(data.conferences.data) == set(runner.pbx.conferences)
    assert data.live_calls.data == ()
    assert data.transport.connected
    assert hass.states.get("sensor.spx1004o4s_extensions_online").state == "4"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.NOT_LOADED
    # Our own broker connection is closed (phcc also fails on any task left behind).
    assert not data.transport.connected
    assert not data.client.connected
    assert hass.states.get("sensor.spx1004o4s_extensions_online").state == "unavailable"


async def test_reload(hass: HomeAssistant, smartpbx: SmartPbxFactory) -> None:
    entry, _ = await smartpbx()
    before = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    after = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    assert {e.entity_id for e in after} == {e.entity_id for e in before}
    assert hass.states.get("sensor.spx1004o4s_extensions_online").state == "4"


async def test_not_ready_when_broker_is_down(
    hass: HomeAssistant, socket_enabled: None, private_broker: MosquittoBroker
) -> None:
    private_broker.stop()
    entry = add_entry(hass, private_broker, SMALL_PBX)

    await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "broker_unreachable"
    await unload_integration(hass, entry)


async def test_not_ready_when_pbx_is_silent(
    hass: HomeAssistant, real_broker: MosquittoBroker
) -> None:
    runner = await start_simulator(real_broker)
    runner.silent = True
    entry = add_entry(hass, real_broker, SMALL_PBX, command_timeout=0.3)
    try:
        await hass.config_entries.async_setup(entry.entry_id)

        assert entry.state is ConfigEntryState.SETUP_RETRY
        if AwesomeVersion(HA_VERSION) >= "2026.9":
            # Older releases do not carry the coordinator's translation key over.
            assert entry.error_reason_translation_key == "command_timeout"
    finally:
        await unload_integration(hass, entry, runner)


async def test_not_ready_when_no_pbx_uses_the_token(
    hass: HomeAssistant, real_broker: MosquittoBroker
) -> None:
    entry = add_entry(
        hass,
        real_broker,
        SMALL_PBX,
        command_timeout=0.2,
        data={CONF_TOKEN: "nobody-listens"},
    )
    await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    await unload_integration(hass, entry)


async def test_auth_failure_starts_reauth(
    hass: HomeAssistant,
    socket_enabled: None,
    broker_factory: Callable[..., MosquittoBroker],
) -> None:
    broker = broker_factory(users={"pbx": "pbx-secret", "ha": "right"})
    entry = add_entry(hass, broker, SMALL_PBX, data={"username": "ha", "password": "wrong"})

    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.error_reason_translation_key == "broker_auth_failed"
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert flows[0]["context"]["entry_id"] == entry.entry_id


async def test_not_ready_without_home_assistant_mqtt(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SMALL_PBX.serial,
        data={CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: SMALL_PBX.token},
    )
    entry.add_to_hass(hass)

    await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "mqtt_not_available"
    await unload_integration(hass, entry)


async def test_setup_over_home_assistant_mqtt(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> None:
    """Home Assistant's own MQTT connection as the transport, the simulator behind it."""
    entry, pbx = await setup_over_ha_mqtt(hass, mqtt_client_mock)

    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.extension_8001_status").state == "idle"
    pbx.set_extension_status("8001", "InUse")
    await hass.async_block_till_done()
    assert hass.states.get("sensor.extension_8001_status").state == "in_use"

    await unload_integration(hass, entry)
    close_ha_mqtt_socket(mqtt_client_mock)


async def test_refuses_a_different_pbx(hass: HomeAssistant, real_broker: MosquittoBroker) -> None:
    # The token now leads to another PBX than the one the entry was made for.
    other = PbxConfig(
        token=SMALL_PBX.token, serial="XR00000000000001", sip_extensions=1, fxs_extensions=0
    )
    runner = await start_simulator(real_broker, other)
    entry = add_entry(hass, real_broker, SMALL_PBX)
    try:
        await hass.config_entries.async_setup(entry.entry_id)

        assert entry.state is ConfigEntryState.SETUP_ERROR
        assert entry.error_reason_translation_key == "serial_mismatch"
    finally:
        await unload_integration(hass, entry, runner)


async def test_remove_config_entry_device(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, _ = await smartpbx()
    pbx = device_registry.async_get_device_by_identifier(
        pbx_identifier(SMALL_PBX.serial), entry.entry_id
    )
    present = device_registry.async_get_device_by_identifier(
        child_identifier(SMALL_PBX.serial, "extension", "8001"), entry.entry_id
    )
    assert pbx is not None
    assert present is not None
    stale = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={child_identifier(SMALL_PBX.serial, "extension", "8999")},
    )

    assert not await async_remove_config_entry_device(hass, entry, pbx)
    assert not await async_remove_config_entry_device(hass, entry, present)
    assert await async_remove_config_entry_device(hass, entry, stale)


@pytest.mark.parametrize("kind", ["extension", "trunk", "queue", "conference"])
async def test_devices_have_names_and_hang_off_the_pbx(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    smartpbx: SmartPbxFactory,
    kind: str,
) -> None:
    entry, _ = await smartpbx()
    pbx = device_registry.async_get_device_by_identifier(
        pbx_identifier(SMALL_PBX.serial), entry.entry_id
    )
    assert pbx is not None
    assert (pbx.manufacturer, pbx.model, pbx.serial_number, pbx.sw_version) == (
        "Smart PBX",
        SMALL_PBX.devicename,
        SMALL_PBX.serial,
        SMALL_PBX.firmware,
    )
    children = [
        device
        for device in dr.async_entries_for_config_entry(device_registry, entry.entry_id)
        if device.via_device_id == pbx.id
        and any(f"_{kind}_" in identifier for _, identifier in device.identifiers)
    ]
    assert children
    assert all(device.name and device.name.startswith(kind.capitalize()) for device in children)


async def test_options_an_older_version_saved_are_ignored(
    hass: HomeAssistant, real_broker: MosquittoBroker
) -> None:
    """Entries from before the options flow went keep their options; they change nothing."""
    runner = await start_simulator(real_broker)
    entry = add_entry(hass, real_broker, SMALL_PBX)
    hass.config_entries.async_update_entry(
        entry, options={"poll_interval": 5, "command_timeout": 60.0}
    )
    try:
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        assert len(runtime(entry).caller_names.phonebook) == 0
        for coordinator in runtime(entry).coordinators:
            assert coordinator.update_interval == timedelta(seconds=TEST_POLL_INTERVAL)
    finally:
        await unload_integration(hass, entry, runner)


async def test_remove_a_device_of_an_entry_that_is_not_loaded(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry
) -> None:
    """Without runtime data nobody knows what the PBX lists: any device but the PBX goes
    (one the PBX still has comes back at the next setup)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SMALL_PBX.serial,
        data={CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: SMALL_PBX.token},
    )
    entry.add_to_hass(hass)
    assert entry.state is ConfigEntryState.NOT_LOADED
    pbx = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={pbx_identifier(SMALL_PBX.serial)}
    )
    extension = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={child_identifier(SMALL_PBX.serial, "extension", "8001")},
    )

    assert not await async_remove_config_entry_device(hass, entry, pbx)
    assert await async_remove_config_entry_device(hass, entry, extension)


def _broker_has_session(broker: MosquittoBroker, client_id: str) -> bool:
    """Whether the broker holds a persistent session for ``client_id`` (CONNACK's
    session-present flag; the look leaves none behind: clean on the way out)."""
    present: list[bool] = []
    connected = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)

    def on_connect(*args: Any) -> None:
        present.append(bool(args[2].session_present))
        connected.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    # Looking made one (or kept the one there): a clean connection takes it away.
    cleaner = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    cleaner.connect(broker.host, broker.port)
    cleaner.disconnect()
    return present[0]


async def test_removing_a_direct_entry_removes_its_broker_session(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    real_broker: MosquittoBroker,
    smartpbx: SmartPbxFactory,
) -> None:
    entry, _ = await smartpbx()
    client_id = runtime(entry).transport.client_id  # type: ignore[attr-defined]
    assert client_id == direct_client_id(entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Unloading (a restart) keeps the session: it holds what arrives meanwhile.
    assert await hass.async_add_executor_job(_broker_has_session, real_broker, client_id)
    assert await hass.config_entries.async_setup(entry.entry_id)

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()

    assert not await hass.async_add_executor_job(_broker_has_session, real_broker, client_id)
    # And the call records seen (for de-duplication) go with it.
    assert f"{DOMAIN}.{entry.entry_id}.seen_call_records" not in hass_storage

"""Repair issues: raised when the user has something to do, gone once it is done.

- ``mqtt_not_available``: an entry that talks through Home Assistant's MQTT while the
  MQTT integration is not set up. Cleared when the entry sets up (MQTT added).
- ``pbx_not_answering``: the broker is there but the PBX has not answered for
  SILENT_REPAIR_AFTER (off, or its token changed). Counted across setup retries; cleared
  as soon as it answers, and with the entry.

Both are not fixable from the repairs dashboard (the text says what to do), as Home
Assistant core does for conditions an integration notices going away by itself.
"""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import MagicMock

from homeassistant.components.mqtt import util as mqtt_util
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClientGenerator

from custom_components.smartpbx import issues
from custom_components.smartpbx.const import (
    CONF_TOKEN,
    CONF_TRANSPORT,
    DOMAIN,
    SILENT_REPAIR_AFTER,
    TRANSPORT_HA_MQTT,
)
from smartpbx_sim import SimulatedPbx

from .broker import MosquittoBroker
from .config_flow_helpers import attach_pbx_to_ha_mqtt, close_ha_mqtt_socket, load_translations
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    add_entry,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
    start_simulator,
    unload_integration,
)
from .reliability_helpers import eventually

SILENT = "pbx_not_answering"
NO_MQTT = "mqtt_not_available"


def _issue(issue_registry: ir.IssueRegistry, kind: str, entry_id: str) -> ir.IssueEntry | None:
    return issue_registry.async_get_issue(DOMAIN, f"{kind}_{entry_id}")


def test_issues_are_translated() -> None:
    strings = load_translations()["issues"]
    assert set(strings) == {SILENT, NO_MQTT}
    assert "{title}" in strings[NO_MQTT]["title"]
    assert "{minutes}" in strings[SILENT]["title"]
    assert "Reconfigure" in strings[SILENT]["description"]


def _ha_mqtt_entry(hass: HomeAssistant) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Office PBX",
        unique_id=SMALL_PBX.serial,
        data={CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: SMALL_PBX.token},
    )
    entry.add_to_hass(hass)
    return entry


async def test_mqtt_never_set_up_raises_an_issue(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    entry = _ha_mqtt_entry(hass)
    await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert _issue(issue_registry, NO_MQTT, entry.entry_id) is not None

    await hass.config_entries.async_remove(entry.entry_id)
    assert _issue(issue_registry, NO_MQTT, entry.entry_id) is None


async def test_mqtt_not_loaded_raises_an_issue_that_clears_once_it_is(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    mock_hass_config: None,
    mqtt_mock_entry: MqttMockHAClientGenerator,
    mqtt_client_mock: MagicMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The MQTT entry exists (the fixture added it) but is not loaded. Home Assistant
    # waits 50 s for it to load before giving up; not in a test.
    monkeypatch.setattr(mqtt_util, "AVAILABILITY_TIMEOUT", 0.1)
    entry = _ha_mqtt_entry(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY

    issue = _issue(issue_registry, NO_MQTT, entry.entry_id)
    assert issue is not None
    assert (issue.translation_key, issue.is_fixable, issue.severity) == (
        NO_MQTT,
        False,
        ir.IssueSeverity.ERROR,
    )
    assert issue.translation_placeholders == {"title": "Office PBX"}

    # The MQTT integration loads; the entry's next attempt succeeds.
    await mqtt_mock_entry()
    attach_pbx_to_ha_mqtt(hass, mqtt_client_mock, SimulatedPbx(SMALL_PBX))
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert _issue(issue_registry, NO_MQTT, entry.entry_id) is None
    await unload_integration(hass, entry)
    close_ha_mqtt_socket(mqtt_client_mock)


async def test_long_silence_raises_an_issue_that_clears_when_the_pbx_answers(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx(command_timeout=0.3)
    data = runtime(entry)

    runner.silent = True
    await data.system.async_refresh()
    assert not data.system.last_update_success
    # Not yet: a short silence is the availability's business, not a repair.
    async_fire_time_changed(hass, dt_util.utcnow() + SILENT_REPAIR_AFTER / 2)
    await hass.async_block_till_done()
    assert _issue(issue_registry, SILENT, entry.entry_id) is None

    async_fire_time_changed(hass, dt_util.utcnow() + SILENT_REPAIR_AFTER + timedelta(seconds=1))
    await hass.async_block_till_done()
    issue = _issue(issue_registry, SILENT, entry.entry_id)
    assert issue is not None
    assert (issue.translation_key, issue.is_fixable) == (SILENT, False)
    assert issue.translation_placeholders == {
        "title": entry.title,
        "minutes": str(int(SILENT_REPAIR_AFTER.total_seconds() // 60)),
    }

    runner.silent = False
    await data.system.async_refresh()
    assert data.system.last_update_success
    assert _issue(issue_registry, SILENT, entry.entry_id) is None


async def test_connection_loss_pauses_the_silence_clock(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    socket_enabled: None,
    private_broker: MosquittoBroker,
    smartpbx: SmartPbxFactory,
) -> None:
    """Without the broker nobody can tell whether the PBX answers: no issue then."""
    entry, runner = await smartpbx(broker=private_broker, command_timeout=0.3)
    data = runtime(entry)
    runner.silent = True
    await data.system.async_refresh()
    private_broker.stop()
    await eventually(lambda: not data.transport.connected)

    async_fire_time_changed(hass, dt_util.utcnow() + SILENT_REPAIR_AFTER * 2)
    await hass.async_block_till_done()
    assert _issue(issue_registry, SILENT, entry.entry_id) is None
    private_broker.start()


async def test_silence_counts_across_setup_retries_and_clears_on_success(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    real_broker: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PBX whose token changed while Home Assistant was down never lets setup succeed."""
    monkeypatch.setattr(issues, "SILENT_REPAIR_AFTER", timedelta(seconds=0.2))
    runner = await start_simulator(real_broker)
    runner.silent = True
    entry = add_entry(hass, real_broker, SMALL_PBX, command_timeout=0.3)
    try:
        await hass.config_entries.async_setup(entry.entry_id)
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert _issue(issue_registry, SILENT, entry.entry_id) is None  # first failure

        await hass.config_entries.async_reload(entry.entry_id)  # a retry, 0.3 s later
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert _issue(issue_registry, SILENT, entry.entry_id) is not None

        runner.silent = False
        await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        assert _issue(issue_registry, SILENT, entry.entry_id) is None
    finally:
        await unload_integration(hass, entry, runner)


async def test_removing_the_entry_removes_its_issues(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    real_broker: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(issues, "SILENT_REPAIR_AFTER", timedelta(0))
    runner = await start_simulator(real_broker)
    runner.silent = True
    entry = add_entry(hass, real_broker, SMALL_PBX, command_timeout=0.3)
    try:
        await hass.config_entries.async_setup(entry.entry_id)
        assert _issue(issue_registry, SILENT, entry.entry_id) is not None

        await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()

        assert _issue(issue_registry, SILENT, entry.entry_id) is None
    finally:
        await runner.stop()

"""Tests of the config, discovery, reauth, reconfigure and options flows.

The direct transport runs against a real Mosquitto with the simulator connected to it;
Home Assistant's MQTT transport runs through phcc's mocked MQTT client, answered by the
simulator's state machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
import logging
import os
from typing import Any
from unittest.mock import AsyncMock, MagicMock, patch

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_MQTT,
    SOURCE_REAUTH,
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.smartpbx import config_flow
from custom_components.smartpbx.const import (
    CONF_TLS,
    CONF_TOKEN,
    CONF_TRANSPORT,
    CONF_VERIFY_SSL,
    DOMAIN,
    TRANSPORT_DIRECT,
    TRANSPORT_HA_MQTT,
)
from custom_components.smartpbx.pbx import client as pbx_client
from custom_components.smartpbx.pbx.errors import (
    PbxConnectionError,
    PbxInvalidArgumentError,
    PbxTimeoutError,
)
from smartpbx_sim import PbxConfig, SimulatedPbx
from smartpbx_sim.runner import SimulatorRunner

from .broker import MosquittoBroker, free_port
from .config_flow_helpers import (
    assert_translated,
    attach_pbx_to_ha_mqtt,
    close_ha_mqtt_socket,
    load_translations,
)

PBX = PbxConfig()
TOKEN = PBX.token
SERIAL = PBX.serial
DEVICE_NAME = PBX.devicename
OTHER_PBX = PbxConfig(token="other-token", serial="XR99999999999999", devicename="Branch PBX")

HA_MQTT_DATA = {CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: TOKEN}
GOOD_CREDENTIALS = {CONF_USERNAME: "ha", CONF_PASSWORD: "hunter2"}
EVENT_PAYLOAD = b'{"event": "extension_status", "extension": "8001", "status": "Idle"}'


# Tests with a real broker take the ``loopback`` fixture: phcc blocks sockets before each
# test, so they must be enabled (socket_enabled) before any broker fixture binds a port.
direct = pytest.mark.allow_hosts(["127.0.0.1"])


def broker_form(broker: MosquittoBroker, **overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        CONF_HOST: broker.host,
        CONF_PORT: broker.port,
        CONF_TLS: False,
        CONF_VERIFY_SSL: True,
    }
    return form | overrides


def direct_data(broker: MosquittoBroker, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        CONF_TRANSPORT: TRANSPORT_DIRECT,
        CONF_HOST: broker.host,
        CONF_PORT: broker.port,
        CONF_USERNAME: None,
        CONF_PASSWORD: None,
        CONF_TLS: False,
        CONF_VERIFY_SSL: True,
        CONF_TOKEN: TOKEN,
    }
    return data | overrides


def discovery(topic: str, payload: bytes = EVENT_PAYLOAD) -> MqttServiceInfo:
    return MqttServiceInfo(
        topic=topic,
        payload=payload,
        qos=0,
        retain=False,
        subscribed_topic="device/+/api/v1.0/event",
        timestamp=0.0,
    )


@pytest.fixture(autouse=True)
def short_probe() -> Iterator[None]:
    """No PBX keeps a flow waiting for long in tests."""
    with (
        patch.object(config_flow, "PROBE_TIMEOUT", 2.0),
        patch.object(pbx_client, "DEVICE_INFO_FIRST_WAIT", 0.2),
    ):
        yield


@pytest.fixture
def mock_setup_entry() -> Iterator[AsyncMock]:
    """Entries the flows create or reload do not depend on the runtime code."""
    with (
        patch("custom_components.smartpbx.async_setup_entry", return_value=True) as setup,
        patch("custom_components.smartpbx.async_unload_entry", return_value=True),
    ):
        yield setup


@pytest.fixture
async def ha_pbx(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> AsyncIterator[SimulatedPbx]:
    """A simulated PBX behind Home Assistant's (mocked, set up and loaded) MQTT."""
    pbx = SimulatedPbx(PBX)
    attach_pbx_to_ha_mqtt(hass, mqtt_client_mock, pbx)
    yield pbx
    close_ha_mqtt_socket(mqtt_client_mock)


@pytest.fixture
def broker(socket_enabled: None, private_broker: MosquittoBroker) -> MosquittoBroker:
    """An anonymous broker of the test's own (shadows the session one; see ``direct``)."""
    return private_broker


@pytest.fixture
async def sim(broker: MosquittoBroker) -> AsyncIterator[SimulatorRunner]:
    """The simulator, connected to the anonymous broker."""
    async with SimulatorRunner(PBX, host=broker.host, port=broker.port) as runner:
        yield runner


@pytest.fixture
def auth_broker(socket_enabled: None) -> Iterator[MosquittoBroker]:
    """A broker that requires a username and password (pbx/secret for the PBX, ha/hunter2).

    Built here rather than with ``broker_factory``: running as root, Mosquitto drops to
    ``nobody``, which cannot read a password file inside the private (0700) directory
    the factory's broker creates before starting it.
    """
    with contextlib.closing(MosquittoBroker(users={"pbx": "secret", "ha": "hunter2"})) as broker:
        os.chmod(broker._dir, 0o755)
        broker.start()
        yield broker


@pytest.fixture
async def auth_sim(auth_broker: MosquittoBroker) -> AsyncIterator[SimulatorRunner]:
    async with SimulatorRunner(
        PBX, host=auth_broker.host, port=auth_broker.port, username="pbx", password="secret"
    ) as runner:
        yield runner


async def start_user_flow(hass: HomeAssistant) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert_translated(result)
    return dict(result)


async def configure(
    hass: HomeAssistant, flow_id: str, user_input: dict[str, Any] | None = None
) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert_translated(result)
    return dict(result)


def suggested_values(result: dict[str, Any]) -> dict[str, Any]:
    return {
        str(marker): marker.description["suggested_value"]
        for marker in result["data_schema"].schema
        if marker.description and "suggested_value" in marker.description
    }


def defaults(result: Any) -> dict[str, Any]:
    return {
        str(marker): marker.default()
        for marker in result["data_schema"].schema
        if callable(marker.default)
    }


# --- user flow through Home Assistant's MQTT ---


async def test_user_ha_mqtt_creates_entry(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, mock_setup_entry: AsyncMock
) -> None:
    result = await start_user_flow(hass)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert list(result["menu_options"]) == [TRANSPORT_HA_MQTT, TRANSPORT_DIRECT]

    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "token"
    assert result["errors"] == {}

    result = await configure(hass, result["flow_id"], {CONF_TOKEN: f"  {TOKEN} "})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == DEVICE_NAME
    assert result["data"] == HA_MQTT_DATA
    assert result["result"].unique_id == SERIAL
    assert ha_pbx.commands_received == 1
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1


async def test_user_ha_mqtt_no_response_then_recovers(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, mock_setup_entry: AsyncMock
) -> None:
    ha_pbx.silent = True
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "token"
    assert result["errors"] == {"base": "no_response"}
    # Asked more than once: a first reply may race Home Assistant's batched subscribe.
    assert ha_pbx.commands_received >= 2

    ha_pbx.silent = False
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == SERIAL


async def test_user_ha_mqtt_wrong_token_gets_no_response(
    hass: HomeAssistant, ha_pbx: SimulatedPbx
) -> None:
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: "not-the-token"})
    assert result["errors"] == {"base": "no_response"}
    assert ha_pbx.commands_received == 0  # nothing was published on its topics


async def test_user_ha_mqtt_disconnected(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, mqtt_mock: MqttMockHAClient
) -> None:
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    mqtt_mock.connected = False
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["errors"] == {"base": "cannot_connect"}
    assert ha_pbx.commands_received == 0


@pytest.mark.parametrize(
    "token",
    ["with space", "a/b", "plus+sign", "hash#tag", "tab\there", "x" * 129],
)
async def test_user_invalid_token(hass: HomeAssistant, ha_pbx: SimulatedPbx, token: str) -> None:
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: token})
    assert result["errors"] == {"base": "invalid_token"}
    assert ha_pbx.commands_received == 0  # validated before anything was published


async def test_user_already_configured(hass: HomeAssistant, ha_pbx: SimulatedPbx) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=HA_MQTT_DATA).add_to_hass(hass)
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_user_unexpected_error_is_logged(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    with patch(
        "custom_components.smartpbx.config_flow.SmartPbxClient.device_info",
        side_effect=RuntimeError("boom"),
    ):
        result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected error while contacting the PBX" in caplog.text
    assert "boom" in caplog.text


async def test_user_without_ha_mqtt_asks_for_a_broker(hass: HomeAssistant) -> None:
    result = await start_user_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "direct"
    assert defaults(result) == {CONF_PORT: 1883, CONF_TLS: False, CONF_VERIFY_SSL: True}


# --- user flow straight to a broker ---


@direct
async def test_user_direct_creates_entry(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    sim: SimulatorRunner,
    mock_setup_entry: AsyncMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], broker_form(broker))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "token"

    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == DEVICE_NAME
    assert result["data"] == direct_data(broker)
    assert result["result"].unique_id == SERIAL
    # The token is a credential: never logged at INFO or above (topics at DEBUG are fine).
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and TOKEN in r.getMessage()]


@direct
async def test_user_direct_plain_broker_with_verification_unticked(
    hass: HomeAssistant, broker: MosquittoBroker, sim: SimulatorRunner, mock_setup_entry: AsyncMock
) -> None:
    """Unticking "verify certificate" without TLS must not turn TLS on."""
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], broker_form(broker, verify_ssl=False))
    assert result["step_id"] == "token"
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY


@direct
async def test_user_direct_with_credentials(
    hass: HomeAssistant,
    auth_broker: MosquittoBroker,
    auth_sim: SimulatorRunner,
    mock_setup_entry: AsyncMock,
) -> None:
    result = await start_user_flow(hass)
    form = broker_form(auth_broker, **{CONF_USERNAME: "ha", CONF_PASSWORD: "wrong"})
    result = await configure(hass, result["flow_id"], form)
    assert result["step_id"] == "direct"
    assert result["errors"] == {"base": "invalid_auth"}
    # What was typed stays in the form.
    assert suggested_values(result)[CONF_USERNAME] == "ha"

    form[CONF_PASSWORD] = "hunter2"
    result = await configure(hass, result["flow_id"], form)
    assert result["step_id"] == "token"
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == direct_data(
        auth_broker, **{CONF_USERNAME: "ha", CONF_PASSWORD: "hunter2"}
    )


@direct
async def test_user_direct_anonymous_refused(
    hass: HomeAssistant, auth_broker: MosquittoBroker
) -> None:
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], broker_form(auth_broker))
    assert result["errors"] == {"base": "invalid_auth"}


@direct
@pytest.mark.parametrize(
    "overrides",
    [
        {CONF_PORT: None},  # replaced by a port nothing listens on
        {CONF_HOST: "   "},
        {CONF_TLS: True, CONF_VERIFY_SSL: False},  # TLS to a plain listener
    ],
    ids=["unused_port", "blank_host", "tls_mismatch"],
)
async def test_user_direct_cannot_connect(
    hass: HomeAssistant, broker: MosquittoBroker, overrides: dict[str, Any]
) -> None:
    if CONF_PORT in overrides:
        overrides = {CONF_PORT: free_port()}
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], broker_form(broker, **overrides))
    assert result["step_id"] == "direct"
    assert result["errors"] == {"base": "cannot_connect"}


@direct
async def test_user_direct_no_pbx_on_token(hass: HomeAssistant, broker: MosquittoBroker) -> None:
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], broker_form(broker))
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: "nobody-listens"})
    assert result["step_id"] == "token"
    assert result["errors"] == {"base": "no_response"}


@direct
async def test_user_direct_broker_gone_before_token(
    hass: HomeAssistant, broker: MosquittoBroker
) -> None:
    result = await start_user_flow(hass)
    result = await configure(hass, result["flow_id"], broker_form(broker))
    assert result["step_id"] == "token"
    broker.stop()
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["step_id"] == "token"
    assert result["errors"] == {"base": "cannot_connect"}


# --- MQTT discovery ---


async def test_discovery_creates_entry(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, mock_setup_entry: AsyncMock
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=discovery(f"device/{TOKEN}/api/v1.0/event"),
    )
    assert_translated(result)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {
        "name": DEVICE_NAME,
        "serial": SERIAL,
        "firmware": PBX.firmware,
    }
    flow = hass.config_entries.flow.async_get(result["flow_id"])
    assert flow["context"]["title_placeholders"] == {"name": DEVICE_NAME}
    assert flow["context"]["confirm_only"] is True
    assert flow["context"]["unique_id"] == SERIAL

    result = await configure(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == DEVICE_NAME
    assert result["data"] == HA_MQTT_DATA
    assert result["result"].unique_id == SERIAL


async def test_discovery_from_a_published_event(hass: HomeAssistant, ha_pbx: SimulatedPbx) -> None:
    """The manifest's mqtt filters start the flow; further events do not start more."""
    async_fire_mqtt_message(hass, f"device/{TOKEN}/api/v1.0/event", EVENT_PAYLOAD)
    await hass.async_block_till_done(wait_background_tasks=True)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1
    assert flows[0]["step_id"] == "discovery_confirm"
    assert flows[0]["context"]["source"] == SOURCE_MQTT

    commands_before = ha_pbx.commands_received
    async_fire_mqtt_message(hass, f"device/{TOKEN}/api/v1.0/cdr", b'{"callid": "1.1"}')
    async_fire_mqtt_message(hass, f"device/{TOKEN}/api/v1.0/event", EVENT_PAYLOAD + b" ")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(hass.config_entries.flow.async_progress_by_handler(DOMAIN)) == 1
    # The duplicates were aborted before asking the PBX anything.
    assert ha_pbx.commands_received == commands_before


async def test_discovery_while_a_discovery_runs(hass: HomeAssistant, ha_pbx: SimulatedPbx) -> None:
    first = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(f"device/{TOKEN}/api/v1.0/event")
    )
    assert first["step_id"] == "discovery_confirm"
    second = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(f"device/{TOKEN}/api/v1.0/cdr")
    )
    assert_translated(second)
    assert second["type"] is FlowResultType.ABORT
    assert second["reason"] == "already_in_progress"


@pytest.mark.parametrize(
    "topic",
    [
        f"device/{TOKEN}/api/v1.0/response",
        f"device/{TOKEN}/api/v2.0/event",
        f"device/{TOKEN}/extra/api/v1.0/event",
        "device//api/v1.0/event",
        "device/bad token/api/v1.0/event",
        "device/bad\x00token/api/v1.0/cdr",
        f"device/{'x' * 129}/api/v1.0/event",
        "homeassistant/status",
    ],
)
async def test_discovery_invalid_topic(hass: HomeAssistant, topic: str) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(topic)
    )
    assert_translated(result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


async def test_discovery_token_already_configured(
    hass: HomeAssistant, ha_pbx: SimulatedPbx
) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=HA_MQTT_DATA).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(f"device/{TOKEN}/api/v1.0/event")
    )
    assert_translated(result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert ha_pbx.commands_received == 0  # known token: the PBX was not even asked


async def test_discovery_follows_a_new_token(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, mock_setup_entry: AsyncMock
) -> None:
    """A configured PBX now publishing on another token: that entry follows it."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SERIAL,
        data={CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: "old-token"},
    )
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(f"device/{TOKEN}/api/v1.0/event")
    )
    assert_translated(result)
    assert result["reason"] == "already_configured"
    assert entry.data == HA_MQTT_DATA


async def test_discovery_of_a_pbx_configured_directly(
    hass: HomeAssistant, ha_pbx: SimulatedPbx
) -> None:
    """A directly configured PBX keeps its own broker settings."""
    data = {
        CONF_TRANSPORT: TRANSPORT_DIRECT,
        CONF_HOST: "broker.example",
        CONF_PORT: 1883,
        CONF_USERNAME: None,
        CONF_PASSWORD: None,
        CONF_TLS: False,
        CONF_VERIFY_SSL: True,
        CONF_TOKEN: "token-on-another-broker",
    }
    entry = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=data)
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(f"device/{TOKEN}/api/v1.0/event")
    )
    assert result["reason"] == "already_configured"
    assert entry.data == data


async def test_discovery_of_an_ignored_pbx(hass: HomeAssistant, ha_pbx: SimulatedPbx) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, source=SOURCE_IGNORE, data={}).add_to_hass(
        hass
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(f"device/{TOKEN}/api/v1.0/event")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_discovery_pbx_does_not_answer(hass: HomeAssistant, ha_pbx: SimulatedPbx) -> None:
    ha_pbx.silent = True
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery(f"device/{TOKEN}/api/v1.0/event")
    )
    assert_translated(result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_response"


@pytest.mark.parametrize("pbx_state", ["ignored", "silent"])
async def test_a_thousand_events_probe_a_pbx_once(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, pbx_state: str
) -> None:
    """Every event is a new discovery payload; a PBX that stays ignored or unconfigured
    (here: never answers) is asked once, not once per event. After an entry is removed
    it may be asked again."""
    if pbx_state == "ignored":
        ignored = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, source=SOURCE_IGNORE, data={})
        ignored.add_to_hass(hass)
    else:
        ha_pbx.silent = True
    probes: list[str] = []
    real_probe = config_flow.async_probe

    async def counted(*args: Any, **kwargs: Any) -> Any:
        probes.append(pbx_state)
        return await real_probe(*args, **kwargs)

    with patch.object(config_flow, "async_probe", counted):
        for n in range(1000):
            topic = f"device/{TOKEN}/api/v1.0/{'cdr' if n % 2 else 'event'}"
            async_fire_mqtt_message(hass, topic, EVENT_PAYLOAD + b" " * (n % 7))
            if n < 3:  # the first flows run to their end before the next event
                await hass.async_block_till_done(wait_background_tasks=True)
                assert len(probes) == 1
        await hass.async_block_till_done(wait_background_tasks=True)
        assert len(probes) == 1
        assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

        other = MockConfigEntry(domain=DOMAIN, unique_id="other", data={})
        other.add_to_hass(hass)
        await hass.config_entries.async_remove(other.entry_id)
        async_fire_mqtt_message(hass, f"device/{TOKEN}/api/v1.0/event", EVENT_PAYLOAD)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert len(probes) == 2


# --- reauth ---


@direct
async def test_reauth(
    hass: HomeAssistant,
    auth_broker: MosquittoBroker,
    auth_sim: SimulatorRunner,
    mock_setup_entry: AsyncMock,
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SERIAL,
        title=DEVICE_NAME,
        data=direct_data(auth_broker, **{CONF_USERNAME: "ha", CONF_PASSWORD: "old"}),
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert_translated(result)
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["host"] == auth_broker.host
    assert suggested_values(dict(result)) == {CONF_USERNAME: "ha"}

    result = await configure(
        hass, result["flow_id"], {CONF_USERNAME: "ha", CONF_PASSWORD: "still-wrong"}
    )
    assert result["step_id"] == "reauth_confirm"
    assert result["errors"] == {"base": "invalid_auth"}

    result = await configure(
        hass, result["flow_id"], {CONF_USERNAME: "ha", CONF_PASSWORD: "hunter2"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "hunter2"
    assert entry.data[CONF_TOKEN] == TOKEN
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1  # reloaded


@direct
async def test_credentials_refused_at_a_reconnect_start_reauth_once(
    hass: HomeAssistant, auth_broker: MosquittoBroker, auth_sim: SimulatorRunner
) -> None:
    """The password changes on the broker while the entry runs: one reauth flow, no
    reconnect storm, and the entry works again once the user gives the new password."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SERIAL,
        title=DEVICE_NAME,
        data=direct_data(auth_broker, **{CONF_USERNAME: "ha", CONF_PASSWORD: "hunter2"}),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    transport = entry.runtime_data.transport

    auth_broker.stop()
    auth_broker._users["ha"] = "changed"  # the broker's admin changed the password
    auth_broker._write_config()
    auth_broker.start()
    async with asyncio.timeout(15):
        while transport.auth_error is None:  # noqa: ASYNC110  # set by the transport task
            await asyncio.sleep(0.05)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert not transport.connected
    await asyncio.sleep(1.5)  # a retrying transport would have tried again by now
    assert len(hass.config_entries.flow.async_progress_by_handler(DOMAIN)) == 1
    assert transport.auth_error is not None
    assert not transport.connected

    result = await configure(
        hass, flows[0]["flow_id"], {CONF_USERNAME: "ha", CONF_PASSWORD: "changed"}
    )
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.transport.connected
    assert await hass.config_entries.async_unload(entry.entry_id)


@direct
async def test_reauth_finds_another_pbx(
    hass: HomeAssistant, auth_broker: MosquittoBroker, auth_sim: SimulatorRunner
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=OTHER_PBX.serial,
        data=direct_data(auth_broker, **{CONF_USERNAME: "ha", CONF_PASSWORD: "old"}),
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await configure(
        hass, result["flow_id"], {CONF_USERNAME: "ha", CONF_PASSWORD: "hunter2"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert entry.data[CONF_PASSWORD] == "old"


async def test_reauth_of_a_ha_mqtt_entry(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=HA_MQTT_DATA)
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert_translated(result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_ha_mqtt"


# --- reconfigure ---


async def test_reconfigure_new_token(
    hass: HomeAssistant,
    ha_pbx: SimulatedPbx,
    mqtt_client_mock: MagicMock,
    mock_setup_entry: AsyncMock,
) -> None:
    """The PBX's token was changed on its API Manager page; the entry follows."""
    moved = SimulatedPbx(PbxConfig(token="new-token"))
    attach_pbx_to_ha_mqtt(hass, mqtt_client_mock, moved)
    entry = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, title=DEVICE_NAME, data=HA_MQTT_DATA)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert_translated(result)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "reconfigure"
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    assert result["step_id"] == "token"
    assert suggested_values(result) == {CONF_TOKEN: TOKEN}

    result = await configure(hass, result["flow_id"], {CONF_TOKEN: "typo-token"})
    assert result["errors"] == {"base": "no_response"}

    result = await configure(hass, result["flow_id"], {CONF_TOKEN: "new-token"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: "new-token"}
    assert entry.title == DEVICE_NAME
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1


async def test_reconfigure_to_another_pbx(
    hass: HomeAssistant, ha_pbx: SimulatedPbx, mqtt_client_mock: MagicMock
) -> None:
    attach_pbx_to_ha_mqtt(hass, mqtt_client_mock, SimulatedPbx(OTHER_PBX))
    entry = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=HA_MQTT_DATA)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await configure(hass, result["flow_id"], {"next_step_id": TRANSPORT_HA_MQTT})
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: OTHER_PBX.token})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert result["description_placeholders"] == {
        "name": OTHER_PBX.devicename,
        "serial": OTHER_PBX.serial,
    }
    assert entry.data == HA_MQTT_DATA


@direct
async def test_reconfigure_direct_to_another_broker(
    hass: HomeAssistant,
    auth_broker: MosquittoBroker,
    auth_sim: SimulatorRunner,
    mock_setup_entry: AsyncMock,
) -> None:
    """Without Home Assistant's MQTT there is no menu; the old broker is suggested."""
    old = direct_data(
        auth_broker,
        **{CONF_HOST: "old-broker.example", CONF_USERNAME: "ha", CONF_PASSWORD: "hunter2"},
    )
    entry = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=old)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert_translated(result)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "direct"
    assert suggested_values(result) == {
        CONF_HOST: "old-broker.example",
        CONF_PORT: auth_broker.port,
        CONF_USERNAME: "ha",
        CONF_PASSWORD: "hunter2",
        CONF_TLS: False,
        CONF_VERIFY_SSL: True,
    }
    form = broker_form(auth_broker, **{CONF_USERNAME: "ha", CONF_PASSWORD: "hunter2"})
    result = await configure(hass, result["flow_id"], form)
    assert result["step_id"] == "token"
    assert suggested_values(result) == {CONF_TOKEN: TOKEN}
    # The old broker (a name nobody resolves here) is asked to forget the entry's session.
    with patch.object(config_flow, "async_discard_direct_session") as discard:
        result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["reason"] == "reconfigure_successful"
    discard.assert_awaited_once_with(old, entry.entry_id)
    assert entry.data == old | {CONF_HOST: auth_broker.host}


@direct
async def test_reconfigure_ha_mqtt_entry_to_direct(
    hass: HomeAssistant, broker: MosquittoBroker, sim: SimulatorRunner, mock_setup_entry: AsyncMock
) -> None:
    """Home Assistant's MQTT went away: move the PBX to a broker of its own."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=HA_MQTT_DATA)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "direct"
    assert suggested_values(result) == {}
    result = await configure(hass, result["flow_id"], broker_form(broker))
    result = await configure(hass, result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == direct_data(broker)


# --- options ---


async def test_the_options_are_the_phonebook_only(hass: HomeAssistant) -> None:
    """The poll interval and command timeout are not options (core's rules); the phonebook
    is (test_caller_names.py)."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data=HA_MQTT_DATA)
    entry.add_to_hass(hass)
    assert entry.supports_options
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert {str(field) for field in result["data_schema"].schema} == {
        "phonebook",
        "phonebook_file",
        "country_code",
        "trunk_prefix",
        "international_prefix",
        "outside_line_prefix",
    }


# --- the probe itself ---


async def test_probe_without_ha_mqtt(hass: HomeAssistant) -> None:
    with pytest.raises(PbxConnectionError):
        await config_flow.async_probe(hass, HA_MQTT_DATA)


async def test_probe_while_ha_mqtt_never_finishes_setting_up(hass: HomeAssistant) -> None:
    MockConfigEntry(domain="mqtt", data={"broker": "mock-broker"}).add_to_hass(hass)
    with (
        patch.object(config_flow, "PROBE_TIMEOUT", 0.05),
        pytest.raises(PbxConnectionError),
    ):
        await config_flow.async_probe(hass, HA_MQTT_DATA)


async def test_probe_rejects_a_bad_token_before_connecting(hass: HomeAssistant) -> None:
    # Without Home Assistant's MQTT, connecting first would raise PbxConnectionError.
    with pytest.raises(PbxInvalidArgumentError):
        await config_flow.async_probe(hass, {**HA_MQTT_DATA, CONF_TOKEN: "a/b"})


async def test_probe_asks_again_when_the_first_reply_is_lost(
    hass: HomeAssistant, ha_pbx: SimulatedPbx
) -> None:
    ha_pbx.silent = True
    real_handle = ha_pbx.handle_command

    def drop_first(topic: str, payload: bytes | str) -> None:
        real_handle(topic, payload)
        ha_pbx.silent = False

    with patch.object(ha_pbx, "handle_command", side_effect=drop_first):
        info = await config_flow.async_probe(hass, HA_MQTT_DATA)
    assert info.serial == SERIAL
    assert ha_pbx.commands_received == 2


async def test_probe_gives_up_at_its_deadline(hass: HomeAssistant, ha_pbx: SimulatedPbx) -> None:
    ha_pbx.silent = True
    loop = hass.loop
    started = loop.time()
    with patch.object(config_flow, "PROBE_TIMEOUT", 1.5), pytest.raises(PbxTimeoutError):
        await config_flow.async_probe(hass, HA_MQTT_DATA)
    assert 1.45 <= loop.time() - started < 3.0
    # Asks after 0.2 s, 0.4 s, ... until the deadline; waiting for HA to confirm the
    # subscription first (its subscribe cooldown is up to 0.5 s) shortens the series.
    assert 2 <= ha_pbx.commands_received <= 4


@direct
async def test_probe_closes_its_connection(
    hass: HomeAssistant, broker: MosquittoBroker, sim: SimulatorRunner
) -> None:
    """Whether it asks the PBX, only checks the broker, or fails."""
    closed = []
    real_close = config_flow.AiomqttTransport.close

    async def spy_close(self: Any) -> None:
        closed.append(self)
        await real_close(self)

    broker_only = direct_data(broker)
    del broker_only[CONF_TOKEN]
    with patch.object(config_flow.AiomqttTransport, "close", spy_close):
        assert (await config_flow.async_probe(hass, direct_data(broker))).serial == SERIAL
        assert await config_flow.async_probe(hass, broker_only) is None
        with pytest.raises(PbxConnectionError):
            await config_flow.async_probe(hass, broker_only | {CONF_PORT: free_port()})
    assert len(closed) == 3
    assert not any(transport.connected for transport in closed)


@direct
async def test_a_session_on_an_unreachable_broker_is_only_warned_about(
    socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    data = {CONF_TRANSPORT: TRANSPORT_DIRECT, CONF_HOST: "127.0.0.1", CONF_PORT: free_port()}
    await config_flow.async_discard_direct_session(data, "entry-id")
    assert "Could not remove the MQTT session of the removed connection" in caplog.text


# --- translations ---


def test_every_field_has_a_label_and_a_description() -> None:
    strings = load_translations()
    for section in ("config",):
        for step_id, step in strings[section]["step"].items():
            assert step.get("title"), f"{section}.{step_id} has no title"
            data = step.get("data", {})
            descriptions = step.get("data_description", {})
            assert set(data) == set(descriptions), f"{section}.{step_id}"
            assert all(data.values())
            assert all(descriptions.values())

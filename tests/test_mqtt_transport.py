"""The transport over Home Assistant's own MQTT integration, while that connection is down.

Home Assistant's MQTT integration runs for real; only its paho client is phcc's mock
(``mqtt_client_mock``), which is where a test plays the broker: connection loss and
return, and SUBACKs that come late.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
from typing import Any
from unittest.mock import MagicMock, Mock

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockMqttReasonCode,
    async_fire_mqtt_message,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.smartpbx import mqtt_transport
from custom_components.smartpbx.mqtt_transport import HassMqttTransport
from custom_components.smartpbx.pbx.errors import PbxNotConnectedError

from .config_flow_helpers import close_ha_mqtt_socket
from .reliability_helpers import eventually

FILTER = "device/transport-test/api/v1.0/+"
REPLY_TOPIC = "device/transport-test/api/v1.0/response"
"""Not ``event`` or ``cdr``: messages there would start MQTT discovery of a new PBX."""
COMMAND_TOPIC = "device/transport-test/api/v1.0/command/system"


def _published_topics(mqtt_client_mock: MagicMock) -> list[str]:
    return [call.args[0] for call in mqtt_client_mock.publish.call_args_list]


def _subscribed_filters(mqtt_client_mock: MagicMock) -> list[str]:
    filters: list[str] = []
    for call in mqtt_client_mock.subscribe.call_args_list:
        argument = call.args[0]
        if isinstance(argument, list):
            filters.extend(item[0] for item in argument)
        else:
            filters.append(argument)
    return filters


async def _unsubscribe_at_the_broker(
    hass: HomeAssistant, mqtt_client_mock: MagicMock, unsubscribe: Callable[[], None]
) -> None:
    """Unsubscribe, and wait until HA's batching has sent the UNSUBSCRIBE (no timer left)."""
    unsubscribe()
    await eventually(
        lambda: any(call.args[0] == FILTER for call in mqtt_client_mock.unsubscribe.call_args_list)
        or any(FILTER in call.args[0] for call in mqtt_client_mock.unsubscribe.call_args_list)
    )
    await hass.async_block_till_done()


async def _lose_connection(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> None:
    """Drop HA's MQTT connection as paho reports it.

    phcc wraps HA's MQTT client in a mock whose ``connected`` (what ``mqtt.is_connected``
    reads) it pins to True; it has to follow the connection by hand.
    """
    mqtt_client_mock.on_disconnect(mqtt_client_mock, None, None, MockMqttReasonCode())
    mqtt_mock.connected = False
    await hass.async_block_till_done()


async def _reconnect(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> None:
    mqtt_mock.connected = True
    mqtt_client_mock.on_connect(mqtt_client_mock, None, 0, MockMqttReasonCode())
    await hass.async_block_till_done()


async def test_publishing_while_home_assistant_mqtt_is_down_fails_fast_and_sends_nothing(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> None:
    """A command published while HA's MQTT client is disconnected fails at once with
    PbxNotConnectedError (what the client maps to "not connected"), instead of being handed
    to a client that would queue it or fail it later."""
    transport = HassMqttTransport(hass)
    await transport.publish(COMMAND_TOPIC, b'{"cmd": "deviceInfo"}')
    assert _published_topics(mqtt_client_mock).count(COMMAND_TOPIC) == 1

    await _lose_connection(hass, mqtt_mock, mqtt_client_mock)
    assert not transport.connected

    with pytest.raises(PbxNotConnectedError):
        await transport.publish(COMMAND_TOPIC, b'{"cmd": "deviceInfo"}')
    assert _published_topics(mqtt_client_mock).count(COMMAND_TOPIC) == 1

    await _reconnect(hass, mqtt_mock, mqtt_client_mock)
    close_ha_mqtt_socket(mqtt_client_mock)


async def test_subscribing_while_disconnected_does_not_wait_and_subscribes_on_reconnect(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> None:
    """Subscribing while HA's MQTT client is down returns without waiting for a SUBACK
    that cannot come (nothing is sent), and HA subscribes at the broker once it is back,
    after which messages reach our callback as bytes."""
    transport = HassMqttTransport(hass)
    await _lose_connection(hass, mqtt_mock, mqtt_client_mock)
    mqtt_client_mock.subscribe.reset_mock()
    received: list[tuple[str, bytes]] = []

    loop = hass.loop
    started = loop.time()
    unsubscribe = await transport.subscribe(
        FILTER, lambda topic, payload: received.append((topic, payload))
    )
    # Well under the confirmation timeout it would otherwise wait out.
    assert loop.time() - started < mqtt_transport.SUBSCRIBE_CONFIRM_TIMEOUT / 5
    await hass.async_block_till_done()
    assert FILTER not in _subscribed_filters(mqtt_client_mock)

    await _reconnect(hass, mqtt_mock, mqtt_client_mock)
    await eventually(lambda: FILTER in _subscribed_filters(mqtt_client_mock))

    async_fire_mqtt_message(hass, REPLY_TOPIC, b'{"status": "Success"}')
    await hass.async_block_till_done()
    assert received == [(REPLY_TOPIC, b'{"status": "Success"}')]

    await _unsubscribe_at_the_broker(hass, mqtt_client_mock, unsubscribe)
    close_ha_mqtt_socket(mqtt_client_mock)


async def test_a_subscription_the_broker_confirms_late_is_kept_and_logged(
    hass: HomeAssistant,
    mqtt_mock: MqttMockHAClient,
    mqtt_client_mock: MagicMock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the broker's SUBACK does not come within the confirmation timeout, subscribe
    still returns (logging it at debug level, not failing setup), and the subscription
    works: HA keeps it and delivers what arrives on it."""
    caplog.set_level(logging.DEBUG, logger="custom_components.smartpbx")
    monkeypatch.setattr(mqtt_transport, "SUBSCRIBE_CONFIRM_TIMEOUT", 0.2)
    answered = mqtt_client_mock.subscribe.side_effect
    unanswered: list[int] = []

    def no_suback_for_our_filter(topic_or_list: Any, qos: int = 0, **kwargs: Any) -> Any:
        filters = [item[0] for item in topic_or_list] if isinstance(topic_or_list, list) else []
        if FILTER not in (*filters, topic_or_list):
            return answered(topic_or_list, qos, **kwargs)
        unanswered.append(9000 + len(unanswered))
        return (0, unanswered[-1])

    mqtt_client_mock.subscribe.side_effect = no_suback_for_our_filter
    transport = HassMqttTransport(hass)
    received: list[tuple[str, bytes]] = []

    unsubscribe = await transport.subscribe(
        FILTER, lambda topic, payload: received.append((topic, payload))
    )

    assert any(
        "subscription not confirmed within 0.2 s" in record.getMessage()
        for record in caplog.records
    )
    # HA sends the SUBSCRIBE (with its own batching delay); the broker stays quiet.
    await eventually(lambda: FILTER in _subscribed_filters(mqtt_client_mock))
    async_fire_mqtt_message(hass, REPLY_TOPIC, b"{}")
    await hass.async_block_till_done()
    assert received == [(REPLY_TOPIC, b"{}")]

    # The SUBACK arrives after all; HA stops waiting for it.
    for mid in unanswered:
        mqtt_client_mock.on_subscribe(Mock(), 0, mid, [MockMqttReasonCode()], None)
    await hass.async_block_till_done()
    await _unsubscribe_at_the_broker(hass, mqtt_client_mock, unsubscribe)
    close_ha_mqtt_socket(mqtt_client_mock)

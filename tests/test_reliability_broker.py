"""Broker restarts: the integration recovers by itself, without a reload.

Direct transport: Mosquitto is stopped for 5 s and started again on the same port (it
keeps no sessions: ``persistence false``). Our transport reconnects with backoff and
subscribes again; entities come back and actions work. Home Assistant's MQTT transport:
HA's client restores its subscriptions on reconnect, ours among them.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import MockMqttReasonCode
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.smartpbx.const import (
    DOMAIN,
    EVENT_CDR,
)
from custom_components.smartpbx.pbx.topics import inbound_filter

from .broker import MosquittoBroker
from .config_flow_helpers import close_ha_mqtt_socket
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    setup_over_ha_mqtt,
    smartpbx_fixture,
    tolerate_aiomqtt_writer_race,
    unload_integration,
)
from .reliability_helpers import BusRecorder, eventually

STATUS_8001 = "sensor.extension_8001_status"
CONNECTIVITY = "binary_sensor.spx1004o4s_connectivity"
OUTAGE = 5.0
RECONNECT_LIMIT = 20.0
"""Backoff doubles from 0.5 s, randomised; after a 5 s outage it reconnects within ~8 s."""


async def test_broker_restart_recovers_without_reload(
    hass: HomeAssistant,
    socket_enabled: None,
    private_broker: MosquittoBroker,
    smartpbx: SmartPbxFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry, runner = await smartpbx(broker=private_broker)
    data = runtime(entry)
    cdrs = BusRecorder(hass, [EVENT_CDR])
    caplog.clear()

    private_broker.stop()
    await eventually(lambda: hass.states.get(STATUS_8001).state == STATE_UNAVAILABLE)
    assert not data.transport.connected
    await asyncio.sleep(OUTAGE)
    restarted = time.monotonic()
    private_broker.start()

    # Our transport reconnects by itself; the simulator does too.
    await eventually(lambda: data.transport.connected, limit=RECONNECT_LIMIT)
    reconnect_seconds = time.monotonic() - restarted
    await eventually(lambda: hass.states.get(STATUS_8001).state == "idle", limit=RECONNECT_LIMIT)
    assert hass.states.get(CONNECTIVITY).state == "on"
    await runner.wait_connected()

    # Same entry, same client: nothing was reloaded.
    assert entry.state is ConfigEntryState.LOADED
    assert runtime(entry) is data

    # Subscribed again (the restarted broker forgot every subscription): events arrive...
    runner.emit_cdr("8001", "8002", callid="1672401220.9")
    await eventually(lambda: len(cdrs.of(EVENT_CDR)) == 1)
    runner.set_extension_status("8001", "Busy")
    await eventually(lambda: hass.states.get(STATUS_8001).state == "busy")
    # ...and actions get their replies.
    response = await hass.services.async_call(
        DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["queue"] == "6666"

    ours = [
        record
        for record in caplog.records
        if record.name.startswith("custom_components.smartpbx") and record.levelno >= logging.INFO
    ]
    # One warning for the loss, one info line for the return; nothing at error level.
    assert [r.levelno for r in ours].count(logging.WARNING) == 1, ours
    assert not [r for r in ours if r.levelno >= logging.ERROR], ours
    print(f"direct transport: reconnected {reconnect_seconds:.2f} s after the broker returned")
    assert reconnect_seconds < RECONNECT_LIMIT
    cdrs.stop()


async def test_broker_down_fails_actions_fast(
    hass: HomeAssistant,
    socket_enabled: None,
    private_broker: MosquittoBroker,
    smartpbx: SmartPbxFactory,
) -> None:
    """While the broker is away an action fails at once instead of waiting its timeout."""
    entry, _ = await smartpbx(broker=private_broker, command_timeout=30.0)
    data = runtime(entry)
    private_broker.stop()
    await eventually(lambda: not data.transport.connected)

    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as failure:
        await hass.services.async_call(
            DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
        )
    assert failure.value.translation_key == "pbx_not_connected"
    assert time.monotonic() - started < 1.0
    assert data.client.pending_count == 0
    private_broker.start()
    await eventually(lambda: data.transport.connected, limit=RECONNECT_LIMIT)


async def test_home_assistant_mqtt_reconnect_keeps_our_subscription(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> None:
    """HA's MQTT client re-subscribes everything on reconnect; we need do nothing."""
    entry, pbx = await setup_over_ha_mqtt(hass, mqtt_client_mock)
    assert entry.state is ConfigEntryState.LOADED
    data = runtime(entry)
    our_filter = inbound_filter(SMALL_PBX.token)

    # The broker connection drops: entities go unavailable at once.
    mqtt_client_mock.on_disconnect(mqtt_client_mock, None, None, MockMqttReasonCode())
    await hass.async_block_till_done()
    assert hass.states.get(STATUS_8001).state == STATE_UNAVAILABLE
    assert hass.states.get(CONNECTIVITY).state == "off"

    mqtt_client_mock.subscribe.reset_mock()
    mqtt_client_mock.on_connect(mqtt_client_mock, None, 0, MockMqttReasonCode())

    def resubscribed() -> bool:
        topics: list[str] = []
        for call in mqtt_client_mock.subscribe.call_args_list:
            argument = call.args[0]
            topics.extend(
                [item[0] for item in argument] if isinstance(argument, list) else [argument]
            )
        return our_filter in topics

    await eventually(resubscribed)
    await eventually(lambda: hass.states.get(STATUS_8001).state == "idle")
    assert hass.states.get(CONNECTIVITY).state == "on"
    assert runtime(entry) is data

    # Events and replies flow again over the same subscription.
    pbx.set_extension_status("8001", "Busy")
    await hass.async_block_till_done()
    assert hass.states.get(STATUS_8001).state == "busy"
    response = await hass.services.async_call(
        DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["queue"] == "6666"

    await unload_integration(hass, entry)
    close_ha_mqtt_socket(mqtt_client_mock)


async def test_home_assistant_mqtt_publish_failure_is_a_connection_error(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_client_mock: MagicMock
) -> None:
    """A publication HA's MQTT client reports failed fails the action cleanly, at once."""
    entry, _ = await setup_over_ha_mqtt(hass, mqtt_client_mock)
    working = mqtt_client_mock.publish.side_effect
    mqtt_client_mock.publish.side_effect = lambda *args, **kwargs: MagicMock(rc=4, mid=9999)

    with pytest.raises(HomeAssistantError) as failure:
        await hass.services.async_call(
            DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
        )

    assert failure.value.translation_key == "pbx_not_connected"
    assert runtime(entry).client.pending_count == 0
    mqtt_client_mock.publish.side_effect = working
    await unload_integration(hass, entry)
    close_ha_mqtt_socket(mqtt_client_mock)


async def test_only_aiomqtts_writer_race_is_tolerated_by_the_tests() -> None:
    """The helper drops exactly the upstream EBADF from aiomqtt's deferred add_writer;
    every other loop exception still reaches the handler that fails the test."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        tolerate_aiomqtt_writer_race(SimpleNamespace(loop=loop))  # type: ignore[arg-type]
        tolerate_aiomqtt_writer_race(SimpleNamespace(loop=loop))  # type: ignore[arg-type]
        writer = loop.call_soon(loop.add_writer, 26, print)
        writer.cancel()
        bad_fd = OSError(errno.EBADF, "Bad file descriptor")
        loop.call_exception_handler({"exception": bad_fd, "handle": writer})
        assert seen == []
        other = {"exception": OSError(errno.EPIPE, "Broken pipe"), "handle": writer}
        loop.call_exception_handler(other)
        reader = loop.call_soon(print)
        reader.cancel()
        elsewhere = {"exception": bad_fd, "handle": reader}
        loop.call_exception_handler(elsewhere)
        assert seen == [other, elsewhere]
    finally:
        loop.set_exception_handler(previous)

"""Broker restarts: the integration recovers by itself, without a reload.

Direct transport: Mosquitto is stopped for 5 s and started again on the same port (it
keeps no sessions: ``persistence false``). Our transport reconnects with backoff and
subscribes again; entities come back and actions work. Home Assistant's MQTT transport:
HA's client restores its subscriptions on reconnect, ours among them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from unittest.mock import MagicMock, patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import paho.mqtt.client as paho
import pytest
from pytest_homeassistant_custom_component.common import MockMqttReasonCode
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.smartpbx.const import (
    DOMAIN,
    EVENT_CDR,
)
from custom_components.smartpbx.pbx import aiomqtt_transport
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


async def test_no_writer_is_registered_for_a_socket_that_closed_meanwhile() -> None:
    """aiomqtt defers registering the writer; a connection lost in between must not be
    handed to the event loop (it logged "Bad file descriptor" at ERROR level)."""
    client = aiomqtt_transport._Client("127.0.0.1", 1883, message_handler=lambda *_: None)
    paho_client, sock = MagicMock(), MagicMock()
    sock.fileno.return_value = 12345
    loop = asyncio.get_running_loop()

    async def register_from_another_thread() -> None:
        # paho asks from aiomqtt's connect thread while connecting.
        await asyncio.to_thread(client._on_socket_register_write, paho_client, None, sock)
        await asyncio.sleep(0)

    with patch.object(loop, "add_writer") as add_writer:
        paho_client.socket.return_value = None  # paho let go of it: closed
        await register_from_another_thread()
        add_writer.assert_not_called()

        paho_client.socket.return_value = sock  # still the live socket
        await register_from_another_thread()
        add_writer.assert_called_once()
        assert add_writer.call_args.args[0] == 12345
        write = add_writer.call_args.args[1]

    # A write that fails ends the session with that error, as aiomqtt's own does.
    paho_client.loop_write.side_effect = OSError("broken pipe")
    write()
    assert isinstance(client._disconnected.exception(), OSError)


async def test_writes_on_the_loop_thread_need_no_writer_unless_the_socket_is_full() -> None:
    """On the loop's thread (every PUBACK and publish once connected) paho's output is
    written on the loop's next turn; the socket is watched only while its buffer is full,
    and nothing is written once paho has let go of the socket."""
    client = aiomqtt_transport._Client("127.0.0.1", 1883, message_handler=lambda *_: None)
    paho_client, sock = MagicMock(), MagicMock()
    sock.fileno.return_value = 12345
    loop = asyncio.get_running_loop()
    with patch.object(loop, "add_writer") as add_writer:
        paho_client.socket.return_value = None
        client._on_socket_register_write(paho_client, None, sock)
        await asyncio.sleep(0)
        paho_client.loop_write.assert_not_called()

        paho_client.socket.return_value = sock
        paho_client.want_write.return_value = False  # all written
        client._on_socket_register_write(paho_client, None, sock)
        paho_client.loop_write.assert_not_called()  # not before the loop's next turn
        await asyncio.sleep(0)
        paho_client.loop_write.assert_called_once()
        add_writer.assert_not_called()

        paho_client.want_write.return_value = True  # the send buffer filled up
        client._on_socket_register_write(paho_client, None, sock)
        await asyncio.sleep(0)
        assert paho_client.loop_write.call_count == 2
        add_writer.assert_called_once()
        assert add_writer.call_args.args[0] == 12345


async def test_messages_are_handed_over_as_paho_reads_them() -> None:
    """No queue between paho and the dispatcher; a topic that is not UTF-8 (which MQTT
    forbids, and no filter of ours could match) is dropped instead of raising in paho."""
    received: list[tuple[str, bytes]] = []
    client = aiomqtt_transport._Client(
        "127.0.0.1", 1883, message_handler=lambda topic, payload: received.append((topic, payload))
    )
    good = paho.MQTTMessage(topic=b"smartpbx/abc/event")
    good.payload = b"{}"
    bad = paho.MQTTMessage(topic=b"smartpbx/\xff/event")
    bad.payload = b"{}"
    client._on_message(MagicMock(), None, bad)
    client._on_message(MagicMock(), None, good)
    assert received == [("smartpbx/abc/event", b"{}")]
    assert client._queue.qsize() == 0

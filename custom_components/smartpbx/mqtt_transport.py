"""The client library's Transport over Home Assistant's own MQTT integration.

Like HA's Tasmota integration, the library stays HA-free and HA injects publish and
subscribe into it. HA's MQTT client reconnects on its own and restores its
subscriptions, so ours survive HA's reconnects with nothing to do here.
"""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback

from .pbx.errors import PbxNotConnectedError
from .pbx.transport import ConnectionCallback, MessageCallback, Unsubscribe


class HassMqttTransport:
    """Transport that publishes and subscribes through HA's MQTT integration."""

    def __init__(self, hass: HomeAssistant) -> None:
        self._hass = hass

    @property
    def connected(self) -> bool:
        return mqtt.is_connected(self._hass)

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        if not self.connected:
            raise PbxNotConnectedError("Home Assistant's MQTT client is not connected")
        await mqtt.async_publish(self._hass, topic, payload, qos=qos, retain=False, encoding=None)

    async def subscribe(
        self, topic_filter: str, callback_: MessageCallback, qos: int = 1
    ) -> Unsubscribe:
        @callback
        def _on_message(message: mqtt.ReceiveMessage) -> None:
            payload = message.payload
            if isinstance(payload, str):
                payload = payload.encode()
            callback_(message.topic, payload)

        return await mqtt.async_subscribe(
            self._hass, topic_filter, _on_message, qos=qos, encoding=None
        )

    def add_connection_listener(self, callback_: ConnectionCallback) -> Unsubscribe:
        @callback
        def _on_state(connected: bool) -> None:
            callback_(connected)

        return mqtt.async_subscribe_connection_status(self._hass, _on_state)

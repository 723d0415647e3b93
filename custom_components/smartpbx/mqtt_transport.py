"""The library's Transport over Home Assistant's MQTT, which reconnects and resubscribes itself."""

from __future__ import annotations

import asyncio
from typing import Final

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from .const import LOGGER
from .pbx.errors import PbxConnectionError, PbxNotConnectedError
from .pbx.transport import ConnectionCallback, MessageCallback, Unsubscribe

SUBSCRIBE_CONFIRM_TIMEOUT: Final = 5.0


class HassMqttTransport:
    def __init__(self, hass: HomeAssistant) -> None:
        self._hass = hass

    @property
    def connected(self) -> bool:
        return mqtt.is_connected(self._hass)

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        if not self.connected:
            raise PbxNotConnectedError("Home Assistant's MQTT client is not connected")
        try:
            await mqtt.async_publish(self._hass, topic, payload, qos=qos, encoding=None)
        except HomeAssistantError as err:
            # E.g. refused by the broker, or MQTT unloaded meanwhile: a connection problem.
            raise PbxConnectionError(f"Home Assistant's MQTT client failed: {err}") from err

    async def subscribe(
        self, topic_filter: str, callback_: MessageCallback, qos: int = 1
    ) -> Unsubscribe:
        @callback
        def _on_message(message: mqtt.ReceiveMessage) -> None:
            payload = message.payload
            data = payload.encode() if isinstance(payload, str) else bytes(payload)
            callback_(message.topic, data)

        unsubscribe = await mqtt.async_subscribe(
            self._hass, topic_filter, _on_message, qos=qos, encoding=None
        )
        if not self.connected:
            return unsubscribe  # sent when HA reconnects; no SUBACK to wait for now
        # HA batches SUBSCRIBE packets and sends them a moment later; a command published
        # before the broker has the subscription would lose its reply.
        subscribed = asyncio.Event()
        stop_waiting = mqtt.async_on_subscribe_done(self._hass, topic_filter, qos, subscribed.set)
        try:
            async with asyncio.timeout(SUBSCRIBE_CONFIRM_TIMEOUT):
                await subscribed.wait()
        except TimeoutError:
            # Not fatal: HA keeps the subscription and sends it when it can.
            LOGGER.debug("MQTT subscription not confirmed within %s s", SUBSCRIBE_CONFIRM_TIMEOUT)
        finally:
            stop_waiting()
        return unsubscribe

    def add_connection_listener(self, callback_: ConnectionCallback) -> Unsubscribe:
        @callback
        def _on_state(connected: bool) -> None:
            callback_(connected)

        return mqtt.async_subscribe_connection_status(self._hass, _on_state)

"""Ask a PBX who it is over either transport (the config flow's check), leaving nothing running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

from homeassistant.core import HomeAssistant

from .const import CONF_TOKEN, CONF_TRANSPORT, LOGGER, TRANSPORT_HA_MQTT
from .pbx.aiomqtt_transport import AiomqttTransport
from .pbx.client import SmartPbxClient
from .pbx.errors import PbxConnectionError, PbxError
from .pbx.models import DeviceInfo
from .pbx.transport import Transport
from .pbx.validation import validate_token

PROBE_TIMEOUT: Final = 10.0
"""Seconds the whole probe (broker connection included) may take. Tests shorten it."""


def direct_client_id(entry_id: str) -> str:
    """The MQTT client id of a direct entry's connection: stable, for its persistent session."""
    return f"ha-smartpbx-{entry_id}"


async def async_discard_direct_session(data: Mapping[str, Any], entry_id: str) -> None:
    """Remove the persistent session of a direct entry giving its broker up (best effort).

    Else the broker keeps its subscription forever and queues the PBX's traffic for it.
    """
    if data.get(CONF_TRANSPORT) == TRANSPORT_HA_MQTT:
        return
    transport = AiomqttTransport.from_settings(data, client_id=direct_client_id(entry_id))
    try:
        await transport.discard_session(timeout=PROBE_TIMEOUT)
    except PbxError as err:
        LOGGER.warning("Could not remove the MQTT session of the removed connection: %s", err)


@asynccontextmanager
async def _async_connected_transport(
    hass: HomeAssistant, data: Mapping[str, Any], within: float
) -> AsyncIterator[Transport]:
    """A connected transport for the block, closed however it ends.

    Raises PbxAuthError (credentials refused), PbxConnectionError (broker unreachable).
    """
    if data[CONF_TRANSPORT] == TRANSPORT_HA_MQTT:
        # Imported here: Home Assistant's MQTT integration (and paho) is only needed,
        # and may only be installed, when it is the chosen transport.
        from homeassistant.components import mqtt

        from .mqtt_transport import HassMqttTransport

        # Waits while Home Assistant's MQTT entry is still being set up.
        try:
            async with asyncio.timeout(within):
                available = await mqtt.async_wait_for_mqtt_client(hass)
        except TimeoutError:
            available = False
        if not available or not mqtt.is_connected(hass):
            raise PbxConnectionError("Home Assistant's MQTT client is not connected")
        yield HassMqttTransport(hass)
        return

    direct = AiomqttTransport.from_settings(data)
    try:
        await direct.connect(timeout=within)
        yield direct
    finally:
        await direct.close()


async def async_check_broker(hass: HomeAssistant, data: Mapping[str, Any]) -> None:
    """Connect to the broker ``data`` describes and disconnect again."""
    async with _async_connected_transport(hass, data, PROBE_TIMEOUT):
        pass


async def async_probe_pbx(
    hass: HomeAssistant, data: Mapping[str, Any], *, probe_timeout: float | None = None
) -> DeviceInfo:
    """Ask the PBX that ``data`` (config entry data) names for its device info.

    ``probe_timeout`` bounds the connection and the answer together. Raises what the
    connection raises, PbxInvalidArgumentError (bad token, nothing sent), PbxTimeoutError.
    """
    token = validate_token(data[CONF_TOKEN])
    total = PROBE_TIMEOUT if probe_timeout is None else probe_timeout
    async with _async_connected_transport(hass, data, total) as transport:
        client = SmartPbxClient(transport, token, timeout=total)
        try:
            await client.start()
            return await client.device_info_within(total)
        finally:
            await client.stop()

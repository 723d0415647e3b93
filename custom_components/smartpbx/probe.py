"""Ask a PBX who it is over either transport (the config flow's check), leaving nothing running."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
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


async def async_probe(
    hass: HomeAssistant, data: Mapping[str, Any], *, probe_timeout: float | None = None
) -> DeviceInfo | None:
    """Connect to the broker ``data`` (config entry data) names; with a token, ask the PBX.

    Everything is closed again. ``probe_timeout`` bounds it all. Raises PbxAuthError
    (credentials refused), PbxConnectionError (broker unreachable), PbxInvalidArgumentError
    (a token that cannot be a topic level: nothing is sent), PbxTimeoutError (no answer).
    """
    token = validate_token(data[CONF_TOKEN]) if CONF_TOKEN in data else None
    within = PROBE_TIMEOUT if probe_timeout is None else probe_timeout
    async with AsyncExitStack() as stack:
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
            transport: Transport = HassMqttTransport(hass)
        else:
            transport = direct = AiomqttTransport.from_settings(data)
            stack.push_async_callback(direct.close)
            await direct.connect(timeout=within)
        if token is None:
            return None
        client = SmartPbxClient(transport, token, timeout=within)
        stack.push_async_callback(client.stop)
        await client.start()
        return await client.device_info_within(within)

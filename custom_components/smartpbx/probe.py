"""Ask a PBX who it is, over either transport, leaving nothing running afterwards.

Every config flow path (user, discovery, reauth, reconfigure) runs this before it saves
anything, and the answer's serial number becomes the config entry's unique id. Setup
code may reuse it, or just :func:`create_transport`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .const import (
    CONF_TLS,
    CONF_TOKEN,
    CONF_TRANSPORT,
    CONF_VERIFY_SSL,
    DEFAULT_PORT,
    LOGGER,
    TRANSPORT_HA_MQTT,
)
from .pbx.aiomqtt_transport import AiomqttTransport
from .pbx.client import SmartPbxClient
from .pbx.errors import PbxConnectionError, PbxError, PbxTimeoutError
from .pbx.models import DeviceInfo
from .pbx.validation import validate_token

if TYPE_CHECKING:
    from .pbx.transport import Transport

PROBE_TIMEOUT: Final = 10.0
"""Seconds the whole probe (broker connection included) may take. Tests shorten it."""

PROBE_FIRST_ATTEMPT: Final = 0.5
"""Seconds the first ``deviceInfo`` waits; every retry waits twice as long as the last."""

_COMMAND = "deviceInfo"


def create_transport(hass: HomeAssistant, data: Mapping[str, Any]) -> Transport:
    """The transport a config entry's data describes, not yet connected.

    A direct transport (``AiomqttTransport``) must be ``connect()``-ed and ``close()``-d
    by the caller; Home Assistant's MQTT needs neither.
    """
    if data[CONF_TRANSPORT] == TRANSPORT_HA_MQTT:
        # Imported here: Home Assistant's MQTT integration (and paho) is only needed,
        # and may only be installed, when it is the chosen transport.
        from .mqtt_transport import HassMqttTransport

        return HassMqttTransport(hass)

    return create_direct_transport(data)


def direct_client_id(entry_id: str) -> str:
    """The MQTT client id of a direct entry's connection: stable, for its persistent session."""
    return f"ha-smartpbx-{entry_id}"


def create_direct_transport(
    data: Mapping[str, Any], *, client_id: str | None = None
) -> AiomqttTransport:
    """The aiomqtt transport to the broker a direct entry names, not yet connected.

    ``client_id`` should be stable for a config entry (persistent session); None gives a
    random id with a clean session, right for a one-off probe.
    """
    tls = bool(data.get(CONF_TLS, False))
    return AiomqttTransport(
        data[CONF_HOST],
        data.get(CONF_PORT, DEFAULT_PORT),
        username=data.get(CONF_USERNAME) or None,
        password=data.get(CONF_PASSWORD) or None,
        tls=tls,
        # "Verify the certificate" only means something with TLS on; off must not turn TLS on.
        tls_insecure=tls and not data.get(CONF_VERIFY_SSL, True),
        client_id=client_id,
    )


async def async_discard_direct_session(data: Mapping[str, Any], entry_id: str) -> None:
    """Remove a direct entry's persistent session from its broker (best effort).

    For an entry that gives its broker connection up (removed, or reconfigured): else
    the broker keeps the session's subscription forever and queues the PBX's traffic
    for it. A broker that cannot be reached is only logged: nothing else can be done.
    """
    if data.get(CONF_TRANSPORT) == TRANSPORT_HA_MQTT:
        return
    transport = create_direct_transport(data, client_id=direct_client_id(entry_id))
    try:
        await transport.discard_session(timeout=PROBE_TIMEOUT)
    except PbxError as err:
        LOGGER.warning("Could not remove the MQTT session of the removed connection: %s", err)


@asynccontextmanager
async def _async_open_transport(
    hass: HomeAssistant, data: Mapping[str, Any], connect_timeout: float
) -> AsyncIterator[Transport]:
    """A connected transport for the duration of the block, closed however it ends."""
    if data[CONF_TRANSPORT] == TRANSPORT_HA_MQTT:
        from homeassistant.components import mqtt

        # Waits while Home Assistant's MQTT entry is still being set up.
        try:
            async with asyncio.timeout(connect_timeout):
                available = await mqtt.async_wait_for_mqtt_client(hass)
        except TimeoutError:
            available = False
        transport = create_transport(hass, data)
        if not available or not transport.connected:
            raise PbxConnectionError("Home Assistant's MQTT client is not connected")
        yield transport
        return

    direct = create_direct_transport(data)
    try:
        # Raises PbxAuthError / PbxConnectionError, also when the broker stays silent.
        await direct.connect(timeout=connect_timeout)
        yield direct
    finally:
        await direct.close()


async def async_check_broker(
    hass: HomeAssistant, data: Mapping[str, Any], *, probe_timeout: float | None = None
) -> None:
    """Connect to the broker ``data`` describes and disconnect again.

    Raises PbxAuthError when the broker refuses the credentials and PbxConnectionError
    when it cannot be reached.
    """
    async with _async_open_transport(
        hass, data, PROBE_TIMEOUT if probe_timeout is None else probe_timeout
    ):
        pass


async def async_probe_pbx(
    hass: HomeAssistant, data: Mapping[str, Any], *, probe_timeout: float | None = None
) -> DeviceInfo:
    """Ask the PBX that ``data`` (config entry data) points at for its device info.

    ``probe_timeout`` (default :data:`PROBE_TIMEOUT`) bounds the broker connection and the
    wait for the PBX together. Raises, from ``pbx.errors``:

    - PbxInvalidArgumentError: the token cannot be a topic level (nothing was sent);
    - PbxAuthError: the broker refused the credentials;
    - PbxConnectionError, PbxNotConnectedError: the broker (or Home Assistant's MQTT)
      cannot be reached;
    - PbxTimeoutError: the broker works but no PBX answered on that token in time.
    """
    token = validate_token(data[CONF_TOKEN])
    total = PROBE_TIMEOUT if probe_timeout is None else probe_timeout
    async with _async_open_transport(hass, data, total) as transport:
        client = SmartPbxClient(transport, token, timeout=total)
        try:
            await client.start()
            return await async_ask_device_info(client, within=total)
        finally:
            await client.stop()


async def async_ask_device_info(client: SmartPbxClient, *, within: float) -> DeviceInfo:
    """Ask for deviceInfo with a short wait, then twice as long each time, ``within`` s in all.

    Home Assistant's MQTT client sends subscriptions in batches a moment after they are
    requested, so the reply to a command published right after subscribing can reach the
    broker before our subscription does and be dropped. Asking again with a growing wait
    covers that race and a PBX that answers slowly, without ever abandoning a PBX that is
    consistently slower than the first wait. Raises PbxTimeoutError after ``within``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    attempt = PROBE_FIRST_ATTEMPT
    while (remaining := deadline - loop.time()) > 0:
        try:
            return await client.device_info(timeout=min(attempt, remaining))
        except PbxTimeoutError:
            attempt *= 2
    raise PbxTimeoutError(_COMMAND, within)

"""The Smart PBX integration: a PBX whose whole API runs over MQTT."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryError,
    ConfigEntryNotReady,
)
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from . import events, services
from .call_log import CallLog
from .caller_names import CallerNames
from .const import (
    BROKER_CONNECT_TIMEOUT,
    CONF_TOKEN,
    CONF_TRANSPORT,
    DEFAULT_PORT,
    DOMAIN,
    LOGGER,
    MAX_PENDING_COMMANDS,
    PROBED_TOKENS,
    TRANSPORT_HA_MQTT,
)
from .coordinator import (
    SmartPbxConferenceCoordinator,
    SmartPbxConfigEntry,
    SmartPbxData,
    SmartPbxLiveCallCoordinator,
    SmartPbxQueueCoordinator,
    SmartPbxSystemCoordinator,
)
from .entity import DeviceSync, device_still_present, pbx_device_info
from .events import EventIngress
from .identifiers import pbx_identifier
from .issues import (
    PbxSilenceWatch,
    async_create_mqtt_issue,
    async_delete_issues,
    async_delete_mqtt_issue,
)
from .pbx.aiomqtt_transport import AiomqttTransport
from .pbx.client import SmartPbxClient
from .pbx.errors import PbxAuthError, PbxConnectionError, PbxError, PbxTimeoutError
from .pbx.models import (
    CallRecord,
    CallStatusEvent,
    DeviceStatusEvent,
    ExtensionStatusEvent,
    HangupEvent,
    InviteEvent,
    PbxEvent,
)
from .pbx.transport import Transport
from .probe import async_discard_direct_session, direct_client_id

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions (once, for every PBX)."""
    services.async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> bool:
    """Connect to the PBX, fetch everything once and set the platforms up.

    Everything acquired is released through ``entry.async_on_unload``, which runs both
    on unload and when setup fails half-way (callbacks run last-registered first).
    Options an older version saved (poll interval, command timeout) are ignored.
    """
    transport = await _async_create_transport(hass, entry)
    client = SmartPbxClient(transport, entry.data[CONF_TOKEN], max_pending=MAX_PENDING_COMMANDS)
    system = SmartPbxSystemCoordinator(hass, entry, client)
    queues = SmartPbxQueueCoordinator(hass, entry, client)
    conferences = SmartPbxConferenceCoordinator(hass, entry, client)
    live_calls = SmartPbxLiveCallCoordinator(hass, entry, client)
    caller_names = CallerNames(hass, entry, system)
    await caller_names.async_load()
    entry.async_on_unload(caller_names.async_start())
    call_log = CallLog(hass, caller_names)
    # Listening before connecting: a persistent session's queued messages arrive right
    # after CONNACK, before anything below runs (see pbx/redelivery.py).
    ingress = await EventIngress.async_load(hass, entry.entry_id)
    entry.async_on_unload(ingress.async_save)
    entry.async_on_unload(client.add_event_listener(ingress.handle))
    entry.async_on_unload(ingress.add_consumer(_event_handler(system, live_calls, call_log)))
    try:
        await client.start()
    except PbxError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="pbx_not_connected"
        ) from err
    entry.async_on_unload(client.stop)
    await _async_connect_transport(hass, entry, transport)

    silence = PbxSilenceWatch(hass, entry)
    # The device info answer is the proof the PBX is there: without it nothing else.
    try:
        await system.async_config_entry_first_refresh()
    except ConfigEntryNotReady as err:
        if client.connected and _caused_by(err, PbxTimeoutError):
            silence.async_not_answering(wait=False)
        raise
    silence.async_answered()
    entry.async_on_unload(silence.async_pause)
    serial = system.data.device_info.serial
    if entry.unique_id is not None and serial != entry.unique_id:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="serial_mismatch",
            translation_placeholders={"expected": entry.unique_id, "actual": serial},
        )

    for coordinator in (queues, conferences, live_calls):
        await coordinator.async_config_entry_first_refresh()

    entry.async_on_unload(call_log.async_start())

    pbx_device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **pbx_device_info(system.data.device_info)
    )
    entry.runtime_data = data = SmartPbxData(
        client=client,
        transport=transport,
        serial=serial,
        system=system,
        queues=queues,
        conferences=conferences,
        live_calls=live_calls,
        call_log=call_log,
        caller_names=caller_names,
        pbx_device_id=pbx_device.id,
        connected=client.connected,
        events=ingress,
    )

    entry.async_on_unload(ingress.add_consumer(_device_status_handler(entry, data)))
    entry.async_on_unload(client.add_connection_listener(_connection_handler(entry, data)))
    entry.async_on_unload(system.async_add_listener(_silence_handler(data, silence)))
    entry.async_on_unload(system.async_add_listener(_answer_handler(entry, data)))

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # After the entities: what arrived during set-up reaches the bus and them too.
    entry.async_on_unload(events.async_setup_events(hass, entry))
    ingress.started()

    # Also notices devices that vanished while Home Assistant was not running.
    DeviceSync(hass, entry).async_start()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> bool:
    """Unload the platforms; the client and transport close via async_on_unload."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> None:
    """Drop the entry's repair issues (and what they remember) with the entry.

    Discovery may ask about any token again: the removed PBX may publish on. A direct
    entry's persistent session goes from its broker too.
    """
    async_delete_issues(hass, entry.entry_id)
    hass.data.pop(PROBED_TOKENS, None)
    await EventIngress.async_remove_saved(hass, entry.entry_id)
    await async_discard_direct_session(entry.data, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: SmartPbxConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let a user delete a device the PBX no longer has; never the PBX or a present one.

    While the entry is not loaded nobody knows what the PBX lists: any device but the
    PBX may go (one the PBX still lists comes back at the next setup).
    """
    if entry.state is not ConfigEntryState.LOADED:
        return entry.unique_id is None or pbx_identifier(entry.unique_id) not in device.identifiers
    data = entry.runtime_data
    if pbx_identifier(data.serial) in device.identifiers:
        return False
    return not device_still_present(data, device)


async def _async_create_transport(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> Transport:
    """Home Assistant's own MQTT connection, or a direct one to the PBX's broker (not yet
    connected: see :func:`_async_connect_transport`)."""
    if entry.data[CONF_TRANSPORT] == TRANSPORT_HA_MQTT:
        from homeassistant.components import mqtt

        from .mqtt_transport import HassMqttTransport

        if not await mqtt.async_wait_for_mqtt_client(hass):
            # Setup retries by itself; the issue tells the user what it is waiting for.
            async_create_mqtt_issue(hass, entry)
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN, translation_key="mqtt_not_available"
            )
        async_delete_mqtt_issue(hass, entry.entry_id)
        return HassMqttTransport(hass)

    return AiomqttTransport.from_settings(
        entry.data,
        # Stable across restarts, so the broker resumes the persistent session and keeps
        # what the PBX published while Home Assistant was away.
        client_id=direct_client_id(entry.entry_id),
    )


async def _async_connect_transport(
    hass: HomeAssistant, entry: SmartPbxConfigEntry, transport: Transport
) -> None:
    """Connect our own broker connection (Home Assistant's needs nothing).

    Credentials refused at a later reconnect start the reauth flow, once.
    """
    if not isinstance(transport, AiomqttTransport):
        return
    host: str = entry.data[CONF_HOST]
    port: int = entry.data.get(CONF_PORT, DEFAULT_PORT)
    try:
        await transport.connect(timeout=BROKER_CONNECT_TIMEOUT)
    except PbxAuthError as err:
        await transport.close()
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="broker_auth_failed",
            translation_placeholders={"host": host, "port": str(port)},
        ) from err
    except PbxConnectionError as err:
        await transport.close()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="broker_unreachable",
            translation_placeholders={"host": host, "port": str(port)},
        ) from err
    entry.async_on_unload(transport.close)

    @callback
    def _credentials_refused(err: PbxAuthError) -> None:
        # The transport stopped reconnecting (retrying cannot help); the user is asked
        # for new credentials, and the reauth flow's reload connects again.
        LOGGER.warning("The MQTT broker at %s:%s refused the credentials: %s", host, port, err)
        entry.async_start_reauth(hass)

    entry.async_on_unload(transport.add_auth_failure_listener(_credentials_refused))


def _caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is among the causes of ``err`` (or is ``err``)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__
    return False


def _event_handler(
    system: SmartPbxSystemCoordinator,
    live_calls: SmartPbxLiveCallCoordinator,
    call_log: CallLog,
) -> Callable[[PbxEvent], None]:
    """Route events to the coordinators' data and the call log (no polling here).

    In place before the broker connection: events arriving before the first poll change
    nothing the poll does not bring (newer) anyway, those during it win over it.
    """

    @callback
    def handle(event: PbxEvent) -> None:
        if isinstance(event, ExtensionStatusEvent):
            system.async_handle_extension_status(event)
            live_calls.async_schedule_refresh()
        elif isinstance(event, CallStatusEvent):
            live_calls.async_handle_call_status(event)
        elif isinstance(event, HangupEvent):
            live_calls.async_handle_hangup(event)
        elif isinstance(event, InviteEvent):
            live_calls.async_schedule_refresh()
        elif isinstance(event, CallRecord):
            call_log.async_add_record(event)
            live_calls.async_schedule_refresh()

    return handle


def _device_status_handler(
    entry: SmartPbxConfigEntry, data: SmartPbxData
) -> Callable[[PbxEvent], None]:
    """The PBX's word on its status topic (online/offline) drives availability at once.

    A consumer of its own because it needs the runtime data; the ingress replays what
    arrived before it was added.
    """

    @callback
    def handle(event: PbxEvent) -> None:
        if (
            isinstance(event, DeviceStatusEvent)
            and event.online is not None
            and event.online != data.pbx_online
        ):
            data.pbx_online = event.online
            _async_health_changed(entry, data, recovered=event.online)

    return handle


def _connection_handler(entry: SmartPbxConfigEntry, data: SmartPbxData) -> Callable[[bool], None]:
    """Tell every entity when the broker connection goes or comes back; catch up after.

    Entities derive their availability from the state reported here (entity.py): the
    transport's ``connected`` property may lag behind its report. Both transports log the
    loss and the return once each already.
    """

    @callback
    def handle(connected: bool) -> None:
        if connected == data.connected:
            return
        data.connected = connected
        _async_health_changed(entry, data, recovered=connected)

    return handle


@callback
def _async_health_changed(
    entry: SmartPbxConfigEntry, data: SmartPbxData, *, recovered: bool
) -> None:
    """The broker connection or the PBX's own status changed: every entity re-reads it.

    When either comes back, every kind of data is fetched again at once: also while the
    PBX's last word was "offline" (a broker that restarted sends the PBX's will, and its
    "online" may precede our own reconnection), since an answer proves it is back.
    """
    for coordinator in data.coordinators:
        coordinator.async_update_listeners()
        if recovered and data.connected:
            # What changed during the outage, without waiting for the next poll.
            entry.async_create_background_task(
                coordinator.hass,
                coordinator.async_refresh(),
                f"{coordinator.name} refresh after reconnect",
            )


def _answer_handler(entry: SmartPbxConfigEntry, data: SmartPbxData) -> Callable[[], None]:
    """A PBX that answers a poll is online, whatever its status topic said last.

    Firmware whose will says "offline" may come back without saying "online" (nobody has
    seen a birth message in the field): its answer to the system poll is the proof.
    """

    polls_at_offline: int | None = None

    @callback
    def handle() -> None:
        nonlocal polls_at_offline
        if data.pbx_online:
            polls_at_offline = None
        elif polls_at_offline is None:
            # The first call after "offline" is that notice itself: a poll sent before
            # it (even one answered after it) proves nothing.
            polls_at_offline = data.system.poll_count
        elif data.system.poll_count > polls_at_offline and data.system.last_update_success:
            data.pbx_online = True
            _async_health_changed(entry, data, recovered=True)

    return handle


def _silence_handler(data: SmartPbxData, silence: PbxSilenceWatch) -> Callable[[], None]:
    """The repair issue follows the system poll: it is the PBX's health check.

    While the broker is connected, a failed system poll means the PBX does not answer
    (issues.py raises the issue once that lasts); without the broker nobody can tell.
    """

    @callback
    def handle() -> None:
        if not data.connected:
            silence.async_pause()
        elif data.system.last_update_success:
            silence.async_answered()
        else:
            silence.async_not_answering(wait=True)

    return handle

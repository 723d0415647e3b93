"""The Smart PBX integration: a PBX whose whole API runs over MQTT."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from . import events, services
from .call_log import CallLog
from .caller_names import CallerNames
from .config_flow import async_discard_direct_session, direct_client_id
from .const import (
    BROKER_CONNECT_TIMEOUT,
    CONF_TOKEN,
    CONF_TRANSPORT,
    DEFAULT_PORT,
    DOMAIN,
    ISSUE_MQTT_NOT_AVAILABLE,
    LOGGER,
    MAX_PENDING_COMMANDS,
    PROBED_TOKENS,
    TRANSPORT_HA_MQTT,
)
from .coordinator import (
    SmartPbxConfigEntry,
    SmartPbxData,
    SmartPbxListCoordinator,
    SmartPbxLiveCallCoordinator,
    SmartPbxSystemCoordinator,
)
from .entity import async_sync_devices, device_still_present, pbx_device_info
from .identifiers import pbx_identifier
from .issues import PbxSilenceWatch, async_create_issue, async_delete_issue, async_delete_issues
from .pbx.aiomqtt_transport import AiomqttTransport
from .pbx.client import SmartPbxClient
from .pbx.errors import PbxAuthError, PbxConnectionError, PbxError, PbxTimeoutError
from .pbx.models import CallRecord, DeviceStatusEvent, ExtensionStatusEvent, PbxEvent
from .pbx.transport import Transport

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

    ``entry.async_on_unload`` releases everything, also when setup fails half-way.
    """
    transport = await _async_create_transport(hass, entry)
    client = SmartPbxClient(transport, entry.data[CONF_TOKEN], max_pending=MAX_PENDING_COMMANDS)
    system = SmartPbxSystemCoordinator(hass, entry, client)
    queues = SmartPbxListCoordinator(hass, entry, "queues", client.queue_list, client.queue_status)
    conferences = SmartPbxListCoordinator(
        hass, entry, "conferences", client.conf_list, client.conf_status
    )
    live_calls = SmartPbxLiveCallCoordinator(hass, entry, client)
    caller_names = CallerNames(hass, entry, system)
    await caller_names.async_load()
    call_log = CallLog(hass, caller_names)
    # Listening before connecting: a persistent session's queued messages arrive right
    # after CONNACK (see pbx/redelivery.py). Events before the first poll change nothing it does
    # not bring anyway; those during it win over it.
    ingress = await events.EventIngress.async_load(hass, entry.entry_id)
    entry.async_on_unload(ingress.async_save)
    entry.async_on_unload(client.add_event_listener(ingress.handle))

    @callback
    def route(event: PbxEvent) -> None:
        if isinstance(event, ExtensionStatusEvent):
            system.async_handle_extension_status(event)
        elif isinstance(event, CallRecord):
            call_log.async_add_record(event)
        live_calls.async_handle_event(event)

    entry.async_on_unload(ingress.add_consumer(route))
    try:
        await client.start()
    except PbxError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="pbx_not_connected"
        ) from err
    entry.async_on_unload(client.stop)
    await _async_connect_transport(hass, entry, transport)

    silence = PbxSilenceWatch(hass, entry)
    entry.async_on_unload(silence.async_pause)  # also when setup fails
    # The device info answer is the proof the PBX is there: without it nothing else.
    try:
        await system.async_config_entry_first_refresh()
    except ConfigEntryNotReady:
        # The broker is there, the PBX silent (the UpdateFailed's cause: translated_errors).
        failure = system.last_exception
        if client.connected and failure and isinstance(failure.__cause__, PbxTimeoutError):
            silence.async_not_answering()
        raise
    silence.async_answered()
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

    health = _Health(data, silence)
    # Before the consumer: its replay of the set-up's events may hold an "offline", whose
    # notice is what the next answered poll is counted from.
    entry.async_on_unload(system.async_add_listener(health.async_system_updated))
    entry.async_on_unload(ingress.add_consumer(health.async_handle_event))
    entry.async_on_unload(client.add_connection_listener(health.async_set_connected))

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # After the entities: what arrived during set-up reaches the bus and them too.
    entry.async_on_unload(events.async_setup_events(hass, entry))
    ingress.started()

    # Also notices devices that vanished while Home Assistant was not running.
    async_sync_devices(hass, entry)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> bool:
    """Unload the platforms; the client and transport close via async_on_unload."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> None:
    """Drop the entry's repair issues, saved events and direct broker session.

    Discovery may ask about any token again: the removed PBX may publish on."""
    async_delete_issues(hass, entry.entry_id)
    hass.data.pop(PROBED_TOKENS, None)
    await events.EventIngress.async_remove_saved(hass, entry.entry_id)
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
    return not device_still_present(entry.runtime_data, device)


async def _async_create_transport(hass: HomeAssistant, entry: SmartPbxConfigEntry) -> Transport:
    """Home Assistant's own MQTT connection, or a direct one (connected later)."""
    if entry.data[CONF_TRANSPORT] == TRANSPORT_HA_MQTT:
        from homeassistant.components import mqtt

        from .mqtt_transport import HassMqttTransport

        if not await mqtt.async_wait_for_mqtt_client(hass):
            # Setup retries by itself; the issue tells the user what it is waiting for.
            async_create_issue(hass, ISSUE_MQTT_NOT_AVAILABLE, entry)
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN, translation_key="mqtt_not_available"
            )
        async_delete_issue(hass, ISSUE_MQTT_NOT_AVAILABLE, entry.entry_id)
        return HassMqttTransport(hass)

    # A stable client id: the broker keeps what the PBX published while we were away.
    return AiomqttTransport.from_settings(entry.data, client_id=direct_client_id(entry.entry_id))


async def _async_connect_transport(
    hass: HomeAssistant, entry: SmartPbxConfigEntry, transport: Transport
) -> None:
    """Connect our own broker connection (Home Assistant's needs nothing)."""
    if not isinstance(transport, AiomqttTransport):
        return
    host, port = entry.data[CONF_HOST], entry.data.get(CONF_PORT, DEFAULT_PORT)
    entry.async_on_unload(transport.close)  # also when connecting fails
    try:
        await transport.connect(timeout=BROKER_CONNECT_TIMEOUT)
    except PbxConnectionError as err:
        refused = isinstance(err, PbxAuthError)
        raise (ConfigEntryAuthFailed if refused else ConfigEntryNotReady)(
            translation_domain=DOMAIN,
            translation_key="broker_auth_failed" if refused else "broker_unreachable",
            translation_placeholders={"host": host, "port": str(port)},
        ) from err

    @callback
    def _credentials_refused(err: PbxAuthError) -> None:
        # The transport stopped reconnecting; the reauth flow's reload connects again.
        LOGGER.warning("The MQTT broker at %s:%s refused the credentials: %s", host, port, err)
        entry.async_start_reauth(hass)

    entry.async_on_unload(transport.add_auth_failure_listener(_credentials_refused))


@dataclass(slots=True)
class _Health:
    """The broker connection, the PBX's status topic and its answers to the system poll:
    what they mean for availability, polls and the repair issue, decided here alone."""

    data: SmartPbxData
    silence: PbxSilenceWatch
    polls_at_offline: int | None = None

    @callback
    def async_set_connected(self, connected: bool) -> None:
        """The transport's report (both transports log the loss and the return)."""
        if connected != self.data.connected:
            self.data.connected = connected
            self._async_changed(recovered=connected)

    @callback
    def async_handle_event(self, event: PbxEvent) -> None:
        """The PBX's word on its status topic counts at once."""
        if isinstance(event, DeviceStatusEvent) and (online := event.online) is not None:
            self._async_set_pbx_online(online)

    @callback
    def async_system_updated(self) -> None:
        """The system poll is the PBX's health check, while the broker is connected."""
        data, system = self.data, self.data.system
        if not data.connected:
            self.silence.async_pause()  # without the broker nobody can tell
        elif system.last_update_success:
            self.silence.async_answered()
        else:
            self.silence.async_not_answering()
        # Firmware whose will said "offline" may come back without saying "online"
        # (nobody has seen a birth message): a poll it answers is the proof.
        if data.pbx_online:
            self.polls_at_offline = None
        elif self.polls_at_offline is None:
            # This call is the "offline" notice itself: polls sent before it prove nothing.
            self.polls_at_offline = system.poll_count
        elif system.poll_count > self.polls_at_offline and system.last_update_success:
            self._async_set_pbx_online(True)

    @callback
    def _async_set_pbx_online(self, online: bool) -> None:
        if online != self.data.pbx_online:
            self.data.pbx_online = online
            self._async_changed(recovered=online)

    @callback
    def _async_changed(self, *, recovered: bool) -> None:
        """Every entity re-reads its availability; on a recovery all data is fetched again.

        Also while the PBX's last word was "offline": a restarted broker sends the PBX's
        will, and its "online" may precede our own reconnection; an answer proves it back.
        """
        for coordinator in self.data.coordinators:
            coordinator.async_update_listeners()
            if recovered and self.data.connected:
                coordinator.config_entry.async_create_background_task(
                    coordinator.hass,
                    coordinator.async_refresh(),
                    f"{coordinator.name} refresh after reconnect",
                )

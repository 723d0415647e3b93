"""Config flow: nothing is saved until the PBX answers; its serial is the unique id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, suppress
from typing import Any, Final

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorMode,
    TextSelector,
    TextSelectorType,
)
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
import voluptuous as vol

from .caller_names import (
    CONF_PHONEBOOK,
    CONF_PHONEBOOK_FILE,
    PLAN_FIELDS,
    PhonebookInputError,
    async_read_phonebook,
    plan_options,
)
from .const import (
    CONF_TLS,
    CONF_TOKEN,
    CONF_TRANSPORT,
    CONF_VERIFY_SSL,
    DEFAULT_PORT,
    DOMAIN,
    LOGGER,
    PROBED_TOKENS,
    TRANSPORT_DIRECT,
    TRANSPORT_HA_MQTT,
)
from .pbx.aiomqtt_transport import AiomqttTransport
from .pbx.client import SmartPbxClient
from .pbx.errors import (
    PbxAuthError,
    PbxConnectionError,
    PbxError,
    PbxInvalidArgumentError,
    PbxNotConnectedError,
    PbxTimeoutError,
)
from .pbx.models import DeviceInfo
from .pbx.phonebook import DialPlan
from .pbx.transport import Transport
from .pbx.validation import token_of_publication, validate_token

PROBE_TIMEOUT: Final = 10.0
"""Seconds the whole probe (broker connection included) may take. Tests shorten it."""

# Typed Any: Home Assistant's signatures name probatio's Schema, which type checkers do
# not equate with the voluptuous name imported here (aliased at run time).
_CREDENTIALS_SCHEMA: Final[Any] = vol.Schema(
    {
        vol.Optional(CONF_USERNAME): TextSelector({"autocomplete": "username"}),
        vol.Optional(CONF_PASSWORD): TextSelector(
            {"type": TextSelectorType.PASSWORD, "autocomplete": "current-password"}
        ),
    }
)
_DIRECT_SCHEMA: Final[Any] = vol.Schema(
    {
        vol.Required(CONF_HOST): TextSelector({"autocomplete": "off"}),
        vol.Required(CONF_PORT, default=DEFAULT_PORT): NumberSelector(
            {"min": 1, "max": 65535, "step": 1, "mode": NumberSelectorMode.BOX}
        ),
        **_CREDENTIALS_SCHEMA.schema,
        vol.Required(CONF_TLS, default=False): BooleanSelector(),
        vol.Required(CONF_VERIFY_SSL, default=True): BooleanSelector(),
    }
)
_TOKEN_SCHEMA: Final[Any] = vol.Schema(
    {vol.Required(CONF_TOKEN): TextSelector({"autocomplete": "off"})}
)
# Optional fields with suggested values, not defaults, so that they can be emptied: ""
# is a valid trunk prefix (Italy, Spain...).
_PHONEBOOK_SCHEMA: Final[Any] = vol.Schema(
    {
        vol.Optional(CONF_PHONEBOOK): TextSelector({"multiline": True}),
        vol.Optional(CONF_PHONEBOOK_FILE): TextSelector(),
        **{vol.Optional(key): TextSelector() for key in PLAN_FIELDS},
    }
)


def _credentials(form: Mapping[str, Any]) -> dict[str, Any]:
    """Username and password from a form; blank ones become None (anonymous)."""
    return {key: form.get(key) or None for key in (CONF_USERNAME, CONF_PASSWORD)}


def _broker_data(form: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **form,
        CONF_TRANSPORT: TRANSPORT_DIRECT,
        CONF_HOST: form[CONF_HOST].strip(),
        CONF_PORT: int(form[CONF_PORT]),
        **_credentials(form),
    }


def direct_client_id(entry_id: str) -> str:
    """The MQTT client id of a direct entry's connection: stable, for its persistent session."""
    return f"ha-smartpbx-{entry_id}"


async def async_discard_direct_session(data: Mapping[str, Any], entry_id: str) -> None:
    """Drop a direct entry's broker session (best effort); else the broker queues for it forever."""
    if data.get(CONF_TRANSPORT) == TRANSPORT_HA_MQTT:
        return
    transport = AiomqttTransport.from_settings(data, client_id=direct_client_id(entry_id))
    try:
        await transport.discard_session(timeout=PROBE_TIMEOUT)
    except PbxError as err:
        LOGGER.warning("Could not remove the MQTT session of the removed connection: %s", err)


async def async_probe(hass: HomeAssistant, data: Mapping[str, Any]) -> DeviceInfo | None:
    """Connect to the broker entry ``data`` names and, given a token, ask the PBX; close all."""
    token = validate_token(data[CONF_TOKEN]) if CONF_TOKEN in data else None
    async with AsyncExitStack() as stack:
        if data[CONF_TRANSPORT] == TRANSPORT_HA_MQTT:
            # Imported here: Home Assistant's MQTT integration (and paho) is only needed,
            # and may only be installed, when it is the chosen transport.
            from homeassistant.components import mqtt

            from .mqtt_transport import HassMqttTransport

            # Waits while Home Assistant's MQTT entry is still being set up.
            available = False
            with suppress(TimeoutError):
                async with asyncio.timeout(PROBE_TIMEOUT):
                    available = await mqtt.async_wait_for_mqtt_client(hass)
            if not available or not mqtt.is_connected(hass):
                raise PbxConnectionError("Home Assistant's MQTT client is not connected")
            transport: Transport = HassMqttTransport(hass)
        else:
            transport = direct = AiomqttTransport.from_settings(data)
            stack.push_async_callback(direct.close)
            await direct.connect(timeout=PROBE_TIMEOUT)
        if token is None:
            return None
        client = SmartPbxClient(transport, token, timeout=PROBE_TIMEOUT)
        stack.push_async_callback(client.stop)
        await client.start()
        return await client.device_info_within(PROBE_TIMEOUT)


async def _async_error_of[T](check: Awaitable[T]) -> tuple[T | None, str | None]:
    """Run a broker check or probe; return its result, or the form error it maps to."""
    try:
        return await check, None
    except PbxInvalidArgumentError as err:
        # Anything but the token (an empty host) is a broker the flow cannot reach.
        return None, "invalid_token" if err.field == "token" else "cannot_connect"
    except PbxAuthError:
        return None, "invalid_auth"
    except (PbxConnectionError, PbxNotConnectedError):
        return None, "cannot_connect"
    except PbxTimeoutError:
        return None, "no_response"
    except Exception:
        LOGGER.exception("Unexpected error while contacting the PBX")
        return None, "unknown"


class SmartPbxConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a Smart PBX: choose a broker, enter the token, let the PBX answer."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        """Entry data gathered so far (all but the token until the token step)."""
        self._discovered_token: str | None = None
        self._placeholders: dict[str, str] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> SmartPbxOptionsFlow:
        return SmartPbxOptionsFlow()

    def is_matching(self, other_flow: SmartPbxConfigFlow) -> bool:
        """Another discovery flow for the same token: the PBX publishes often."""
        token = self._discovered_token
        return token is not None and other_flow._discovered_token == token

    async def _async_probe_step(
        self,
        step_id: str,
        schema: Any,
        user_input: dict[str, Any] | None,
        data_of: Callable[[dict[str, Any]], dict[str, Any]],
        suggested: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ConfigFlowResult:
        """Probe with the data the filled-in form gives, or show it (again, with why)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = data_of(user_input)
            info, error = await _async_error_of(async_probe(self.hass, data))
            if error is None:
                return await self._async_after_probe(info, data)
            errors["base"] = error
        suggested = suggested or user_input
        if suggested is None and self.source == SOURCE_RECONFIGURE:
            entry_data = self._get_reconfigure_entry().data
            suggested = {key: value for key, value in entry_data.items() if value is not None}
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            **kwargs,
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """How to reach the PBX: Home Assistant's MQTT (when loaded) or a broker."""
        if not self.hass.config_entries.async_loaded_entries("mqtt"):
            # A menu with one choice would only be an extra click.
            return await self.async_step_direct()
        # Also the reconfigure step: its menu has that step id.
        return self.async_show_menu(
            step_id=self.source, menu_options=[TRANSPORT_HA_MQTT, TRANSPORT_DIRECT]
        )

    async_step_reconfigure = async_step_user

    async def async_step_ha_mqtt(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Use Home Assistant's MQTT integration: only the token is needed."""
        self._data = {CONF_TRANSPORT: TRANSPORT_HA_MQTT}
        return await self.async_step_token()

    async def async_step_direct(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The broker the PBX's API Manager page points at."""
        return await self._async_probe_step("direct", _DIRECT_SCHEMA, user_input, _broker_data)

    async def async_step_token(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The token from the PBX's API Manager page; the PBX must answer on it."""
        return await self._async_probe_step(
            "token",
            _TOKEN_SCHEMA,
            user_input,
            lambda form: {**self._data, CONF_TOKEN: form[CONF_TOKEN].strip()},
        )

    async def _async_after_probe(
        self, info: DeviceInfo | None, data: dict[str, Any]
    ) -> ConfigFlowResult:
        """After a broker check the token step; once the PBX answered, the entry: created,
        or (reconfigure, reauth) updated if the same PBX answered."""
        if info is None:
            self._data = data
            return await self.async_step_token()
        await self.async_set_unique_id(info.serial, raise_on_progress=False)
        if self.source == SOURCE_USER:
            # Beside a discovery flow of the same PBX, the first to finish wins.
            self._abort_if_unique_id_configured()
            return self.async_create_entry(title=info.display_name, data=data)
        self._abort_if_unique_id_mismatch(
            description_placeholders={"name": info.display_name, "serial": info.serial}
        )
        if self.source != SOURCE_RECONFIGURE:
            return self.async_update_reload_and_abort(self._get_reauth_entry(), data=data)
        entry = self._get_reconfigure_entry()
        if entry.data[CONF_TRANSPORT] == TRANSPORT_DIRECT:
            # The old connection's persistent session would stay on its broker, subscribed
            # and queueing; it goes while the entry is down (the reload sets it up again).
            await self.hass.config_entries.async_unload(entry.entry_id)
            await async_discard_direct_session(entry.data, entry.entry_id)
        return self.async_update_reload_and_abort(entry, data=data)

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """A PBX published an event or CDR through Home Assistant's MQTT."""
        if (token := token_of_publication(discovery_info.topic)) is None:
            return self.async_abort(reason="invalid_discovery_info")
        # Cheap checks first: every event the PBX publishes starts a new flow.
        self._async_abort_entries_match({CONF_TOKEN: token})
        self._discovered_token = token
        if self.hass.config_entries.flow.async_has_matching_flow(self):
            return self.async_abort(reason="already_in_progress")
        # Probed once per token and run: the answer (ignored, set up by hand, silent)
        # does not change with the next event, and a busy PBX publishes many.
        probed = self.hass.data.setdefault(PROBED_TOKENS, set())
        if token in probed:
            return self.async_abort(reason="already_discovered")
        probed.add(token)

        self._data = {CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: token}
        info, error = await _async_error_of(async_probe(self.hass, self._data))
        if info is None:
            return self.async_abort(reason=error or "unknown")
        existing = await self.async_set_unique_id(info.serial)
        if existing is not None and existing.data.get(CONF_TRANSPORT) == TRANSPORT_HA_MQTT:
            # A PBX has one token; answering on a new one means the old one is dead.
            self._abort_if_unique_id_configured(updates={CONF_TOKEN: token})
        self._abort_if_unique_id_configured()
        self.context["title_placeholders"] = {"name": info.display_name}
        self._placeholders = {
            "name": info.display_name,
            "serial": info.serial,
            "firmware": info.firmware,
        }
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(title=self._placeholders["name"], data=self._data)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="discovery_confirm", description_placeholders=self._placeholders
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        if entry_data[CONF_TRANSPORT] != TRANSPORT_DIRECT:
            # Home Assistant's MQTT integration owns its broker credentials.
            return self.async_abort(reason="reauth_ha_mqtt")
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the broker's username and password again."""
        entry = self._get_reauth_entry()
        return await self._async_probe_step(
            "reauth_confirm",
            _CREDENTIALS_SCHEMA,
            user_input,
            lambda form: {**entry.data, **_credentials(form)},
            {CONF_USERNAME: (user_input or entry.data).get(CONF_USERNAME)},
            description_placeholders={"host": entry.data[CONF_HOST]},
        )


class SmartPbxOptionsFlow(OptionsFlowWithReload):
    """The phonebook, saved once it reads without an error; the entry then reloads."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders = {"line": "", "content": "", "other_line": ""}
        if user_input is not None:
            options = {
                key: str(user_input.get(key, "")).strip()
                for key in (CONF_PHONEBOOK_FILE, *PLAN_FIELDS)
            }
            options[CONF_PHONEBOOK] = user_input.get(CONF_PHONEBOOK, "")
            try:
                plan = (await async_read_phonebook(self.hass, options)).plan
            except PhonebookInputError as err:
                # The form again, with what was typed and the line at fault.
                errors[err.field] = err.key
                placeholders.update(err.placeholders)
            else:
                # The plan as understood ("+49" is saved as "49").
                options.update(plan_options(plan))
                return self.async_create_entry(data=options)
        suggested = user_input or {
            **plan_options(DialPlan.suggested(self.hass.config.country)),
            **self.config_entry.options,
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(_PHONEBOOK_SCHEMA, suggested),
            errors=errors,
            description_placeholders={**placeholders, "config_dir": self.hass.config.config_dir},
        )

"""Config flow of the Smart PBX integration.

Nothing is saved until the PBX itself has answered ``deviceInfo``: its serial number is
the config entry's unique id, its device name the entry's title. The options hold the
phonebook (caller_names.py), saved only once it reads without an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
import re
from typing import Any, Final

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
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
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
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
from .pbx.errors import (
    PbxAuthError,
    PbxConnectionError,
    PbxInvalidArgumentError,
    PbxNotConnectedError,
    PbxTimeoutError,
)
from .pbx.models import DeviceInfo
from .pbx.phonebook import DialPlan
from .pbx.validation import validate_token
from .probe import async_check_broker, async_discard_direct_session, async_probe_pbx

MQTT_DOMAIN: Final = "mqtt"

# What the PBX publishes on, as the manifest's ``mqtt`` filters match it.
_DISCOVERY_TOPIC_RE: Final = re.compile(r"device/(?P<token>[^/]+)/api/v1\.0/(?:event|cdr)")

_BROKER_FIELDS: Final = (
    CONF_HOST,
    CONF_PORT,
    CONF_USERNAME,
    CONF_PASSWORD,
    CONF_TLS,
    CONF_VERIFY_SSL,
)

# Schemas are typed Any: Home Assistant's signatures name probatio's Schema, which type
# checkers do not equate with the voluptuous name imported here (aliased at run time).
_CREDENTIALS_SCHEMA: Final[Any] = vol.Schema(
    {
        vol.Optional(CONF_USERNAME): TextSelector(TextSelectorConfig(autocomplete="username")),
        vol.Optional(CONF_PASSWORD): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
        ),
    }
)

_DIRECT_SCHEMA: Final[Any] = vol.Schema(
    {
        vol.Required(CONF_HOST): TextSelector(TextSelectorConfig(autocomplete="off")),
        vol.Required(CONF_PORT, default=DEFAULT_PORT): NumberSelector(
            NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
        ),
        **_CREDENTIALS_SCHEMA.schema,
        vol.Required(CONF_TLS, default=False): BooleanSelector(),
        vol.Required(CONF_VERIFY_SSL, default=True): BooleanSelector(),
    }
)

# Optional fields: an emptied text field is left out of the input, and "" is a valid
# trunk prefix (Italy, Spain...). Suggested values, not defaults, so it can be emptied.
_PHONEBOOK_SCHEMA: Final[Any] = vol.Schema(
    {
        vol.Optional(CONF_PHONEBOOK): TextSelector(TextSelectorConfig(multiline=True)),
        vol.Optional(CONF_PHONEBOOK_FILE): TextSelector(),
        **{vol.Optional(key): TextSelector() for key in PLAN_FIELDS},
    }
)

_TOKEN_SCHEMA: Final[Any] = vol.Schema(
    {vol.Required(CONF_TOKEN): TextSelector(TextSelectorConfig(autocomplete="off"))}
)


def _ha_mqtt_loaded(hass: HomeAssistant) -> bool:
    """Whether Home Assistant's own MQTT integration is set up and loaded."""
    return bool(hass.config_entries.async_loaded_entries(MQTT_DOMAIN))


def _broker_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Direct-transport entry data from the broker form; blank credentials become None."""
    return {
        CONF_TRANSPORT: TRANSPORT_DIRECT,
        CONF_HOST: user_input[CONF_HOST].strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_USERNAME: user_input.get(CONF_USERNAME) or None,
        CONF_PASSWORD: user_input.get(CONF_PASSWORD) or None,
        CONF_TLS: user_input[CONF_TLS],
        CONF_VERIFY_SSL: user_input[CONF_VERIFY_SSL],
    }


def _title(info: DeviceInfo) -> str:
    return info.device_name or info.serial


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

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        self._connection: dict[str, Any] = {}
        """Transport settings chosen so far (everything but the token)."""
        self._discovered_token: str | None = None
        self._discovered_info: DeviceInfo | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> SmartPbxOptionsFlow:
        return SmartPbxOptionsFlow()

    def is_matching(self, other_flow: SmartPbxConfigFlow) -> bool:
        """Another discovery flow for the same token: the PBX publishes often."""
        return (
            self._discovered_token is not None
            and other_flow._discovered_token == self._discovered_token
        )

    # --- user and reconfigure: transport, then token ---

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """How to reach the PBX: Home Assistant's MQTT (when loaded) or a broker."""
        return await self._async_step_choose_transport("user")

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the broker or the token of a configured PBX."""
        return await self._async_step_choose_transport("reconfigure")

    async def _async_step_choose_transport(self, step_id: str) -> ConfigFlowResult:
        if _ha_mqtt_loaded(self.hass):
            return self.async_show_menu(
                step_id=step_id, menu_options=[TRANSPORT_HA_MQTT, TRANSPORT_DIRECT]
            )
        # A menu with one choice would only be an extra click.
        return await self.async_step_direct()

    async def async_step_ha_mqtt(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Use Home Assistant's MQTT integration: only the token is needed."""
        self._connection = {CONF_TRANSPORT: TRANSPORT_HA_MQTT}
        return await self.async_step_token()

    async def async_step_direct(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The broker the PBX's API Manager page points at."""
        errors: dict[str, str] = {}
        if user_input is not None:
            connection = _broker_data(user_input)
            _, error = await _async_error_of(async_check_broker(self.hass, connection))
            if error is None:
                self._connection = connection
                return await self.async_step_token()
            errors["base"] = error
        suggested: Mapping[str, Any] = user_input or {}
        if user_input is None and self.source == SOURCE_RECONFIGURE:
            entry_data = self._get_reconfigure_entry().data
            if entry_data[CONF_TRANSPORT] == TRANSPORT_DIRECT:
                suggested = {
                    key: entry_data[key]
                    for key in _BROKER_FIELDS
                    if entry_data.get(key) is not None
                }
        return self.async_show_form(
            step_id="direct",
            data_schema=self.add_suggested_values_to_schema(_DIRECT_SCHEMA, suggested),
            errors=errors,
        )

    async def async_step_token(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The token from the PBX's API Manager page; the PBX must answer on it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**self._connection, CONF_TOKEN: user_input[CONF_TOKEN].strip()}
            info, error = await _async_error_of(async_probe_pbx(self.hass, data))
            if info is not None:
                return await self._async_finish(info, data)
            errors["base"] = error or "unknown"
        suggested: Mapping[str, Any] = user_input or {}
        if user_input is None and self.source == SOURCE_RECONFIGURE:
            suggested = {CONF_TOKEN: self._get_reconfigure_entry().data[CONF_TOKEN]}
        return self.async_show_form(
            step_id="token",
            data_schema=self.add_suggested_values_to_schema(_TOKEN_SCHEMA, suggested),
            errors=errors,
        )

    async def _async_finish(self, info: DeviceInfo, data: dict[str, Any]) -> ConfigFlowResult:
        """Create the entry, or update the reconfigured one if it is the same PBX."""
        if self.source == SOURCE_RECONFIGURE:
            await self.async_set_unique_id(info.serial, raise_on_progress=False)
            self._abort_if_unique_id_mismatch(
                description_placeholders={"name": _title(info), "serial": info.serial}
            )
            entry = self._get_reconfigure_entry()
            if entry.data[CONF_TRANSPORT] == TRANSPORT_DIRECT:
                # The old connection's persistent session would stay on its broker,
                # subscribed and queueing; it goes while the entry is down (the reload
                # below sets it up again).
                await self.hass.config_entries.async_unload(entry.entry_id)
                await async_discard_direct_session(entry.data, entry.entry_id)
            return self.async_update_reload_and_abort(entry, data=data)
        # A user flow may run beside a discovery flow for the same PBX; whichever
        # finishes first wins and Home Assistant aborts the other.
        await self.async_set_unique_id(info.serial, raise_on_progress=False)
        self._abort_if_unique_id_configured()
        return self.async_create_entry(title=_title(info), data=data)

    # --- MQTT discovery ---

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """A PBX published an event or CDR through Home Assistant's MQTT."""
        match = _DISCOVERY_TOPIC_RE.fullmatch(discovery_info.topic)
        if match is None:
            return self.async_abort(reason="invalid_discovery_info")
        try:
            token = validate_token(match["token"])
        except PbxInvalidArgumentError:
            return self.async_abort(reason="invalid_discovery_info")
        # Cheap checks first: every event the PBX publishes starts a new flow.
        self._async_abort_entries_match({CONF_TOKEN: token})
        self._discovered_token = token
        if self.hass.config_entries.flow.async_has_matching_flow(self):
            # Our own translation: HA before 2026.4 has no translation_domain argument.
            return self.async_abort(reason="already_in_progress")
        # Probed once per token and run: the answer (ignored, set up by hand, silent)
        # does not change with the next event, and a busy PBX publishes many.
        probed = self.hass.data.setdefault(PROBED_TOKENS, set())
        if token in probed:
            return self.async_abort(reason="already_discovered")
        probed.add(token)

        data = {CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: token}
        info, error = await _async_error_of(async_probe_pbx(self.hass, data))
        if info is None:
            return self.async_abort(reason=error or "unknown")

        existing = await self.async_set_unique_id(info.serial)
        if existing is not None and existing.data.get(CONF_TRANSPORT) == TRANSPORT_HA_MQTT:
            # A PBX has one token; answering on a new one means the old one is dead.
            self._abort_if_unique_id_configured(updates={CONF_TOKEN: token})
        self._abort_if_unique_id_configured()

        self._discovered_info = info
        self.context["title_placeholders"] = {"name": _title(info)}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The discovered PBX answered; the user only confirms."""
        assert self._discovered_info is not None
        assert self._discovered_token is not None
        info = self._discovered_info
        if user_input is not None:
            return self.async_create_entry(
                title=_title(info),
                data={CONF_TRANSPORT: TRANSPORT_HA_MQTT, CONF_TOKEN: self._discovered_token},
            )
        self._set_confirm_only()
        return self.async_show_form(
            step_id="discovery_confirm",
            description_placeholders={
                "name": _title(info),
                "serial": info.serial,
                "firmware": info.firmware,
            },
        )

    # --- reauth: the broker refused the stored credentials ---

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start re-authentication with the broker."""
        if entry_data[CONF_TRANSPORT] != TRANSPORT_DIRECT:
            # Home Assistant's MQTT integration owns its broker credentials.
            return self.async_abort(reason="reauth_ha_mqtt")
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the broker's username and password again."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            credentials = {
                CONF_USERNAME: user_input.get(CONF_USERNAME) or None,
                CONF_PASSWORD: user_input.get(CONF_PASSWORD) or None,
            }
            data = {**entry.data, **credentials}
            info, error = await _async_error_of(async_probe_pbx(self.hass, data))
            if info is not None:
                await self.async_set_unique_id(info.serial, raise_on_progress=False)
                self._abort_if_unique_id_mismatch(
                    description_placeholders={"name": _title(info), "serial": info.serial}
                )
                return self.async_update_reload_and_abort(entry, data_updates=credentials)
            errors["base"] = error or "unknown"
        suggested = {CONF_USERNAME: (user_input or entry.data).get(CONF_USERNAME)}
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(_CREDENTIALS_SCHEMA, suggested),
            description_placeholders={"host": entry.data[CONF_HOST]},
            errors=errors,
        )


class SmartPbxOptionsFlow(OptionsFlowWithReload):
    """The phonebook; the entry reloads when it changes (which reads the file again).

    Bad input shows the form again with what was typed and the line at fault; the saved
    options stay as they were until the input reads without an error.
    """

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

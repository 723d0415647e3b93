"""Helpers for the config flow tests: a simulated PBX behind HA's MQTT, translation checks."""

from __future__ import annotations

from collections.abc import Mapping
import json
from pathlib import Path
import re
from typing import Any
from unittest.mock import MagicMock, Mock

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from pytest_homeassistant_custom_component.common import async_fire_mqtt_message

from smartpbx_sim import SimulatedPbx

TRANSLATIONS_FILE = (
    Path(__file__).parent.parent / "custom_components" / "smartpbx" / "translations" / "en.json"
)
_PLACEHOLDER_RE = re.compile(r"{(\w+)}")


def attach_pbx_to_ha_mqtt(
    hass: HomeAssistant, mqtt_client_mock: MagicMock, pbx: SimulatedPbx
) -> None:
    """Let ``pbx`` answer what is published through Home Assistant's mocked MQTT client.

    phcc's paho mock echoes every publication back to HA's subscribers; on top of that,
    commands for the PBX's token go to ``SimulatedPbx.handle_command``, and what the PBX
    publishes is delivered to HA's subscribers a loop iteration later, like a broker.
    """
    echo = mqtt_client_mock.publish.side_effect
    command_prefix = f"{pbx.base_topic}/command/"

    def publish(topic: str, payload: Any = None, qos: int = 0, *args: Any) -> Any:
        info = echo(topic, payload, qos, *args)
        if topic.startswith(command_prefix):
            hass.loop.call_soon(pbx.handle_command, topic, payload or b"")
        return info

    def deliver(topic: str, payload: bytes) -> None:
        async_fire_mqtt_message(hass, topic, payload)

    mqtt_client_mock.publish.side_effect = publish
    pbx.publish = deliver


def close_ha_mqtt_socket(mqtt_client_mock: MagicMock) -> None:
    """Tell Home Assistant's MQTT client its (mocked) socket closed, as paho would.

    That stops the client's one-second housekeeping timer, which phcc would otherwise
    report as lingering after a test shorter than a second.
    """
    mqtt_client_mock.on_socket_close(mqtt_client_mock, None, Mock(fileno=Mock(return_value=-1)))


def load_translations() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(TRANSLATIONS_FILE.read_text(encoding="utf-8"))
    return result


def _placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER_RE.findall(text))


def assert_translated(result: FlowResult[Any, Any], section: str = "config") -> None:
    """Fail unless every string the frontend needs for ``result`` is in en.json.

    Forms: the step's title, each field's label and data_description, each error, and
    every placeholder the texts use. Menus: every option. Aborts: the reason (unless it
    comes from Home Assistant's own translations).
    """
    strings = load_translations()[section]
    placeholders = set((result.get("description_placeholders") or {}).keys())
    if result["type"] is FlowResultType.FORM:
        step = strings["step"][result["step_id"]]
        assert step.get("title") or strings.get("flow_title"), result["step_id"]
        schema = result["data_schema"]
        for marker in schema.schema if schema is not None else ():
            assert str(marker) in step["data"], f"{result['step_id']}: no label for {marker}"
            assert str(marker) in step["data_description"], (
                f"{result['step_id']}: no data_description for {marker}"
            )
        for error in (result.get("errors") or {}).values():
            assert error in strings["error"], f"untranslated error {error}"
            assert _placeholders(strings["error"][error]) <= placeholders
        used = _placeholders(step.get("description", "")) | _placeholders(step["title"])
        # Reauth forms get the entry's title as {name} from Home Assistant itself.
        assert used - {"name"} <= placeholders, f"{result['step_id']}: {used - placeholders}"
    elif result["type"] is FlowResultType.MENU:
        step = strings["step"][result["step_id"]]
        options = result["menu_options"]
        assert isinstance(options, list | Mapping)
        for option in options:
            assert option in step["menu_options"], f"no label for menu option {option}"
    elif result["type"] is FlowResultType.ABORT:
        if result.get("translation_domain") in (None, "smartpbx"):
            reason = result["reason"]
            assert reason in strings["abort"], f"untranslated abort reason {reason}"
            assert _placeholders(strings["abort"][reason]) <= placeholders, reason

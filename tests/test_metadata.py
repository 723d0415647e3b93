"""The metadata files agree with each other and with the code.

manifest.json, hacs.json, services.yaml, icons.json and translations/en.json are read by
Home Assistant, HACS and hassfest, none of which run our tests: a key translated but never
used, or used but never translated, would only show up as a raw key in a user's UI.
"""

from __future__ import annotations

import ast
from collections.abc import Awaitable, Callable, Iterator
import json
from pathlib import Path
import re
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from packaging.requirements import Requirement
import pytest
import yaml

from custom_components.smartpbx.const import DOMAIN

from .integration_helpers import real_broker_fixture, smartpbx_fixture  # noqa: F401

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / DOMAIN


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


MANIFEST = _json(INTEGRATION / "manifest.json")
HACS = _json(ROOT / "hacs.json")
TRANSLATIONS = _json(INTEGRATION / "translations" / "en.json")
ICONS = _json(INTEGRATION / "icons.json")
SERVICES = yaml.safe_load((INTEGRATION / "services.yaml").read_text(encoding="utf-8"))

# Abort reasons Home Assistant's own helpers produce for us (_abort_if_unique_id_configured,
# _abort_if_unique_id_mismatch, _async_abort_entries_match, async_update_reload_and_abort).
HA_GENERATED_ABORT_REASONS = {
    "already_configured",
    "reauth_successful",
    "reconfigure_successful",
    "unique_id_mismatch",
}


def _string_literals() -> set[str]:
    """Every string constant in the integration's Python code."""
    found: set[str] = set()
    for path in INTEGRATION.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def _translation_key_literals() -> set[str]:
    """Literal values passed as ``translation_key=`` anywhere in the integration."""
    found: set[str] = set()
    for path in INTEGRATION.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "translation_key"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found.add(node.value.value)
    return found


def _walk_strings(tree: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _walk_strings(value, f"{path}.{key}" if path else key)
    elif isinstance(tree, str):
        yield path, tree


def test_manifest_is_complete_and_ordered_as_hassfest_wants() -> None:
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    for required in (
        "codeowners",
        "config_flow",
        "documentation",
        "integration_type",
        "iot_class",
        "issue_tracker",
        "loggers",
        "mqtt",
        "requirements",
        "version",
    ):
        assert required in MANIFEST, required
    assert MANIFEST["domain"] == DOMAIN
    assert MANIFEST["integration_type"] == "hub"
    assert MANIFEST["iot_class"] == "local_push"
    assert "mqtt" in MANIFEST.get("dependencies", []) + MANIFEST.get("after_dependencies", [])
    assert re.fullmatch(r"\d+\.\d+\.\d+", MANIFEST["version"])


def test_manifest_requirements_admit_what_the_tests_install() -> None:
    """A compatible range, not a pin (a pin collides with any other integration pinning
    the same library differently), that both test environments' pins lie in."""
    for requirements_file in ("requirements_test.txt", "requirements_test_min.txt"):
        pinned = {
            (parsed := Requirement(line)).name: str(parsed.specifier).removeprefix("==")
            for line in (ROOT / requirements_file).read_text().splitlines()
            if "==" in line and not line.startswith("#")
        }
        for declared in map(Requirement, MANIFEST["requirements"]):
            assert "==" not in str(declared.specifier), f"{declared} is pinned"
            assert any(spec.operator == "<" for spec in declared.specifier), (
                f"{declared} has no upper bound"
            )
            assert declared.name in pinned, f"{requirements_file} does not install {declared}"
            assert declared.specifier.contains(pinned[declared.name]), (declared, requirements_file)


def test_hacs_minimum_is_the_home_assistant_the_minimum_suite_runs() -> None:
    text = (ROOT / "requirements_test_min.txt").read_text()
    tested = re.search(r"pins homeassistant (\S+)", text)
    assert tested is not None
    assert HACS["homeassistant"] == tested.group(1)
    assert HACS["name"] == MANIFEST["name"]


def test_mqtt_discovery_topics_are_the_pbx_event_and_cdr_topics() -> None:
    assert sorted(MANIFEST["mqtt"]) == ["device/+/api/v1.0/cdr", "device/+/api/v1.0/event"]


def test_every_action_is_translated_with_every_field_and_has_an_icon() -> None:
    assert set(SERVICES) == set(TRANSLATIONS["services"])
    assert set(SERVICES) == set(ICONS["services"])
    for action, spec in SERVICES.items():
        fields = set((spec or {}).get("fields", {}))
        translated = TRANSLATIONS["services"][action]
        assert translated.get("name"), action
        assert translated.get("description"), action
        assert fields == set(translated.get("fields", {})), action
        for field in fields:
            assert translated["fields"][field].get("name"), f"{action}.{field}"
            assert translated["fields"][field].get("description"), f"{action}.{field}"


def test_selector_translations_are_exactly_those_services_yaml_uses() -> None:
    used: dict[str, set[str]] = {}
    for spec in SERVICES.values():
        for field in (spec or {}).get("fields", {}).values():
            select = (field.get("selector") or {}).get("select") or {}
            if key := select.get("translation_key"):
                used[key] = {str(option) for option in select.get("options", [])}
    translated = TRANSLATIONS.get("selector", {})
    assert set(translated) == set(used)
    for key, options in used.items():
        assert set(translated[key]["options"]) == options, key


async def test_entity_translations_and_icons_match_the_entities_created(
    hass: HomeAssistant, smartpbx: Callable[..., Awaitable[Any]]
) -> None:
    entry, _ = await smartpbx()
    used: dict[str, set[str]] = {}
    for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        if entity.translation_key is None:
            # Named after its device class by Home Assistant (e.g. "Connectivity").
            assert entity.original_device_class, f"{entity.entity_id} has no name source"
            continue
        used.setdefault(entity.domain, set()).add(entity.translation_key)

    translated = {platform: set(keys) for platform, keys in TRANSLATIONS["entity"].items() if keys}
    assert translated == used
    for platform, keys in ICONS["entity"].items():
        assert set(keys) <= used.get(platform, set()), platform
    for platform, keys in used.items():
        for key in keys:
            assert TRANSLATIONS["entity"][platform][key].get("name"), f"{platform}.{key}"


def test_exception_and_issue_keys_are_used_and_translated() -> None:
    literals = _string_literals()
    raised = _translation_key_literals()
    for section in ("exceptions", "issues"):
        for key in TRANSLATIONS.get(section, {}):
            assert key in literals, f"{section}.{key} is translated but never used"
    entity_keys = {key for keys in TRANSLATIONS["entity"].values() for key in keys}
    known = set(TRANSLATIONS["exceptions"]) | set(TRANSLATIONS.get("issues", {})) | entity_keys
    assert raised <= known, f"untranslated translation_key: {raised - known}"


def test_config_flow_errors_and_aborts_are_used() -> None:
    literals = _string_literals()
    for section in ("error", "abort"):
        for key in TRANSLATIONS["config"].get(section, {}):
            if key in HA_GENERATED_ABORT_REASONS:
                continue
            assert key in literals, f"config.{section}.{key} is translated but never used"


def test_every_form_field_has_a_label_and_a_description() -> None:
    for flow in ("config",):
        for step_id, step in TRANSLATIONS[flow]["step"].items():
            data = step.get("data", {})
            descriptions = step.get("data_description", {})
            assert set(data) == set(descriptions), f"{flow}.{step_id}"


@pytest.mark.parametrize("section", ["config", "options", "services", "entity", "exceptions"])
def test_no_translation_is_empty(section: str) -> None:
    for path, text in _walk_strings(TRANSLATIONS.get(section, {})):
        assert text.strip(), f"{section}.{path} is empty"


def test_state_icons_and_translations_name_states_the_sensors_have() -> None:
    """An icon or a name for a state the sensor never takes is never shown (e.g. HA's own
    "unavailable" instead of our "offline"), in icons.json and in translations/en.json."""
    from custom_components.smartpbx.sensor import EXTENSION_SENSORS, TRUNK_SENSORS

    with_options = [d for d in (*EXTENSION_SENSORS, *TRUNK_SENSORS) if d.options]
    assert with_options
    stated = {
        key
        for source in (ICONS, TRANSLATIONS)
        for key, spec in source["entity"]["sensor"].items()
        if "state" in spec
    }
    assert stated <= {d.translation_key for d in with_options}
    for description in with_options:
        key = description.translation_key
        icon_states = ICONS["entity"]["sensor"][key].get("state", {})
        # "unknown" is Home Assistant's state for a value of None, which these sensors use.
        assert set(icon_states) <= {*description.options, "unknown"}, description.key
        name_states = TRANSLATIONS["entity"]["sensor"][key].get("state", {})
        assert set(name_states) == set(description.options), description.key

"""Every entity (registry entry and state) and device of a simulator-sized PBX, snapshotted.

Only this engineer's platforms (sensor, binary_sensor, button, switch) are in it; the
event entities are snapshotted with the events. Run with ``--snapshot-update`` after an
intended change and review the diff of ``snapshots/test_entities_snapshot.ambr``.
"""

from __future__ import annotations

import json
from pathlib import Path
import re

from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from smartpbx_sim import PbxConfig

from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    smartpbx_fixture,
)

COMPONENT = Path(__file__).parent.parent / "custom_components" / "smartpbx"
PLATFORMS = ("binary_sensor", "button", "sensor", "switch")

# The simulator's default PBX (16 extensions, 6 trunks, 2 queues, 2 conferences), with
# calls that never ring out on their own so nothing changes while the snapshot is taken.
PBX = PbxConfig(answer_delay=None, ring_timeout=3600)

# Depends on the wall clock (now minus uptime); checked in test_sensor.py instead.
CLOCK_DEPENDENT = {"sensor.spx1004o4s_last_boot"}


async def test_entities_and_devices(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    smartpbx: SmartPbxFactory,
    snapshot: SnapshotAssertion,
) -> None:
    # Home Assistant's serializer (ids, timestamps and contexts as ANY), whichever plugin
    # provides the ``snapshot`` fixture.
    snapshot = snapshot.use_extension(HomeAssistantSnapshotExtension)
    entry, _ = await smartpbx(sim_config=PBX)

    entities = sorted(
        (
            registered
            for registered in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
            if registered.domain in PLATFORMS
        ),
        key=lambda registered: registered.entity_id,
    )
    assert entities
    for registered in entities:
        assert registered == snapshot(name=f"{registered.entity_id}-entry")
        state = hass.states.get(registered.entity_id)
        if registered.disabled_by is not None:
            assert state is None
            continue
        assert state is not None, registered.entity_id
        if registered.entity_id in CLOCK_DEPENDENT:
            state = State(state.entity_id, "<depends on the clock>", state.attributes)
        assert state == snapshot(name=f"{registered.entity_id}-state")

    devices = sorted(
        dr.async_entries_for_config_entry(device_registry, entry.entry_id),
        key=lambda device: device.name or "",
    )
    assert len(devices) == 1 + 16 + 6 + 2 + 2
    for device in devices:
        assert device == snapshot(name=f"device-{device.name}")


async def test_every_entity_is_translated_and_has_an_icon(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, smartpbx: SmartPbxFactory
) -> None:
    entry, _ = await smartpbx()
    strings = json.loads((COMPONENT / "translations" / "en.json").read_text())["entity"]
    icons = json.loads((COMPONENT / "icons.json").read_text())["entity"]

    for registered in er.async_entries_for_config_entry(entity_registry, entry.entry_id):
        if registered.domain not in PLATFORMS:
            continue
        key = registered.translation_key
        if key is None:
            # Named by its device class (connectivity).
            assert registered.original_device_class is not None, registered.entity_id
            continue
        assert strings[registered.domain][key]["name"], registered.entity_id
        assert icons[registered.domain][key]["default"], registered.entity_id
        options = (registered.capabilities or {}).get("options", [])
        for option in options:
            assert option in strings[registered.domain][key]["state"], (key, option)


def test_every_raised_translation_key_exists() -> None:
    """Each translation_key literal in the runtime's code has a text in en.json."""
    strings = json.loads((COMPONENT / "translations" / "en.json").read_text())
    known = set(strings["exceptions"]) | {
        key for platform in strings["entity"].values() for key in platform
    }
    sources = ("__init__", "coordinator", "entity", "sensor", "binary_sensor", "button", "switch")
    for source in sources:
        text = (COMPONENT / f"{source}.py").read_text()
        for key in re.findall(r'translation_key="(\w+)"', text):
            assert key in known, f"{source}.py: {key}"

"""The automation blueprints under blueprints/automation/smartpbx.

Each blueprint must pass Home Assistant's own blueprint schema, and must work: set up as
a real automation, it reacts to the integration's bus events as its description says.
"""

from __future__ import annotations

from pathlib import Path
import shutil
from typing import Any

from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint import Blueprint
from homeassistant.components.blueprint.schemas import BLUEPRINT_SCHEMA
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util import yaml as yaml_util
import pytest
from pytest_homeassistant_custom_component.common import (
    async_get_persistent_notifications,
    async_mock_service,
)

from custom_components.smartpbx.const import EVENT_CDR, EVENT_INVITE, EVENT_IVR_DTMF

BLUEPRINT_DIR = Path(__file__).parent.parent / "blueprints" / "automation" / "smartpbx"
BLUEPRINTS = sorted(BLUEPRINT_DIR.glob("*.yaml"))
REPOSITORY_URL = "https://github.com/smartpbx-team/smartpbx/blob/main/"

IVR_KEYPRESS = "smartpbx/ivr_keypress.yaml"
INCOMING_CALL = "smartpbx/incoming_call_notification.yaml"
MISSED_CALL = "smartpbx/missed_call_notification.yaml"


def _load(path: Path) -> dict[str, Any]:
    """Load a blueprint the way Home Assistant does (with its !input tag)."""
    data = yaml_util.load_yaml(path)
    assert isinstance(data, dict)
    return data


def test_all_blueprints_are_here() -> None:
    """The three documented blueprints exist, and nothing else hides in the folder."""
    assert {f"smartpbx/{path.name}" for path in BLUEPRINTS} == {
        IVR_KEYPRESS,
        INCOMING_CALL,
        MISSED_CALL,
    }


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda path: path.stem)
def test_blueprint_passes_home_assistants_schema(path: Path) -> None:
    """Home Assistant accepts the blueprint as an automation blueprint."""
    data = _load(path)
    BLUEPRINT_SCHEMA(data)
    blueprint = Blueprint(
        data, path=str(path), expected_domain="automation", schema=AUTOMATION_BLUEPRINT_SCHEMA
    )
    # validate() checks the minimum version against the running Home Assistant.
    assert blueprint.validate() is None, HA_VERSION
    metadata = blueprint.metadata
    assert metadata["name"].startswith("Smart PBX - ")
    assert metadata["description"]
    # "Import blueprint" in Home Assistant fetches this URL: it must name this very file.
    relative = path.relative_to(BLUEPRINT_DIR.parent.parent.parent).as_posix()
    assert metadata["source_url"] == REPOSITORY_URL + relative
    for name, definition in blueprint.inputs.items():
        assert definition["name"], name
        assert definition["description"], name
        assert "selector" in definition, name


@pytest.fixture
def hass_config_dir(hass_tmp_config_dir: str) -> str:
    """A config folder of the test's own, holding the blueprints where HA looks for them."""
    target = Path(hass_tmp_config_dir) / "blueprints" / "automation" / "smartpbx"
    target.mkdir(parents=True, exist_ok=True)
    for path in BLUEPRINTS:
        shutil.copy(path, target / path.name)
    return hass_tmp_config_dir


async def _set_up_automation(hass: HomeAssistant, path: str, inputs: dict[str, Any]) -> None:
    """Set up one automation from a blueprint and make sure it loaded."""
    automation = {"alias": "under test", "use_blueprint": {"path": path, "input": inputs}}
    assert await async_setup_component(hass, "automation", {"automation": [automation]})
    await hass.async_block_till_done()
    state = hass.states.get("automation.under_test")
    assert state is not None
    assert state.state == "on", state.attributes


async def _fire(hass: HomeAssistant, event_type: str, data: dict[str, Any]) -> None:
    hass.bus.async_fire(event_type, data)
    await hass.async_block_till_done()


def _recording_action(service: str) -> list[dict[str, Any]]:
    """An action that hands the blueprint's variables to test.<service>."""
    return [{"action": f"test.{service}", "data": {"seen": "{{ keypress | default(call) }}"}}]


async def test_ivr_keypress_runs_the_action_for_its_key_only(hass: HomeAssistant) -> None:
    """The chosen key in the chosen IVR runs the actions; other keys and IVRs do not."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "keypress")
    await _set_up_automation(
        hass,
        IVR_KEYPRESS,
        {"ivr_number": "9000", "key": "5", "keypress_action": _recording_action("keypress")},
    )

    press = {"ivr": "9000", "caller": "+4930123456", "dtmf": "5", "callid": "1673078689.147"}
    await _fire(hass, EVENT_IVR_DTMF, press)
    assert len(calls) == 1
    # Every field arrives as the PBX sent it: the "+" and the call id stay text.
    assert calls[0].data["seen"] == {
        "ivr": "9000",
        "key": "5",
        "caller": "+4930123456",
        "caller_name": "",
        "callid": "1673078689.147",
    }

    await _fire(hass, EVENT_IVR_DTMF, press | {"dtmf": "6"})
    await _fire(hass, EVENT_IVR_DTMF, press | {"ivr": "9001"})
    await _fire(hass, EVENT_IVR_DTMF, {"ivr": "9000"})  # a malformed event is ignored
    assert len(calls) == 1


async def test_ivr_keypress_without_ivr_number_listens_to_every_ivr(hass: HomeAssistant) -> None:
    """Leaving the IVR number empty matches the key in any IVR; '#' works as a key."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "keypress")
    await _set_up_automation(
        hass, IVR_KEYPRESS, {"key": "#", "keypress_action": _recording_action("keypress")}
    )

    await _fire(hass, EVENT_IVR_DTMF, {"ivr": "9000", "caller": "2005", "dtmf": "#"})
    await _fire(hass, EVENT_IVR_DTMF, {"ivr": "9100", "caller": "2006", "dtmf": "#"})
    await _fire(hass, EVENT_IVR_DTMF, {"ivr": "9100", "caller": "2006", "dtmf": "1"})
    assert [call.data["seen"]["caller"] for call in calls] == ["2005", "2006"]


async def test_incoming_call_default_notification_names_the_caller(hass: HomeAssistant) -> None:
    """With its default action the blueprint creates a notification naming both ends."""
    assert await async_setup_component(hass, "persistent_notification", {})
    await _set_up_automation(hass, INCOMING_CALL, {})

    await _fire(
        hass,
        EVENT_INVITE,
        {
            "from": "0612345678",
            "from_name": "Anna Schmidt",
            "to": "8001",
            "to_name": "Reception",
            "callid": "1673071399.25",
        },
    )
    notifications = async_get_persistent_notifications(hass)
    assert len(notifications) == 1
    notification = next(iter(notifications.values()))
    assert notification["title"] == "Incoming call"
    assert notification["message"] == "Anna Schmidt (0612345678) is calling Reception (8001)"

    # Without names (an outside caller, a blank extension) the numbers stand alone.
    await _fire(hass, EVENT_INVITE, {"from": "+4930123456", "to": "2001", "callid": "1.2"})
    messages = {n["message"] for n in async_get_persistent_notifications(hass).values()}
    assert "+4930123456 is calling 2001" in messages


async def test_incoming_call_filters_on_called_numbers(hass: HomeAssistant) -> None:
    """Only calls to the chosen numbers run the actions."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "ring")
    await _set_up_automation(
        hass,
        INCOMING_CALL,
        {"called_numbers": ["8001", " 2005 "], "notify_action": _recording_action("ring")},
    )

    for to in ("8001", "8002", "2005"):
        await _fire(hass, EVENT_INVITE, {"from": "0298765432", "to": to, "callid": f"9.{to}"})
    assert [call.data["seen"]["called_number"] for call in calls] == ["8001", "2005"]
    assert calls[0].data["seen"] == {
        "caller_number": "0298765432",
        "caller_name": "",
        "caller": "0298765432",
        "called_number": "8001",
        "called_name": "",
        "called": "8001",
        "callid": "9.8001",
    }


def _cdr(disposition: str, dst: str = "8001") -> dict[str, Any]:
    return {
        "callid": f"1673071399.{dst}",
        "src": "+33142278186",
        "dst": dst,
        "start": "2022-12-30 11:53:40",
        "end": "2022-12-30 11:54:10",
        "billsec": 0,
        "disposition": disposition,
        "disposition_raw": disposition.upper().replace("_", " "),
        "direction": "inbound",
    }


async def test_missed_call_default_notification(hass: HomeAssistant) -> None:
    """Unanswered, busy and failed calls notify; answered ones do not."""
    assert await async_setup_component(hass, "persistent_notification", {})
    await _set_up_automation(hass, MISSED_CALL, {})

    await _fire(hass, EVENT_CDR, _cdr("answered"))
    await _fire(hass, EVENT_CDR, _cdr("unknown"))
    assert async_get_persistent_notifications(hass) == {}

    await _fire(hass, EVENT_CDR, _cdr("no_answer"))
    notifications = list(async_get_persistent_notifications(hass).values())
    assert len(notifications) == 1
    assert notifications[0]["title"] == "Missed call"
    assert notifications[0]["message"] == (
        "Missed call from +33142278186 to 8001 (not answered, 2022-12-30 11:53:40)"
    )

    await _fire(hass, EVENT_CDR, _cdr("busy", dst="8002"))
    await _fire(hass, EVENT_CDR, _cdr("failed", dst="8003"))
    assert len(async_get_persistent_notifications(hass)) == 3


async def test_missed_call_filters_on_outcome_and_number(hass: HomeAssistant) -> None:
    """The chosen outcomes and called numbers narrow what counts as missed."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "missed")
    await _set_up_automation(
        hass,
        MISSED_CALL,
        {
            "called_numbers": ["8001"],
            "reasons": ["no_answer"],
            "notify_action": _recording_action("missed"),
        },
    )

    await _fire(hass, EVENT_CDR, _cdr("busy"))
    await _fire(hass, EVENT_CDR, _cdr("no_answer", dst="8002"))
    await _fire(hass, EVENT_CDR, _cdr("no_answer"))
    assert len(calls) == 1
    assert calls[0].data["seen"] == {
        "caller_number": "+33142278186",
        "caller_name": "",
        "caller": "+33142278186",
        "called_number": "8001",
        "called_name": "",
        "called": "8001",
        "reason": "no_answer",
        "reason_text": "not answered",
        "direction": "inbound",
        "start": "2022-12-30 11:53:40",
        "callid": "1673071399.8001",
    }


async def test_missed_call_names_the_parties_when_known(hass: HomeAssistant) -> None:
    """The phonebook's or the PBX's names head the message; an unknown one is left out."""
    assert await async_setup_component(hass, "persistent_notification", {})
    await _set_up_automation(hass, MISSED_CALL, {})

    named = _cdr("no_answer") | {"src_name": "Pizzeria Roma", "dst_name": "Reception"}
    await _fire(hass, EVENT_CDR, named)
    await _fire(hass, EVENT_CDR, _cdr("busy", dst="8002") | {"src_name": None, "dst_name": ""})

    messages = {n["message"] for n in async_get_persistent_notifications(hass).values()}
    assert messages == {
        "Missed call from Pizzeria Roma (+33142278186) to Reception (8001) "
        "(not answered, 2022-12-30 11:53:40)",
        "Missed call from +33142278186 to 8002 (busy, 2022-12-30 11:53:40)",
    }


async def test_a_call_without_a_caller_number_reads_as_unknown(hass: HomeAssistant) -> None:
    """No name and no number (a withheld caller id): the message still reads as words."""
    assert await async_setup_component(hass, "persistent_notification", {})
    await _set_up_automation(hass, INCOMING_CALL, {})

    await _fire(hass, EVENT_INVITE, {"from": "", "from_name": None, "to": "2001", "callid": "3"})

    messages = {n["message"] for n in async_get_persistent_notifications(hass).values()}
    assert messages == {"an unknown number is calling 2001"}

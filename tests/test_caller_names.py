"""The phonebook in the options, names everywhere a number appears, and Recent calls.

Real Home Assistant, a real Mosquitto and the simulator; the options flow's error cases
need no PBX and run on an entry that is only added.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from homeassistant.components.logbook.models import async_event_to_row
from homeassistant.components.logbook.processor import EventProcessor
from homeassistant.core import Event, HomeAssistant, State
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.util import dt as dt_util, slugify
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smartpbx.caller_names import FILE_CHECK_INTERVAL
from custom_components.smartpbx.const import DOMAIN, EVENT_CDR, EVENT_INVITE, EVENT_IVR_DTMF
from custom_components.smartpbx.pbx.phonebook import DialPlan, Phonebook, parse_phonebook_text
from smartpbx_sim.names import EXTERNAL_CALLER_NAMES, EXTERNAL_NUMBERS

from .config_flow_helpers import assert_translated
from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    smartpbx_fixture,
    wait_for,
)
from .test_logbook import logbook_platforms

SERIAL = slugify(SMALL_PBX.devicename)  # entity ids follow the PBX device's name
ACTIVE_CALLS = f"sensor.{SERIAL}_active_calls"
LAST_CALL = f"sensor.{SERIAL}_last_call"
RECENT_CALLS = f"sensor.{SERIAL}_recent_calls"
INCOMING_CALL = f"event.{SERIAL}_incoming_call"
CALL_ENDED = f"event.{SERIAL}_call_ended"
IVR_KEYPRESS = f"event.{SERIAL}_ivr_keypress"

# Italy: no trunk prefix to drop (the 0 is part of the number); 9 opens an outside line.
PHONEBOOK = "0612345678 = Pizzeria Roma\n+49 30 123456 = Berlin Office\n2001 = Not the lobby\n"
OPTIONS = {
    "phonebook": PHONEBOOK,
    "phonebook_file": "",
    "country_code": "39",
    "trunk_prefix": "",
    "international_prefix": "00",
    "outside_line_prefix": "9",
}
VCARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nTEL;TYPE=cell:{number}\r\nEND:VCARD\r\n"


@pytest.fixture
def hass_config_dir(hass_tmp_config_dir: str) -> str:
    """A configuration folder of the test's own, for the contacts files."""
    return hass_tmp_config_dir


def _state(hass: HomeAssistant, entity_id: str) -> State:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


async def _lookup(hass: HomeAssistant, number: str) -> Any:
    return await hass.services.async_call(
        DOMAIN, "lookup_number", {"number": number}, blocking=True, return_response=True
    )


async def _logbook_messages(hass: HomeAssistant, events: list[Event[Any]]) -> set[str]:
    """What the logbook shows for ``events`` (see test_logbook.py)."""
    await logbook_platforms(hass)
    processor = EventProcessor(hass, [EVENT_INVITE, EVENT_IVR_DTMF, EVENT_CDR])
    return {row["message"] for row in processor.humanify(map(async_event_to_row, events))}


def _suggested(result: FlowResult[Any, Any], field: str) -> Any:
    for marker in result["data_schema"].schema:
        if str(marker) == field:
            return (marker.description or {}).get("suggested_value")
    raise AssertionError(f"no field {field}")


def _added_entry(hass: HomeAssistant, options: dict[str, Any]) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SMALL_PBX.serial,
        data={"transport": "ha_mqtt", "token": SMALL_PBX.token},
        options=options,
    )
    entry.add_to_hass(hass)
    return entry


# --- the options flow ----------------------------------------------------------------------


async def test_options_flow_saves_a_phonebook_and_reloads(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    hass.config.country = "DE"
    entry, _ = await smartpbx()

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert_translated(result, "options")
    # A first form suggests Home Assistant's country's dial plan.
    assert (_suggested(result, "country_code"), _suggested(result, "trunk_prefix")) == ("49", "0")

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "phonebook": "+39 06 1234 5678 = Pizzeria Roma",
            "country_code": "+39",
            "international_prefix": "00",
            # trunk prefix emptied (Italy keeps its 0): the frontend leaves the key out
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "phonebook": "+39 06 1234 5678 = Pizzeria Roma",
        "phonebook_file": "",
        "country_code": "39",
        "trunk_prefix": "",
        "international_prefix": "00",
        "outside_line_prefix": "",
    }
    # Reloaded with the new phonebook: the national form matches the +39 entry.
    assert await _lookup(hass, "06 1234 5678") == {"name": "Pizzeria Roma", "source": "phonebook"}


@pytest.mark.parametrize(
    ("user_input", "field", "error", "placeholders"),
    [
        (
            {"phonebook": "0612345678 = Pizzeria\n\nno number here"},
            "phonebook",
            "no_separator",
            {"line": "3", "content": "no number here"},
        ),
        (
            {"phonebook": "# ours\n = Nobody"},
            "phonebook",
            "no_number",
            {"line": "2", "content": "= Nobody"},
        ),
        (
            {"phonebook": "061234 = A\n06-1234 = B"},
            "phonebook",
            "duplicate",
            {"line": "2", "other_line": "1", "content": "06-1234 = B"},
        ),
        (
            {"phonebook": "call me = Bob"},
            "phonebook",
            "invalid_number",
            {"line": "1", "content": "call me = Bob"},
        ),
        ({"country_code": "3"}, "country_code", "invalid_country_code", {"content": "3"}),
        ({"phonebook_file": "missing.vcf"}, "phonebook_file", "file_not_found", {}),
        (
            {"phonebook_file": "../outside.vcf"},
            "phonebook_file",
            "file_outside_config",
            {"content": "../outside.vcf"},
        ),
        (
            {"phonebook_file": "broken.vcf"},
            "phonebook_file",
            "vcard_not_closed",
            {"line": "1", "content": "BEGIN:VCARD"},
        ),
    ],
)
async def test_options_flow_names_the_bad_line_and_keeps_what_was_saved(
    hass: HomeAssistant,
    user_input: dict[str, str],
    field: str,
    error: str,
    placeholders: dict[str, str],
) -> None:
    Path(hass.config.path("broken.vcf")).write_text("BEGIN:VCARD\nFN:Half a card\n")
    entry = _added_entry(hass, dict(OPTIONS))

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert _suggested(result, "phonebook") == PHONEBOOK  # the saved phonebook, to edit
    # The whole form as the frontend sends it, with the field under test changed.
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**OPTIONS, **user_input}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    assert result["description_placeholders"] is not None
    assert placeholders.items() <= result["description_placeholders"].items()
    assert_translated(result, "options")
    # What was typed is still in the form; what was saved is untouched.
    for key, value in user_input.items():
        assert _suggested(result, key) == value
    assert entry.options == OPTIONS


async def test_a_missing_contacts_file_is_named_in_its_error(hass: HomeAssistant) -> None:
    entry = _added_entry(hass, {})
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"phonebook_file": "contacts/missing.vcf", "international_prefix": "00"}
    )
    assert result["errors"] == {"phonebook_file": "file_not_found"}
    # The full path (cut to 80 characters): where Home Assistant looked.
    assert result["description_placeholders"]["content"].startswith(hass.config.config_dir)
    assert entry.options == {}


async def test_the_contacts_file_is_read_again_when_it_changes(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    contacts = Path(hass.config.path("contacts.vcf"))
    contacts.write_text(VCARD.format(name="Anna Schmidt", number="+39 333 1234567"))
    await smartpbx(options={**OPTIONS, "phonebook_file": "contacts.vcf"})
    assert await _lookup(hass, "3331234567") == {"name": "Anna Schmidt", "source": "file"}
    # The options' text wins over the file for the same number.
    assert await _lookup(hass, "0612345678") == {"name": "Pizzeria Roma", "source": "phonebook"}

    def rewrite(text: str, age: int) -> None:
        contacts.write_text(text)
        stamp = contacts.stat().st_mtime_ns + age * 1_000_000_000
        os.utime(contacts, ns=(stamp, stamp))  # a new modification time, however fast

    async def next_check(minutes: int) -> None:
        async_fire_time_changed(hass, dt_util.utcnow() + FILE_CHECK_INTERVAL * minutes)
        await hass.async_block_till_done(wait_background_tasks=True)

    rewrite(VCARD.format(name="Anna Rossi", number="+39 333 1234567"), 10)
    await next_check(1)
    assert await _lookup(hass, "3331234567") == {"name": "Anna Rossi", "source": "file"}
    # A file read as it should be is normal operation: debug level, not the log's info.
    assert not [
        record
        for record in caplog.records
        if record.levelno >= logging.INFO and "contacts.vcf" in record.getMessage()
    ]

    caplog.set_level(logging.WARNING)
    rewrite("BEGIN:VCARD\nFN:Half a card\n", 20)
    await next_check(2)
    # A file that turns bad keeps the names read before, and says why.
    assert await _lookup(hass, "3331234567") == {"name": "Anna Rossi", "source": "file"}
    assert "contacts.vcf not read, its names stay as they were" in caplog.text


async def test_a_contacts_file_missing_at_setup_is_watched_until_it_appears(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved options naming a file that vanished since: set-up goes on with the options'
    own names, says why once, and the file's names come when it is back."""
    caplog.set_level(logging.WARNING)
    await smartpbx(options={**OPTIONS, "phonebook_file": "contacts.vcf"})
    assert "contacts.vcf not read" in caplog.text
    assert await _lookup(hass, "0612345678") == {"name": "Pizzeria Roma", "source": "phonebook"}
    assert await _lookup(hass, "3331234567") == {"name": None, "source": "none"}

    async def next_check(minutes: int) -> None:
        async_fire_time_changed(hass, dt_util.utcnow() + FILE_CHECK_INTERVAL * minutes)
        await hass.async_block_till_done(wait_background_tasks=True)

    await next_check(1)  # still missing: nothing to read
    assert await _lookup(hass, "3331234567") == {"name": None, "source": "none"}
    Path(hass.config.path("contacts.vcf")).write_text(
        VCARD.format(name="Anna Schmidt", number="+39 333 1234567")
    )
    await next_check(2)
    assert await _lookup(hass, "3331234567") == {"name": "Anna Schmidt", "source": "file"}
    await next_check(3)  # unchanged: not read again, the names stay
    assert await _lookup(hass, "3331234567") == {"name": "Anna Schmidt", "source": "file"}


async def test_bad_saved_options_are_logged_and_set_up_goes_on(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Options saved by an older version that this one reads differently: no phonebook
    names, a warning, and the PBX's own extension names still."""
    caplog.set_level(logging.WARNING)
    await smartpbx(options={**OPTIONS, "phonebook": "0612345678 Pizzeria Roma"})
    assert "Phonebook of" in caplog.text
    assert await _lookup(hass, "0612345678") == {"name": None, "source": "none"}
    assert await _lookup(hass, "2001") == {"name": "Lobby", "source": "extension"}


async def test_without_a_contacts_file_the_check_reads_nothing(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    await smartpbx(options=OPTIONS)
    async_fire_time_changed(hass, dt_util.utcnow() + FILE_CHECK_INTERVAL)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert await _lookup(hass, "0612345678") == {"name": "Pizzeria Roma", "source": "phonebook"}


# --- names everywhere a number appears -----------------------------------------------------


async def test_names_in_events_entities_logbook_and_call_attributes(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    _, runner = await smartpbx(options=OPTIONS)
    invites = async_capture_events(hass, EVENT_INVITE)
    keypresses = async_capture_events(hass, EVENT_IVR_DTMF)
    records = async_capture_events(hass, EVENT_CDR)

    # +39 06... is Italy's 06...: the phonebook's entry, written nationally, matches.
    runner.incoming_call("+390612345678", "2001")
    await wait_for(lambda: len(invites) == 1)
    # The PBX's own name for an extension wins over the phonebook's.
    assert (invites[0].data["from_name"], invites[0].data["to_name"]) == ("Pizzeria Roma", "Lobby")
    incoming = _state(hass, INCOMING_CALL).attributes
    assert (incoming["from_name"], incoming["to_name"]) == ("Pizzeria Roma", "Lobby")
    await wait_for(lambda: _state(hass, ACTIVE_CALLS).state == "1")
    (call,) = _state(hass, ACTIVE_CALLS).attributes["calls"]
    assert (call["caller_name"], call["called_name"]) == ("Pizzeria Roma", "Lobby")

    runner.ivr_keypress("9000", "004930123456", "5")
    await wait_for(lambda: len(keypresses) == 1)
    assert keypresses[0].data["caller_name"] == "Berlin Office"
    assert _state(hass, IVR_KEYPRESS).attributes["caller_name"] == "Berlin Office"

    runner.emit_cdr("0612345678", "2001", disposition="NO ANSWER", direction="Inbound")
    # Dialled out with the outside-line prefix 9: the number without it is looked up.
    runner.emit_cdr("8001", "90612345678", disposition="ANSWERED", direction="Outbound")
    runner.emit_cdr("5551234", "8001", disposition="BUSY", direction="Inbound")
    await wait_for(lambda: len(records) == 3)
    names = [(event.data["src_name"], event.data["dst_name"]) for event in records]
    assert names == [("Pizzeria Roma", "Lobby"), (None, "Pizzeria Roma"), (None, None)]
    await wait_for(lambda: _state(hass, RECENT_CALLS).state == "3")
    ended = _state(hass, CALL_ENDED).attributes
    assert (ended["src_name"], ended["dst_name"]) == (None, None)  # the busy one, unknown
    last = _state(hass, LAST_CALL).attributes
    assert (last["src"], last["src_name"], last["dst_name"]) == ("5551234", None, None)
    recent = _state(hass, RECENT_CALLS).attributes["calls"]
    assert [(call["from_name"], call["to_name"]) for call in recent] == [
        (None, None),
        (None, "Pizzeria Roma"),
        ("Pizzeria Roma", "Lobby"),
    ]

    messages = await _logbook_messages(hass, [*invites, *records])
    assert "Incoming call from +390612345678 (Pizzeria Roma) to 2001 (Lobby)" in messages
    assert "Call from 8001 to 90612345678 (Pizzeria Roma) ended: answered (0 s)" in messages


async def test_lookup_number_says_where_the_name_came_from(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    await smartpbx(options=OPTIONS)

    assert await _lookup(hass, "+39 06-1234 5678") == {
        "name": "Pizzeria Roma",
        "source": "phonebook",
    }
    assert await _lookup(hass, "2001") == {"name": "Lobby", "source": "extension"}
    assert await _lookup(hass, "5551234") == {"name": None, "source": "none"}
    assert await _lookup(hass, "anonymous") == {"name": None, "source": "none"}


# --- Recent calls ----------------------------------------------------------------------------


async def test_recent_calls_survive_a_reload_without_dtmf(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, runner = await smartpbx(options=OPTIONS)
    runner.emit_cdr("0612345678", "2001", direction="Inbound", billsec=42, dtmf="4711#")
    runner.emit_cdr("8001", "8002", disposition="NO ANSWER")
    await wait_for(lambda: _state(hass, RECENT_CALLS).state == "2")
    before = _state(hass, RECENT_CALLS).attributes["calls"]

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    after = _state(hass, RECENT_CALLS)
    assert after.state == "2"
    assert after.attributes["calls"] == before
    assert before[1] | {"time": None, "callid": None} == {
        "time": None,
        "direction": "inbound",
        "from": "0612345678",
        "from_name": "Pizzeria Roma",
        "to": "2001",
        "to_name": "Lobby",
        "disposition": "answered",
        "duration": 42,
        "callid": None,
    }
    # Keys pressed during a call can be a PIN: never kept.
    assert "4711" not in json.dumps(after.attributes)


async def test_recent_calls_restored_after_a_restart_come_after_new_ones(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    saved = {
        "time": "2026-12-01T09:00:00+00:00",
        "direction": "inbound",
        "from": "+4930123456",
        "from_name": "Berlin Office",
        "to": "8001",
        "to_name": None,
        "disposition": "no_answer",
        "duration": 0,
        "callid": "1.1",
    }
    mock_restore_cache_with_extra_data(
        hass, [(State(RECENT_CALLS, "2"), {"calls": [saved, {"not": "a call"}]})]
    )
    _, runner = await smartpbx()
    assert _state(hass, RECENT_CALLS).state == "1"

    runner.emit_cdr("8001", "8002")
    await wait_for(lambda: _state(hass, RECENT_CALLS).state == "2")
    calls = _state(hass, RECENT_CALLS).attributes["calls"]
    assert [call["from"] for call in calls] == ["8001", "+4930123456"]
    assert calls[1] == saved


async def test_the_recent_calls_list_is_not_recorded(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    await smartpbx()
    # What the recorder reads to leave attributes out of the database.
    state_info = _state(hass, RECENT_CALLS).state_info
    assert state_info is not None
    assert "calls" in state_info["unrecorded_attributes"]


# --- diagnostics ---------------------------------------------------------------------------


async def test_diagnostics_redact_the_phonebook(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, hass_client: ClientSessionGenerator
) -> None:
    entry, _ = await smartpbx(options=OPTIONS)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert isinstance(diagnostics, dict)
    options = diagnostics["entry"]["options"]
    assert options["phonebook"] == "**REDACTED**"
    assert options["country_code"] == "39"
    assert diagnostics["phonebook"] == {"numbers": 3}
    assert "Pizzeria" not in json.dumps(diagnostics)


def test_the_demo_phonebook_names_every_outside_caller_of_the_simulator() -> None:
    """The demo (demo/bootstrap.py: ensure_phonebook) uses Italy's plan and these names."""
    plan = DialPlan(country_code="39", trunk_prefix="", international_prefix="00")
    text = "\n".join(f"{number} = {name}" for number, name in EXTERNAL_CALLER_NAMES.items())
    book = Phonebook(plan, parse_phonebook_text(text, plan))
    assert {book.lookup(number).name for number in EXTERNAL_NUMBERS} == set(
        EXTERNAL_CALLER_NAMES.values()
    )

"""Caller names: the entry's phonebook (options text and a vCard/CSV file), looked up.

The options flow and set-up read the options alike (``async_read_phonebook``). The PBX's
own extension names always win for its extensions (``Phonebook.lookup``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.event import async_track_time_interval

from .const import LOGGER
from .pbx.phonebook import (
    DialPlan,
    NameLookup,
    Phonebook,
    PhonebookError,
    file_stamp,
    parse_phonebook_text,
    read_phonebook_file_in,
)

if TYPE_CHECKING:
    from .coordinator import SmartPbxConfigEntry, SmartPbxSystemCoordinator

CONF_PHONEBOOK: Final = "phonebook"
CONF_PHONEBOOK_FILE: Final = "phonebook_file"
PLAN_FIELDS: Final = tuple(field.name for field in fields(DialPlan))
"""The dial plan's options, named after its fields."""
FILE_CHECK_INTERVAL: Final = timedelta(minutes=1)
"""How often the phonebook file's modification time and size are compared."""


class PhonebookInputError(Exception):
    """Bad phonebook options: the form field, the error (a translation key), placeholders."""

    def __init__(self, field: str, err: PhonebookError) -> None:
        super().__init__(f"{field}: {err}")
        # A bad dial plan value (invalid_<field>) is its own field's fault.
        plan_field = err.reason.value.removeprefix("invalid_")
        self.field = plan_field if plan_field in PLAN_FIELDS else field
        self.key = err.reason.value
        self.placeholders = err.placeholders


def plan_options(plan: DialPlan) -> dict[str, str]:
    """The options' fields of a dial plan."""
    return asdict(plan)


async def async_read_phonebook(hass: HomeAssistant, options: Mapping[str, Any]) -> Phonebook:
    """Read the phonebook the options describe; raises PhonebookInputError for bad input."""
    try:
        plan = DialPlan.from_input(**{key: options[key] for key in PLAN_FIELDS if key in options})
        entries = parse_phonebook_text(options.get(CONF_PHONEBOOK, ""), plan)
    except PhonebookError as err:
        raise PhonebookInputError(CONF_PHONEBOOK, err) from err
    if not (name := options.get(CONF_PHONEBOOK_FILE, "").strip()):
        return Phonebook(plan, entries)
    folder = Path(hass.config.config_dir)
    try:
        file = await hass.async_add_executor_job(read_phonebook_file_in, folder, name, plan)
    except PhonebookError as err:
        raise PhonebookInputError(CONF_PHONEBOOK_FILE, err) from err
    return Phonebook(plan, entries, file.entries)


class CallerNames:
    """The entry's phonebook at run time: names for numbers, PBX extensions first.

    The file is read again when it changes on disk; a file that turns bad or vanishes
    keeps the names read before, with a warning.
    """

    def __init__(
        self, hass: HomeAssistant, entry: SmartPbxConfigEntry, system: SmartPbxSystemCoordinator
    ) -> None:
        self._hass = hass
        self._entry = entry
        self._system = system
        self._file: Path | None = None
        self._file_stamp: tuple[int, int] | None = None
        """The file as last read or tried: it is read again only when this changes."""
        self.phonebook = Phonebook()

    async def async_load(self) -> None:
        """Read the phonebook, the file again whenever it changes; bad input never fails set-up."""
        options = self._entry.options
        try:
            self.phonebook = await async_read_phonebook(
                self._hass, {**options, CONF_PHONEBOOK_FILE: ""}
            )
        except PhonebookInputError as err:
            LOGGER.warning("Phonebook of %s not read: %s", self._entry.title, err)
            return
        if name := options.get(CONF_PHONEBOOK_FILE, "").strip():
            self._file = Path(self._hass.config.config_dir, name)
            await self._async_read_file()
            self._entry.async_on_unload(
                async_track_time_interval(self._hass, self._async_read_file, FILE_CHECK_INTERVAL)
            )

    async def _async_read_file(self, now: datetime | None = None) -> None:
        """Read the file at set-up, then whenever it changed on disk (a timer's ``now``)."""
        assert self._file is not None
        stamp = await self._hass.async_add_executor_job(file_stamp, self._file)
        if now is not None and stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            # Text and dial plan read fine at set-up: only the file can fail here.
            self.phonebook = await async_read_phonebook(self._hass, self._entry.options)
        except PhonebookInputError as err:
            LOGGER.warning(
                "Phonebook file %s not read, its names stay as they were: %s", self._file, err
            )
            return
        LOGGER.debug("Phonebook file %s read: %d numbers", self._file, len(self.phonebook))

    def lookup(self, number: str | None, *, dialled: bool = False) -> NameLookup:
        """The name of ``number``: the PBX's extension name, the phonebook, the file."""
        # Events can arrive before the first poll (a persistent session's queued ones).
        system = self._system.data
        extensions = system.extensions if system is not None else None
        return self.phonebook.lookup(number, dialled=dialled, extensions=extensions)

    def name(self, number: str | None, *, dialled: bool = False) -> str | None:
        return self.lookup(number, dialled=dialled).name

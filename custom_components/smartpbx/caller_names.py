"""Caller names: the entry's phonebook (options text and a vCard/CSV file), looked up.

The options flow and set-up read the options the same way (``async_read_phonebook``).
The file is re-read when it changes on disk (checked every FILE_CHECK_INTERVAL); a file
that turns bad keeps the names read before, with a warning. The PBX's own extension
names always win for its extensions (``Phonebook.lookup``).
"""

from __future__ import annotations

from collections.abc import Mapping
import contextlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval

from .const import LOGGER
from .pbx.phonebook import (
    DialPlan,
    NameLookup,
    Phonebook,
    PhonebookEntry,
    PhonebookError,
    PhonebookFile,
    file_stamp,
    parse_phonebook_text,
    read_phonebook_file,
)

if TYPE_CHECKING:
    from .coordinator import SmartPbxConfigEntry, SmartPbxSystemCoordinator

CONF_PHONEBOOK: Final = "phonebook"
CONF_PHONEBOOK_FILE: Final = "phonebook_file"
CONF_COUNTRY_CODE: Final = "country_code"
CONF_TRUNK_PREFIX: Final = "trunk_prefix"
CONF_INTERNATIONAL_PREFIX: Final = "international_prefix"
CONF_OUTSIDE_LINE_PREFIX: Final = "outside_line_prefix"
PLAN_FIELDS: Final = (
    CONF_COUNTRY_CODE,
    CONF_TRUNK_PREFIX,
    CONF_INTERNATIONAL_PREFIX,
    CONF_OUTSIDE_LINE_PREFIX,
)

FILE_CHECK_INTERVAL: Final = timedelta(minutes=1)
"""How often the phonebook file's modification time and size are compared."""

_PLAN_FIELD_OF_REASON: Final = {
    "invalid_country_code": CONF_COUNTRY_CODE,
    "invalid_trunk_prefix": CONF_TRUNK_PREFIX,
    "invalid_international_prefix": CONF_INTERNATIONAL_PREFIX,
    "invalid_outside_line_prefix": CONF_OUTSIDE_LINE_PREFIX,
}


class PhonebookInputError(Exception):
    """Bad phonebook options: the form field, the error (a translation key), placeholders."""

    def __init__(self, field: str, key: str, placeholders: Mapping[str, str]) -> None:
        super().__init__(f"{field}: {key} {dict(placeholders)}")
        self.field = field
        self.key = key
        self.placeholders = dict(placeholders)


def _input_error(field: str, err: PhonebookError) -> PhonebookInputError:
    field = _PLAN_FIELD_OF_REASON.get(err.reason.value, field)
    return PhonebookInputError(
        field,
        err.reason.value,
        {
            "line": "" if err.line is None else str(err.line),
            "content": err.content,
            "other_line": "" if err.other_line is None else str(err.other_line),
        },
    )


def dial_plan(options: Mapping[str, Any]) -> DialPlan:
    """The options' dial plan; raises PhonebookError naming the bad value."""
    defaults = DialPlan()
    return DialPlan.from_input(
        country_code=options.get(CONF_COUNTRY_CODE, defaults.country_code),
        trunk_prefix=options.get(CONF_TRUNK_PREFIX, defaults.trunk_prefix),
        international_prefix=options.get(CONF_INTERNATIONAL_PREFIX, defaults.international_prefix),
        outside_line_prefix=options.get(CONF_OUTSIDE_LINE_PREFIX, defaults.outside_line_prefix),
    )


def plan_options(plan: DialPlan) -> dict[str, str]:
    """The options' fields of a dial plan."""
    return {
        CONF_COUNTRY_CODE: plan.country_code,
        CONF_TRUNK_PREFIX: plan.trunk_prefix,
        CONF_INTERNATIONAL_PREFIX: plan.international_prefix,
        CONF_OUTSIDE_LINE_PREFIX: plan.outside_line_prefix,
    }


def _file_path(config_dir: str, name: str) -> Path:
    """The file ``name`` inside the configuration folder (blocking: resolves links)."""
    folder = Path(config_dir).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise PhonebookInputError(CONF_PHONEBOOK_FILE, "file_outside_config", {"content": name})
    return path


@dataclass(frozen=True, slots=True)
class PhonebookSources:
    """What the options name, read: the dial plan, the text's entries and the file."""

    plan: DialPlan
    entries: list[PhonebookEntry]
    path: Path | None
    file: PhonebookFile | None

    def phonebook(self) -> Phonebook:
        file_entries = () if self.file is None else self.file.entries
        return Phonebook(self.plan, self.entries, file_entries)


async def async_read_phonebook(hass: HomeAssistant, options: Mapping[str, Any]) -> PhonebookSources:
    """Read the phonebook the options describe; raises PhonebookInputError for bad input."""
    try:
        plan = dial_plan(options)
        entries = parse_phonebook_text(options.get(CONF_PHONEBOOK, ""), plan)
    except PhonebookError as err:
        raise _input_error(CONF_PHONEBOOK, err) from err
    if not (name := options.get(CONF_PHONEBOOK_FILE, "").strip()):
        return PhonebookSources(plan, entries, None, None)

    def read() -> tuple[Path, PhonebookFile]:
        path = _file_path(hass.config.config_dir, name)
        return path, read_phonebook_file(path, plan)

    try:
        path, file = await hass.async_add_executor_job(read)
    except PhonebookError as err:
        raise _input_error(CONF_PHONEBOOK_FILE, err) from err
    return PhonebookSources(plan, entries, path, file)


class CallerNames:
    """The entry's phonebook at run time: names for numbers, PBX extensions first."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartPbxConfigEntry,
        system: SmartPbxSystemCoordinator,
    ) -> None:
        self._hass = hass
        self._entry = entry
        self._system = system
        self._sources: PhonebookSources | None = None
        self._file_stamp: tuple[int, int] | None = None
        """The file as last read or tried: it is read again only when this changes."""
        self.phonebook = Phonebook()

    async def async_load(self) -> None:
        """Read the options' phonebook; bad saved input is logged, never fails set-up."""
        options = self._entry.options
        try:
            sources = await async_read_phonebook(self._hass, options)
        except PhonebookInputError as err:
            # The options flow refuses bad input: the file changed or vanished since.
            LOGGER.warning("Phonebook of %s not read: %s", self._entry.title, err)
            if err.field != CONF_PHONEBOOK_FILE:
                return
            sources = await async_read_phonebook(self._hass, {**options, CONF_PHONEBOOK_FILE: ""})
            with contextlib.suppress(PhonebookInputError):
                path = await self._hass.async_add_executor_job(
                    _file_path, self._hass.config.config_dir, options[CONF_PHONEBOOK_FILE]
                )
                # Watched: the names come once the file is fixed.
                sources = replace(sources, path=path)
                self._file_stamp = await self._hass.async_add_executor_job(file_stamp, path)
        else:
            self._file_stamp = None if sources.file is None else sources.file.stamp
        self._sources = sources
        self.phonebook = sources.phonebook()

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Re-read the file when it changes; returns the unsubscribe."""
        return async_track_time_interval(self._hass, self._async_check_file, FILE_CHECK_INTERVAL)

    async def _async_check_file(self, now: datetime) -> None:
        sources = self._sources
        if sources is None or sources.path is None:
            return
        stamp = await self._hass.async_add_executor_job(file_stamp, sources.path)
        if stamp is None or stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            file = await self._hass.async_add_executor_job(
                read_phonebook_file, sources.path, sources.plan
            )
        except PhonebookError as err:
            LOGGER.warning(
                "Phonebook file %s changed but cannot be read, its names stay as they were: %s",
                sources.path,
                err,
            )
            return
        LOGGER.info("Phonebook file %s read again: %d numbers", sources.path, len(file.entries))
        self._sources = replace(sources, file=file)
        self.phonebook = self._sources.phonebook()

    def lookup(self, number: str | None, *, dialled: bool = False) -> NameLookup:
        """The name of ``number``: the PBX's extension name, the phonebook, the file."""
        # Events can arrive before the first poll (a persistent session's queued ones).
        system = self._system.data
        extensions = system.extensions if system is not None else None
        return self.phonebook.lookup(number, dialled=dialled, extensions=extensions)

    def name(self, number: str | None, *, dialled: bool = False) -> str | None:
        return self.lookup(number, dialled=dialled).name

"""Caller names: number normalisation, the options' phonebook text, vCard and CSV files.

Imports nothing from Home Assistant. Everything here is pure and synchronous; reading a
file (``read_phonebook_file``) does blocking I/O and belongs in an executor.

Which numbers match
===================

A number is first *cleaned*: a ``tel:`` or ``sip:`` URI is reduced to its number, an
``(0)`` in a number starting with ``+`` or ``00`` is dropped (``+49 (0)30 123456`` is how
Germany, the UK or Switzerland write a number whose 0 is not dialled from abroad), then
spaces (also non-breaking and thin ones), dashes, dots, slashes and brackets are
dropped. What is left must be digits, optionally after one leading ``+``; anything else
(``anonymous``, ``Restricted``, letters) is not a phone number and never matches.

Then each cleaned number gets one *canonical form*, and two numbers match when their
canonical forms are equal (one dictionary lookup):

- ``+D`` and ``<international prefix>D`` (``00`` by default; ``011`` in North America)
  are the same international number ``D``.
- When a country calling code ``CC`` is configured, an international number of that
  country, ``+CC N``, is written as it is dialled inside the country: the national
  trunk prefix followed by ``N``. With Germany's ``49`` and trunk prefix ``0``,
  ``+49 30 123456``, ``0049 30 123456`` and ``030 123456`` all become ``030123456``.
  A trunk prefix written after the country code anyway (``+49 030 ...``) is dropped
  first, where the trunk prefix starts with 0: no national number there starts with 0
  (it would read as a prefix), whereas Russia's ``8`` also opens area codes (``812``).
- Every other number (national numbers, local numbers without an area code, short
  numbers, extensions) is left as written.

Why national form and not ``+CC``: turning a national number into ``+CC`` would mean
guessing whether ``30123456`` is a full national number or a local one, and countries
differ on what even marks a national number. Going the other way needs no guess: the
trunk prefix is configured, never inferred. It keeps working where there is no trunk
prefix at all: Italy keeps its 0 in every number (``+39 06 1234 5678`` is dialled
``06 1234 5678`` at home), so Italy, San Marino, Spain, Portugal, Greece, Norway,
Denmark, Poland, the Czech Republic and others configure an *empty* trunk prefix, and
``+39 0612345678`` and ``0612345678`` then match without any 0 being dropped. Countries
with another prefix say so (Hungary ``06``, Russia and Belarus ``8``). In North America
(``1``) the form the carrier shows decides: trunk prefix empty if caller ids arrive as
10 digits (``2125551234``), ``1`` if they arrive as 11 (``12125551234``); the other form
does not match. Without a country code, only ``+D`` and ``00D`` match each other.
``DialPlan.suggested(country)`` prefills these fields for a few dozen countries (from
Home Assistant's country setting, say); the user sees and can change every one.

A number never matches a different number of digits by stripping a guessed prefix:
``123456`` (local) and ``030123456`` (national) stay different numbers.

Dialled numbers
---------------

A PBX often wants an outside-line prefix (``9``, ``0`` or ``82``) before an outside
number. For numbers marked as dialled (``dialled=True``: the destination of an outbound
call), the configured prefix is stripped first, and the number as it came is tried
next (the PBX may already have removed the prefix). The prefix is stripped before the
international prefix is recognised: with outside-line prefix ``0``, ``0030123456`` is
``030123456``, not a number in Greece.

Names and precedence
====================

``Phonebook.lookup`` answers, in this order: the PBX's own name for an extension
(matched on the number exactly as sent; a blank name, or one that only repeats the
number, does not count), the options' phonebook text, the vCard/CSV file, else no
name. Text entries override file entries: they are what the user typed for this PBX.

Text format
===========

One ``number = name`` per line. Blank lines and lines starting with ``#`` are ignored;
the name may contain ``=`` and ``#`` (only the first ``=`` separates). The same number
(after normalisation) on two lines with two different names is an error.

Files
=====

vCard 2.1, 3.0 and 4.0 (``FN``, else ``N``, else ``ORG``, with every ``TEL``; folded
lines, quoted-printable, ``tel:`` URIs and grouped properties such as ``item1.TEL``),
and CSV with ``,``, ``;`` or tab, with or without a header (Outlook's and Google's
exports included). The rule for files is: *missing is fine, wrong is an error*.
Contacts without a number or a name are skipped (exports are full of them) and listed
in ``PhonebookFile.skipped``; something that is there but cannot be read (a broken
vCard, a number with letters in it, an unterminated quote) is a ``PhonebookError``
naming the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
import csv
from dataclasses import dataclass, field
from enum import StrEnum
import io
from pathlib import Path
import quopri
import re
from typing import Final

from .errors import PbxError
from .models import Extension

MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""Larger files are refused (a vCard export with photos grows fast)."""

_CONTENT_PREVIEW = 80
"""An error quotes at most this many characters of the offending line."""


class PhonebookErrorReason(StrEnum):
    """Why a phonebook, a file or a number format was refused (a translation key)."""

    NO_SEPARATOR = "no_separator"
    """A text line without ``=``."""
    NO_NUMBER = "no_number"
    """A text line with nothing before ``=``."""
    NO_NAME = "no_name"
    """A text line with nothing after ``=``."""
    INVALID_NUMBER = "invalid_number"
    """Something written as a number is not a phone number."""
    DUPLICATE = "duplicate"
    """A text line repeats an earlier line's number with another name."""
    FILE_NOT_FOUND = "file_not_found"
    FILE_UNREADABLE = "file_unreadable"
    FILE_TOO_LARGE = "file_too_large"
    FILE_OUTSIDE_CONFIG = "file_outside_config"
    """A file name leading out of the folder files must be in (``..``, a link)."""
    UNKNOWN_FORMAT = "unknown_format"
    """Neither a vCard nor a CSV file."""
    NO_ENTRIES = "no_entries"
    """A readable file without a single name with a number."""
    VCARD_NOT_CLOSED = "vcard_not_closed"
    """``BEGIN:VCARD`` without its ``END:VCARD``."""
    VCARD_NOT_OPENED = "vcard_not_opened"
    """``END:VCARD`` or a property outside a card."""
    VCARD_BAD_LINE = "vcard_bad_line"
    """A line in a card that is not ``NAME:value``."""
    CSV_BAD_ROW = "csv_bad_row"
    """A row the CSV reader cannot read (an unterminated quote)."""
    CSV_NO_NUMBER_COLUMN = "csv_no_number_column"
    CSV_NO_NAME_COLUMN = "csv_no_name_column"
    INVALID_COUNTRY_CODE = "invalid_country_code"
    INVALID_TRUNK_PREFIX = "invalid_trunk_prefix"
    INVALID_INTERNATIONAL_PREFIX = "invalid_international_prefix"
    INVALID_OUTSIDE_LINE_PREFIX = "invalid_outside_line_prefix"


class PhonebookError(PbxError):
    """Bad phonebook input, with the line (1-based) and its text where there is one."""

    def __init__(
        self,
        reason: PhonebookErrorReason,
        *,
        line: int | None = None,
        content: str = "",
        other_line: int | None = None,
    ) -> None:
        self.reason = reason
        self.line = line
        self.content = _preview(content)
        self.other_line = other_line
        """DUPLICATE: the earlier line with the same number."""
        where = f"line {line}: " if line is not None else ""
        what = f": {self.content!r}" if self.content else ""
        also = f" (see line {other_line})" if other_line is not None else ""
        super().__init__(f"{where}{reason.value.replace('_', ' ')}{what}{also}")

    @property
    def placeholders(self) -> dict[str, str]:
        """The line, its text and the other line as text for a message ("" where none)."""
        return {
            "line": "" if self.line is None else str(self.line),
            "content": self.content,
            "other_line": "" if self.other_line is None else str(self.other_line),
        }


def _preview(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _CONTENT_PREVIEW else text[: _CONTENT_PREVIEW - 1] + "…"


# --- numbers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialPlan:
    """How numbers are written where the PBX is. All fields are digit strings.

    ``country_code`` empty means "unknown": then only ``+D`` and ``00D`` match. Build
    one from form input with ``DialPlan.from_input``, which cleans and checks it.
    """

    country_code: str = ""
    """Country calling code without ``+`` (``49``, ``39``, ``1``)."""
    trunk_prefix: str = "0"
    """National trunk prefix: ``0`` in most of Europe, empty in Italy, Spain, ..."""
    international_prefix: str = "00"
    """What is dialled before a country code (``00``; ``011`` in North America)."""
    outside_line_prefix: str = ""
    """The PBX's prefix for an outside line (``9``, ``82``), stripped from dialled numbers."""

    def __post_init__(self) -> None:
        checks = (
            (self.country_code, _COUNTRY_CODE, PhonebookErrorReason.INVALID_COUNTRY_CODE),
            (self.trunk_prefix, _TRUNK_PREFIX, PhonebookErrorReason.INVALID_TRUNK_PREFIX),
            (
                self.international_prefix,
                _INTERNATIONAL_PREFIX,
                PhonebookErrorReason.INVALID_INTERNATIONAL_PREFIX,
            ),
            (
                self.outside_line_prefix,
                _OUTSIDE_LINE_PREFIX,
                PhonebookErrorReason.INVALID_OUTSIDE_LINE_PREFIX,
            ),
        )
        for value, pattern, reason in checks:
            if not pattern.fullmatch(value):
                raise PhonebookError(reason, content=value)
        if self.country_code and not is_country_code(self.country_code):
            raise PhonebookError(
                PhonebookErrorReason.INVALID_COUNTRY_CODE, content=self.country_code
            )
        if self.trunk_prefix and self.trunk_prefix == self.international_prefix:
            raise PhonebookError(
                PhonebookErrorReason.INVALID_TRUNK_PREFIX, content=self.trunk_prefix
            )

    @classmethod
    def suggested(cls, country: str | None) -> DialPlan:
        """A plan to prefill a form for a country (ISO 3166-1 alpha-2, e.g. ``IT``).

        Known for a few dozen countries; otherwise (or for None) no country code. Only
        ever a suggestion: the user sees and can change every field.
        """
        if country is None or (known := _SUGGESTED_PLANS.get(country.upper())) is None:
            return cls()
        code, trunk, international = known
        return cls(country_code=code, trunk_prefix=trunk, international_prefix=international)

    @classmethod
    def from_input(
        cls,
        country_code: str = "",
        trunk_prefix: str = "0",
        international_prefix: str = "00",
        outside_line_prefix: str = "",
    ) -> DialPlan:
        """A plan from what a user typed: spaces ignored, ``+49`` and ``0049`` read as ``49``.

        Raises ``PhonebookError`` (``INVALID_COUNTRY_CODE`` ...) naming the bad value.
        """
        international = _squeeze(international_prefix)
        country = _squeeze(country_code).removeprefix("+")
        if (
            international
            and country.startswith(international)
            and len(country) > len(international)
        ):
            country = country[len(international) :]
        return cls(
            country_code=country,
            trunk_prefix=_squeeze(trunk_prefix),
            international_prefix=international,
            outside_line_prefix=_squeeze(outside_line_prefix),
        )


_COUNTRY_CODE: Final = re.compile(r"(?:[1-9][0-9]{0,2})?")
_ONE_DIGIT_CODES: Final = frozenset({"1", "7"})
# fmt: off
_TWO_DIGIT_CODES: Final = frozenset({
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
    "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
})
# fmt: on


def is_country_code(code: str) -> bool:
    """Whether ``code`` can be an ITU-T E.164 country code.

    Country codes are a prefix code: no code starts with another. ``3`` or ``35`` (for
    ``353``) or ``391`` (``39`` and a digit) cannot be one. Unassigned codes pass.
    """
    if len(code) == 1:
        return code in _ONE_DIGIT_CODES
    if code[:1] in _ONE_DIGIT_CODES:
        return False
    if len(code) == 2:
        return code in _TWO_DIGIT_CODES
    return len(code) == 3 and code.isdigit() and code[:2] not in _TWO_DIGIT_CODES


# Suggestions to prefill a form from a country (ISO 3166-1 alpha-2), never applied
# behind the user's back: (country code, trunk prefix, international prefix).
_SUGGESTED_PLANS: Final[Mapping[str, tuple[str, str, str]]] = {
    **{
        country: (code, "0", "00")
        for country, code in (
            ("AT", "43"),
            ("BE", "32"),
            ("CH", "41"),
            ("DE", "49"),
            ("FI", "358"),
            ("FR", "33"),
            ("GB", "44"),
            ("HR", "385"),
            ("IE", "353"),
            ("IN", "91"),
            ("NL", "31"),
            ("NZ", "64"),
            ("RO", "40"),
            ("SE", "46"),
            ("SI", "386"),
            ("SK", "421"),
            ("TR", "90"),
            ("UA", "380"),
            ("ZA", "27"),
        )
    },
    **{
        country: (code, "", "00")
        for country, code in (
            ("CZ", "420"),
            ("DK", "45"),
            ("ES", "34"),
            ("GR", "30"),
            ("IT", "39"),
            ("LU", "352"),
            ("MT", "356"),
            ("NO", "47"),
            ("PL", "48"),
            ("PT", "351"),
            ("SM", "378"),
        )
    },
    "AU": ("61", "0", "0011"),
    "CA": ("1", "", "011"),
    "HU": ("36", "06", "00"),
    "JP": ("81", "0", "010"),
    "RU": ("7", "8", "810"),
    "US": ("1", "", "011"),
}
_TRUNK_PREFIX: Final = re.compile(r"[0-9]{0,2}")
_INTERNATIONAL_PREFIX: Final = re.compile(r"[0-9]{2,4}")
_OUTSIDE_LINE_PREFIX: Final = re.compile(r"[0-9]{0,4}")


def _squeeze(value: str) -> str:
    return "".join(value.split())


# Dropped from numbers: whitespace of every width, dashes of every kind, dots, slashes,
# brackets.
_SEPARATORS: Final = dict.fromkeys(
    map(ord, " \t\u00a0\u2007\u2009\u202f-\u2010\u2011\u2012\u2013\u2014\u2212./()[]"), None
)
_TRUNK_IN_BRACKETS: Final = re.compile(r"\(\s*0\s*\)")
_URI_USER: Final = re.compile(r"^(?:sips?|tel):([^@;]*)", re.IGNORECASE)


def clean_number(number: str) -> str | None:
    """The number without separators (``+`` and digits only), or None if it is none.

    ``tel:`` and ``sip:`` URIs give their number; ``(0)`` after a ``+`` or ``00`` is
    dropped (see the module's docstring). Plan-independent: this decides what *is* a
    phone number.
    """
    text = number.strip()
    if (uri := _URI_USER.match(text)) is not None:
        text = uri[1]
    if "(" in text and (text.startswith(("+", "00"))):
        text = _TRUNK_IN_BRACKETS.sub("", text, count=1)
    text = text.translate(_SEPARATORS)
    digits = text[1:] if text.startswith("+") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return text


def _canonical(cleaned: str, plan: DialPlan) -> str:
    """The one form all writings of ``cleaned`` share under ``plan`` (module docstring)."""
    if cleaned.startswith("+"):
        international = cleaned[1:]
    elif cleaned.startswith(plan.international_prefix) and len(cleaned) > len(
        plan.international_prefix
    ):
        international = cleaned[len(plan.international_prefix) :]
    else:
        return cleaned
    country = plan.country_code
    if country and international.startswith(country) and len(international) > len(country):
        national = international[len(country) :]
        if plan.trunk_prefix.startswith("0") and national.startswith(plan.trunk_prefix):
            national = national[len(plan.trunk_prefix) :]  # "+49 030 ...", written wrongly
        return plan.trunk_prefix + national
    return "+" + international


def _candidates(number: str, plan: DialPlan, dialled: bool) -> tuple[str, ...]:
    """The canonical forms to look ``number`` up under, most likely first."""
    cleaned = clean_number(number)
    if cleaned is None:
        return ()
    prefix = plan.outside_line_prefix
    if dialled and prefix and cleaned.startswith(prefix) and len(cleaned) > len(prefix):
        return (_canonical(cleaned[len(prefix) :], plan), _canonical(cleaned, plan))
    return (_canonical(cleaned, plan),)


def normalize_number(number: str, plan: DialPlan, *, dialled: bool = False) -> str | None:
    """The canonical form of ``number`` under ``plan``, or None if it is no phone number.

    For a dialled number with the plan's outside-line prefix, the form without the
    prefix (``Phonebook.lookup`` also tries the number as it came).
    """
    candidates = _candidates(number, plan, dialled)
    return candidates[0] if candidates else None


# Extension markers a contact's number may carry; a caller id never does.
_EXTENSION_SUFFIX: Final = re.compile(
    r"\s*(?:;\s*ext\s*=|(?:ext|extension|x)\.?)\s*[0-9]+\s*$", re.IGNORECASE
)


def _contact_number(value: str) -> str:
    """A contact's number without ``tel:`` parameters or an extension suffix."""
    text = value.strip()
    if text[:4].lower() == "tel:":
        text = text[4:].split(";", 1)[0]
    return _EXTENSION_SUFFIX.sub("", text)


# --- entries ------------------------------------------------------------------------------


class NameSource(StrEnum):
    """Where a name came from."""

    EXTENSION = "extension"
    """The PBX's name for one of its extensions."""
    PHONEBOOK = "phonebook"
    """The phonebook text in the options."""
    FILE = "file"
    """The vCard or CSV file."""
    NONE = "none"
    """No name known."""


@dataclass(frozen=True, slots=True)
class PhonebookEntry:
    """A number and its name as written, with the line it came from (1-based)."""

    number: str
    name: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """A contact of a file that gave no entry, and why (``no_number``, ``no_name``...)."""

    line: int
    reason: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class PhonebookFile:
    """What a vCard or CSV file gave."""

    format: str
    """``vcard`` or ``csv``."""
    entries: tuple[PhonebookEntry, ...]
    skipped: tuple[SkippedEntry, ...] = ()
    stamp: tuple[int, int] | None = None
    """``file_stamp`` of the file when it was read (None when parsed from text)."""


def parse_phonebook_text(text: str, plan: DialPlan) -> list[PhonebookEntry]:
    """The options' phonebook: one ``number = name`` a line (see the module's docstring).

    Raises ``PhonebookError`` for the first bad line, naming it.
    """
    entries: list[PhonebookEntry] = []
    seen: dict[str, PhonebookEntry] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        number, separator, name = stripped.partition("=")
        number, name = number.strip(), name.strip()
        if not separator:
            raise PhonebookError(
                PhonebookErrorReason.NO_SEPARATOR, line=line_number, content=stripped
            )
        if not number:
            raise PhonebookError(PhonebookErrorReason.NO_NUMBER, line=line_number, content=stripped)
        if not name:
            raise PhonebookError(PhonebookErrorReason.NO_NAME, line=line_number, content=stripped)
        key = normalize_number(number, plan)
        if key is None:
            raise PhonebookError(
                PhonebookErrorReason.INVALID_NUMBER, line=line_number, content=stripped
            )
        entry = PhonebookEntry(number=number, name=name, line=line_number)
        if (earlier := seen.get(key)) is not None:
            if earlier.name != name:
                raise PhonebookError(
                    PhonebookErrorReason.DUPLICATE,
                    line=line_number,
                    content=stripped,
                    other_line=earlier.line,
                )
            continue
        seen[key] = entry
        entries.append(entry)
    return entries


# --- vCard --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Card:
    line: int
    full_name: str = ""
    structured_name: str = ""
    organization: str = ""
    numbers: list[tuple[int, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.full_name or self.structured_name or self.organization


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Unfolded content lines with the number of their first physical line.

    A line starting with a space or tab continues the one before (RFC 6350 3.2,
    RFC 2426, vCard 2.1); a quoted-printable value ending in ``=`` continues on the next
    line (vCard 2.1's soft line break).
    """
    current: list[str] = []
    start = 0
    quoted_printable = False
    for number, raw in enumerate(text.splitlines(), start=1):
        soft_break = quoted_printable and current[-1].endswith("=")
        if current and soft_break:
            current[-1] = current[-1][:-1]  # the "=" of the soft break
            current.append(raw)
            continue
        if current and raw[:1] in (" ", "\t"):
            current.append(raw[1:])
            continue
        if current:
            yield start, "".join(current)
        current, start = [raw], number
        # Parameters are on the first line; looked at once, so long values stay linear.
        quoted_printable = _is_quoted_printable(raw)
    if current:
        yield start, "".join(current)


def _is_quoted_printable(line: str) -> bool:
    head = _split_content_line(line)
    return head is not None and any(
        param.upper() in ("ENCODING=QUOTED-PRINTABLE", "QUOTED-PRINTABLE") for param in head[1]
    )


def _split_content_line(line: str) -> tuple[str, list[str], str] | None:
    """``[group.]NAME;params:value`` -> (NAME, params, value); None if it is not one."""
    colon = line.find(":")
    if colon < 0:
        return None
    if line.find('"', 0, colon) >= 0:
        # A quoted parameter value may hold ":" (vCard 4.0): find the first one outside.
        colon, in_quotes = -1, False
        for index, char in enumerate(line):
            if char == '"':
                in_quotes = not in_quotes
            elif char == ":" and not in_quotes:
                colon = index
                break
        if colon < 0:
            return None
    name, *params = line[:colon].split(";")
    name = name.strip().rpartition(".")[2].upper()
    if not name:
        return None
    return name, [param.strip() for param in params], line[colon + 1 :]


def _vcard_value(params: list[str], value: str) -> str:
    """The text of a value: quoted-printable decoded (2.1), backslash escapes undone."""
    upper = [param.upper() for param in params]
    if "ENCODING=QUOTED-PRINTABLE" in upper or "QUOTED-PRINTABLE" in upper:
        charset = next(
            (param.split("=", 1)[1] for param in params if param.upper().startswith("CHARSET=")),
            "utf-8",
        )
        data = quopri.decodestring(value.encode("latin-1", errors="replace"))
        try:
            return data.decode(charset)
        except LookupError, UnicodeDecodeError:
            return data.decode("latin-1")
    return value


_ESCAPES: Final = re.compile(r"\\(.)", re.DOTALL)


def _unescape(value: str) -> str:
    return _ESCAPES.sub(lambda m: " " if m[1] in "nN" else m[1], value).strip()


def _split_unescaped(value: str, separator: str) -> list[str]:
    parts = re.split(rf"(?<!\\){re.escape(separator)}", value)
    return [_unescape(part) for part in parts]


def parse_vcard(text: str, plan: DialPlan) -> PhonebookFile:
    """Every ``TEL`` of every card with a name; see the module's docstring for the rules."""
    cards: list[_Card] = []
    card: _Card | None = None
    for line_number, line in _logical_lines(text.lstrip("\ufeff")):
        if not line.strip():
            continue
        parts = _split_content_line(line)
        if parts is None:
            reason = (
                PhonebookErrorReason.VCARD_BAD_LINE
                if card is not None
                else PhonebookErrorReason.VCARD_NOT_OPENED
            )
            raise PhonebookError(reason, line=line_number, content=line)
        name, params, raw_value = parts
        if name == "BEGIN" and raw_value.strip().upper() == "VCARD":
            if card is not None:
                raise PhonebookError(
                    PhonebookErrorReason.VCARD_NOT_CLOSED, line=card.line, content="BEGIN:VCARD"
                )
            card = _Card(line=line_number)
            continue
        if card is None:
            raise PhonebookError(
                PhonebookErrorReason.VCARD_NOT_OPENED, line=line_number, content=line
            )
        if name == "END" and raw_value.strip().upper() == "VCARD":
            cards.append(card)
            card = None
            continue
        if name not in ("FN", "N", "ORG", "TEL"):
            continue
        value = _vcard_value(params, raw_value)
        if name == "FN":
            card.full_name = _unescape(value)
        elif name == "N":
            family, given, additional, *_ = [*_split_unescaped(value, ";"), "", "", ""]
            card.structured_name = " ".join(part for part in (given, additional, family) if part)
        elif name == "ORG":
            card.organization = _split_unescaped(value, ";")[0]
        else:
            card.numbers.append((line_number, value))
    if card is not None:
        raise PhonebookError(
            PhonebookErrorReason.VCARD_NOT_CLOSED, line=card.line, content="BEGIN:VCARD"
        )
    if not cards:
        raise PhonebookError(PhonebookErrorReason.NO_ENTRIES)
    collected = _Collector(plan)
    for card in cards:
        numbers = [(line, _contact_number(value)) for line, value in card.numbers]
        collected.add(card.line, card.name, numbers)
    return collected.result("vcard")


class _Collector:
    """Entries of a file: first name wins for a number, skips and errors recorded."""

    def __init__(self, plan: DialPlan) -> None:
        self._plan = plan
        self._entries: list[PhonebookEntry] = []
        self._skipped: list[SkippedEntry] = []
        self._seen: set[str] = set()

    def add(self, line: int, name: str, numbers: Iterable[tuple[int, str]]) -> None:
        name = " ".join(name.split())  # a quoted CSV cell may span lines
        present = [(at, number.strip()) for at, number in numbers if _has_digit(number)]
        if not present:
            self._skipped.append(SkippedEntry(line, "no_number", name))
            return
        if not name:
            self._skipped.append(SkippedEntry(line, "no_name"))
            return
        for at, number in present:
            key = normalize_number(number, self._plan)
            if key is None:
                raise PhonebookError(PhonebookErrorReason.INVALID_NUMBER, line=at, content=number)
            if key in self._seen:
                self._skipped.append(SkippedEntry(at, "duplicate", name))
                continue
            self._seen.add(key)
            self._entries.append(PhonebookEntry(number=number, name=name, line=at))

    def result(self, file_format: str) -> PhonebookFile:
        if not self._entries:
            raise PhonebookError(PhonebookErrorReason.NO_ENTRIES)
        return PhonebookFile(file_format, tuple(self._entries), tuple(self._skipped))


def _has_digit(text: str) -> bool:
    return any(char.isdigit() for char in text)


# --- CSV ----------------------------------------------------------------------------------

_DELIMITERS: Final = (",", ";", "\t")
_SNIFF_ROWS: Final = 20

_FULL_NAME_HEADERS: Final = frozenset(
    {
        "name",
        "full name",
        "fullname",
        "display name",
        "displayname",
        "contact",
        "contact name",
        "kontakt",
        "nom complet",
        "nome completo",
        "nombre completo",
    }
)
_GIVEN_NAME_HEADERS: Final = frozenset(
    {"first name", "firstname", "given name", "vorname", "prénom", "prenom", "nombre"}
)
_MIDDLE_NAME_HEADERS: Final = frozenset({"middle name", "additional name", "zweiter vorname"})
_FAMILY_NAME_HEADERS: Final = frozenset(
    {
        "last name",
        "lastname",
        "family name",
        "surname",
        "nachname",
        "nom",
        "cognome",
        "apellido",
        "apellidos",
    }
)
_ORGANIZATION_HEADERS: Final = frozenset(
    {
        "company",
        "organization",
        "organisation",
        "organization name",
        "organization 1 - name",
        "firma",
        "azienda",
        "empresa",
        "société",
        "societe",
    }
)
_NUMBER_HEADER_WORDS: Final = (
    "phone",
    "number",
    "tel",
    "mobile",
    "cell",
    "nummer",
    "handy",
    "numero",
    "número",
    "téléphone",
    "telefono",
    "teléfono",
    "portable",
    "cellulare",
    "movil",
    "móvil",
)
_NOT_NUMBER_HEADER_WORDS: Final = ("type", "label", "fax", "pager", "extension")
_MULTIPLE_VALUES: Final = ":::"
"""Google Contacts puts several numbers in one cell: ``+49 30 1 ::: +49 170 2``."""


def _looks_like_number(cell: str) -> bool:
    cleaned = clean_number(_contact_number(cell)) if cell.strip() else None
    return cleaned is not None and sum(char.isdigit() for char in cleaned) >= 3


def _choose_delimiter(text: str) -> str:
    """The delimiter that splits the first rows into the same number (>= 2) of columns."""
    sample = [line for line in text.splitlines() if line.strip()][:_SNIFF_ROWS]
    best, best_score = ",", (False, 0)
    for delimiter in _DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(sample, delimiter=delimiter)]
        except csv.Error:
            continue
        if not widths or max(widths) < 2:
            continue
        score = (len(set(widths)) == 1, sorted(widths)[len(widths) // 2])
        if score > best_score:
            best, best_score = delimiter, score
    return best


@dataclass(slots=True)
class _Columns:
    numbers: list[int] = field(default_factory=list)
    full: int | None = None
    given: int | None = None
    middle: int | None = None
    family: int | None = None
    organization: int | None = None

    def name(self, row: list[str]) -> str:
        def cell(index: int | None) -> str:
            return row[index].strip() if index is not None and index < len(row) else ""

        if full := cell(self.full):
            return full
        if person := " ".join(
            part for part in (cell(self.given), cell(self.middle), cell(self.family)) if part
        ):
            return person
        return cell(self.organization)

    @property
    def has_name(self) -> bool:
        return any(
            index is not None
            for index in (self.full, self.given, self.middle, self.family, self.organization)
        )


def _columns_from_header(header: list[str]) -> _Columns:
    columns = _Columns()
    for index, title in enumerate(header):
        label = " ".join(title.strip().lower().split())
        if label in _FULL_NAME_HEADERS and columns.full is None:
            columns.full = index
        elif label in _GIVEN_NAME_HEADERS and columns.given is None:
            columns.given = index
        elif label in _MIDDLE_NAME_HEADERS and columns.middle is None:
            columns.middle = index
        elif label in _FAMILY_NAME_HEADERS and columns.family is None:
            columns.family = index
        elif label in _ORGANIZATION_HEADERS and columns.organization is None:
            columns.organization = index
        elif any(word in label for word in _NUMBER_HEADER_WORDS) and not any(
            word in label for word in _NOT_NUMBER_HEADER_WORDS
        ):
            columns.numbers.append(index)
    return columns


def _columns_from_content(rows: list[tuple[int, list[str]]], columns: _Columns) -> None:
    """Fill in the number and/or name column from what the cells hold."""
    width = max(len(row) for _, row in rows)
    if not columns.numbers:
        best, best_count = None, 0
        for index in range(width):
            cells = [row[index] for _, row in rows[:50] if index < len(row) and row[index].strip()]
            count = sum(_looks_like_number(cell) for cell in cells)
            if count > best_count and count * 2 > len(cells):
                best, best_count = index, count
        if best is not None:
            columns.numbers.append(best)
    if not columns.has_name:
        for index in range(width):
            if index in columns.numbers:
                continue
            if any(index < len(row) and row[index].strip() for _, row in rows):
                columns.full = index
                break


def parse_csv(text: str, plan: DialPlan) -> PhonebookFile:
    """Names and numbers of a CSV export; see the module's docstring for the rules."""
    text = text.lstrip("\ufeff")
    delimiter = _choose_delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        bad_line = text.splitlines()[start - 1] if start <= len(text.splitlines()) else ""
        raise PhonebookError(
            PhonebookErrorReason.CSV_BAD_ROW, line=start, content=bad_line
        ) from err
    if not rows:
        raise PhonebookError(PhonebookErrorReason.NO_ENTRIES)
    header_line, first = rows[0]
    if any(_looks_like_number(cell) for cell in first):
        columns, data = _Columns(), rows
    else:
        columns, data = _columns_from_header(first), rows[1:]
    if not data:
        raise PhonebookError(PhonebookErrorReason.NO_ENTRIES)
    _columns_from_content(data, columns)
    header_text = delimiter.join(first)
    if not columns.numbers:
        raise PhonebookError(
            PhonebookErrorReason.CSV_NO_NUMBER_COLUMN, line=header_line, content=header_text
        )
    if not columns.has_name:
        raise PhonebookError(
            PhonebookErrorReason.CSV_NO_NAME_COLUMN, line=header_line, content=header_text
        )
    collected = _Collector(plan)
    for line, row in data:
        numbers = [
            (line, part)
            for index in columns.numbers
            if index < len(row)
            for part in row[index].split(_MULTIPLE_VALUES)
        ]
        collected.add(line, columns.name(row), numbers)
    return collected.result("csv")


# --- files --------------------------------------------------------------------------------

_VCARD_SUFFIXES: Final = frozenset({".vcf", ".vcard"})
_CSV_SUFFIXES: Final = frozenset({".csv", ".tsv", ".txt"})


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(modification time in ns, size) of ``path``, or None when it cannot be read.

    Compare two stamps to see whether the file changed since it was read.
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def decode_file(data: bytes) -> str:
    """The text of a contacts file: UTF-8 or UTF-16 with a BOM, UTF-8, else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_phonebook_file(path: Path, plan: DialPlan) -> PhonebookFile:
    """Read and parse a vCard (``.vcf``) or CSV file (blocking I/O: use an executor).

    The format comes from the suffix (``.vcf``/``.vcard``, ``.csv``/``.tsv``/``.txt``),
    else from the content. Raises ``PhonebookError`` (``FILE_NOT_FOUND``, ...).
    """
    stamp = file_stamp(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as err:
        raise PhonebookError(PhonebookErrorReason.FILE_NOT_FOUND, content=str(path)) from err
    except OSError as err:
        raise PhonebookError(PhonebookErrorReason.FILE_UNREADABLE, content=str(path)) from err
    if len(data) > MAX_FILE_BYTES:
        raise PhonebookError(PhonebookErrorReason.FILE_TOO_LARGE, content=str(path))
    text = decode_file(data)
    suffix = path.suffix.lower()
    is_vcard = suffix in _VCARD_SUFFIXES or (
        suffix not in _CSV_SUFFIXES and text.lstrip("\ufeff \r\n\t")[:11].upper() == "BEGIN:VCARD"
    )
    if is_vcard:
        parsed = parse_vcard(text, plan)
    elif suffix in _CSV_SUFFIXES:
        parsed = parse_csv(text, plan)
    else:
        raise PhonebookError(PhonebookErrorReason.UNKNOWN_FORMAT, content=str(path))
    return PhonebookFile(parsed.format, parsed.entries, parsed.skipped, stamp)


def read_phonebook_file_in(folder: Path, name: str, plan: DialPlan) -> PhonebookFile:
    """``read_phonebook_file`` of the file ``name`` inside ``folder`` (blocking I/O).

    Raises ``PhonebookError`` (``FILE_OUTSIDE_CONFIG``) when ``name`` leads out of it.
    """
    folder = folder.resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise PhonebookError(PhonebookErrorReason.FILE_OUTSIDE_CONFIG, content=name)
    return read_phonebook_file(path, plan)


# --- lookup -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameLookup:
    """A lookup's answer: the name (None when unknown) and where it came from."""

    name: str | None
    source: NameSource
    number: str | None
    """The canonical form the number was looked up under (None: not a phone number)."""


def extension_name(number: str, extensions: Mapping[str, Extension]) -> str | None:
    """The PBX's name for extension ``number``: not blank and not just its number again."""
    extension = extensions.get(number)
    return None if extension is None else extension.own_name


class Phonebook:
    """Names for numbers: one dictionary lookup per canonical form (see the docstring).

    Immutable: build a new one when the options or the file change. Entries with a
    number that is no phone number are ignored (the parsers refuse them earlier).
    """

    __slots__ = ("_index", "plan")

    def __init__(
        self,
        plan: DialPlan | None = None,
        entries: Iterable[PhonebookEntry] = (),
        file_entries: Iterable[PhonebookEntry] = (),
    ) -> None:
        self.plan = plan or DialPlan()
        index: dict[str, tuple[str, NameSource]] = {}
        for source, group in ((NameSource.FILE, file_entries), (NameSource.PHONEBOOK, entries)):
            for entry in group:
                if (key := normalize_number(entry.number, self.plan)) is not None:
                    # Text after file: what the user typed overrides the file.
                    index[key] = (entry.name, source)
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def lookup(
        self,
        number: str | None,
        *,
        dialled: bool = False,
        extensions: Mapping[str, Extension] | None = None,
    ) -> NameLookup:
        """The name for ``number``: PBX extension, then phonebook text, then file.

        ``dialled``: the number was dialled out (strip the outside-line prefix first).
        ``extensions``: the PBX's extensions by number, whose names win. Never raises:
        a caller id that is no phone number (``anonymous``) simply has no name.
        """
        if not number:
            return NameLookup(None, NameSource.NONE, None)
        text = number.strip()
        if extensions and (name := extension_name(text, extensions)) is not None:
            return NameLookup(name, NameSource.EXTENSION, text)
        candidates = _candidates(text, self.plan, dialled)
        for key in candidates:
            if (found := self._index.get(key)) is not None:
                return NameLookup(found[0], found[1], key)
        return NameLookup(None, NameSource.NONE, candidates[0] if candidates else None)

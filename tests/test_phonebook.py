"""The phonebook: number forms, the options' text, vCard and CSV files, lookup precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.smartpbx.pbx import phonebook
from custom_components.smartpbx.pbx.models import Extension, ExtensionState, ExtensionType
from custom_components.smartpbx.pbx.phonebook import (
    MAX_FILE_BYTES,
    DialPlan,
    NameSource,
    Phonebook,
    PhonebookEntry,
    PhonebookError,
    PhonebookErrorReason as Reason,
    clean_number,
    decode_file,
    file_stamp,
    is_country_code,
    normalize_number,
    parse_csv,
    parse_phonebook_text,
    parse_vcard,
    read_phonebook_file,
    read_phonebook_file_in,
)

GERMANY = DialPlan(country_code="49", trunk_prefix="0")
ITALY = DialPlan(country_code="39", trunk_prefix="")
HUNGARY = DialPlan(country_code="36", trunk_prefix="06")
NANP = DialPlan(country_code="1", trunk_prefix="", international_prefix="011")
RUSSIA = DialPlan(country_code="7", trunk_prefix="8", international_prefix="810")
NO_COUNTRY = DialPlan()
WITH_OUTSIDE_LINE = DialPlan(country_code="49", outside_line_prefix="9")
WITH_OUTSIDE_LINE_0 = DialPlan(country_code="49", outside_line_prefix="0")

# --- numbers --------------------------------------------------------------------------------

NUMBER_FORMS = [
    # (plan, written, canonical)
    (GERMANY, "030 123456", "030123456"),
    (GERMANY, "030-123456", "030123456"),
    (GERMANY, "030.123.456", "030123456"),
    (GERMANY, "(030) 123456", "030123456"),
    (GERMANY, "030/123 45-6", "030123456"),
    (GERMANY, "+49 30 123456", "030123456"),
    (GERMANY, "+49 (0)30 123456", "030123456"),
    (GERMANY, "0049 30 123456", "030123456"),
    (GERMANY, "0049 (0) 30 123456", "030123456"),
    (GERMANY, "+49 030 123456", "030123456"),
    (GERMANY, "+49\u00a030\u2009123\u2013456", "030123456"),
    (GERMANY, "tel:+49-30-123456", "030123456"),
    (GERMANY, "sip:+4930123456@192.168.1.1", "030123456"),
    (GERMANY, "  +4930123456  ", "030123456"),
    (GERMANY, "123456", "123456"),  # local: not turned into a national number
    (GERMANY, "2002", "2002"),  # an extension stays itself
    (GERMANY, "+33 1 42 27 81 86", "+33142278186"),
    (GERMANY, "0033 1 42 27 81 86", "+33142278186"),
    (GERMANY, "+4", "+4"),  # too short to hold the country code: left international
    (ITALY, "+39 06 1234 5678", "0612345678"),  # Italy keeps its 0
    (ITALY, "0039 06 12345678", "0612345678"),
    (ITALY, "06 1234 5678", "0612345678"),
    (ITALY, "+39 333 123 4567", "3331234567"),  # a mobile, no 0 at all
    (ITALY, "333 1234567", "3331234567"),
    (ITALY, "+49 30 123456", "+4930123456"),
    (HUNGARY, "+36 1 234 5678", "0612345678"),
    (HUNGARY, "06 1 234 5678", "0612345678"),
    (NANP, "+1 (212) 555-1234", "2125551234"),
    (NANP, "011 44 20 7946 0000", "+442079460000"),
    (NANP, "212.555.1234", "2125551234"),
    (RUSSIA, "+7 812 123-45-67", "88121234567"),  # 812 is no stray trunk prefix
    (RUSSIA, "8 (812) 123-45-67", "88121234567"),
    (RUSSIA, "810 49 30 123456", "+4930123456"),
    (NO_COUNTRY, "+49 30 123456", "+4930123456"),
    (NO_COUNTRY, "0049 30 123456", "+4930123456"),
    (NO_COUNTRY, "030 123456", "030123456"),  # no country: national is not international
]


@pytest.mark.parametrize(("plan", "written", "canonical"), NUMBER_FORMS)
def test_number_forms(plan: DialPlan, written: str, canonical: str) -> None:
    assert normalize_number(written, plan) == canonical


@pytest.mark.parametrize(
    "written",
    ["", "   ", "anonymous", "Restricted", "+", "++4930", "12a34", "1-800-FLOWERS", "٠١٢٣", "*31#"],
)
def test_what_is_not_a_phone_number(written: str) -> None:
    assert clean_number(written) is None
    assert normalize_number(written, GERMANY) is None


def test_without_a_country_national_and_international_stay_apart() -> None:
    assert normalize_number("030 123456", NO_COUNTRY) != normalize_number(
        "+49 30 123456", NO_COUNTRY
    )


@pytest.mark.parametrize(
    ("plan", "dialled", "canonical"),
    [
        (WITH_OUTSIDE_LINE, "9 030 123456", "030123456"),
        (WITH_OUTSIDE_LINE, "9 0049 30 123456", "030123456"),
        (WITH_OUTSIDE_LINE, "9", "9"),  # only the prefix: nothing to strip
        (WITH_OUTSIDE_LINE_0, "0030123456", "030123456"),  # not Greece: 0 is the line
        (DialPlan(country_code="49", outside_line_prefix="82"), "82 0612345678", "0612345678"),
    ],
)
def test_the_outside_line_prefix_is_stripped_from_dialled_numbers(
    plan: DialPlan, dialled: str, canonical: str
) -> None:
    assert normalize_number(dialled, plan, dialled=True) == canonical


def test_the_outside_line_prefix_stays_on_numbers_not_dialled() -> None:
    assert normalize_number("9 030 123456", WITH_OUTSIDE_LINE) == "9030123456"
    assert normalize_number("0030123456", WITH_OUTSIDE_LINE_0) == "+30123456"


@pytest.mark.parametrize(
    ("kwargs", "plan"),
    [
        ({"country_code": "+49"}, DialPlan(country_code="49")),
        ({"country_code": "0049"}, DialPlan(country_code="49")),
        ({"country_code": " 3 9 ", "trunk_prefix": ""}, ITALY),
        ({"country_code": "011 1", "international_prefix": "011", "trunk_prefix": ""}, NANP),
        ({"outside_line_prefix": " 82 "}, DialPlan(outside_line_prefix="82")),
        ({}, DialPlan()),
    ],
)
def test_dial_plan_from_form_input(kwargs: dict[str, str], plan: DialPlan) -> None:
    assert DialPlan.from_input(**kwargs) == plan


@pytest.mark.parametrize("code", ["1", "7", "20", "39", "49", "98", "353", "420", "886", "998"])
def test_country_codes(code: str) -> None:
    assert DialPlan(country_code=code).country_code == code


@pytest.mark.parametrize(
    ("country", "plan"),
    [
        ("DE", DialPlan(country_code="49", trunk_prefix="0")),
        ("it", ITALY),
        ("US", NANP),
        ("HU", HUNGARY),
        ("AQ", DialPlan()),  # not known: no country code
        (None, DialPlan()),
    ],
)
def test_suggested_plans(country: str | None, plan: DialPlan) -> None:
    assert DialPlan.suggested(country) == plan


def test_every_suggested_plan_is_valid() -> None:
    for country in phonebook._SUGGESTED_PLANS:
        assert is_country_code(DialPlan.suggested(country).country_code), country


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"country_code": "4a"}, Reason.INVALID_COUNTRY_CODE),
        ({"country_code": "1234"}, Reason.INVALID_COUNTRY_CODE),
        ({"country_code": "0"}, Reason.INVALID_COUNTRY_CODE),
        ({"country_code": "3"}, Reason.INVALID_COUNTRY_CODE),  # 3x: two digits at least
        ({"country_code": "35"}, Reason.INVALID_COUNTRY_CODE),  # 35x: three digits
        ({"country_code": "391"}, Reason.INVALID_COUNTRY_CODE),  # 39 and a digit
        ({"country_code": "12"}, Reason.INVALID_COUNTRY_CODE),  # 1 and a digit
        ({"trunk_prefix": "012"}, Reason.INVALID_TRUNK_PREFIX),
        ({"trunk_prefix": "00"}, Reason.INVALID_TRUNK_PREFIX),  # the international prefix
        ({"international_prefix": ""}, Reason.INVALID_INTERNATIONAL_PREFIX),
        ({"international_prefix": "+"}, Reason.INVALID_INTERNATIONAL_PREFIX),
        ({"outside_line_prefix": "9#"}, Reason.INVALID_OUTSIDE_LINE_PREFIX),
    ],
)
def test_dial_plan_refuses_bad_input(kwargs: dict[str, str], reason: Reason) -> None:
    with pytest.raises(PhonebookError) as caught:
        DialPlan.from_input(**kwargs)
    assert caught.value.reason is reason


# --- the options' text ------------------------------------------------------------------------


def test_phonebook_text() -> None:
    text = (
        "\n# Family\n030 123456 = Anna Schmidt\n+39 06 1234 5678=Luca Rossi (office)\n"
        "\n   0612345678 = Chez Marie = Paris   \n"
        "# the name may hold # and =\n5551234 = Room #3\n"
    )
    entries = parse_phonebook_text(text, GERMANY)
    assert entries == [
        PhonebookEntry("030 123456", "Anna Schmidt", 3),
        PhonebookEntry("+39 06 1234 5678", "Luca Rossi (office)", 4),
        PhonebookEntry("0612345678", "Chez Marie = Paris", 6),
        PhonebookEntry("5551234", "Room #3", 8),
    ]


def test_an_empty_phonebook_text_is_fine() -> None:
    assert parse_phonebook_text("", GERMANY) == []
    assert parse_phonebook_text("\n# nothing yet\n\n", GERMANY) == []


@pytest.mark.parametrize(
    ("text", "reason", "line", "content"),
    [
        ("030 123456 = Anna\nLuca Rossi\n", Reason.NO_SEPARATOR, 2, "Luca Rossi"),
        ("# x\n\n = Luca\n", Reason.NO_NUMBER, 3, "= Luca"),
        ("030 123456 =   \n", Reason.NO_NAME, 1, "030 123456 ="),
        ("1\n", Reason.NO_SEPARATOR, 1, "1"),
        ("Luca = 030 123456\n", Reason.INVALID_NUMBER, 1, "Luca = 030 123456"),
        ("0800-FLOWERS = Shop\n", Reason.INVALID_NUMBER, 1, "0800-FLOWERS = Shop"),
        ("030 123456 = Anna\n+49 30 123456 = Bob\n", Reason.DUPLICATE, 2, "+49 30 123456 = Bob"),
    ],
)
def test_phonebook_text_errors_name_the_line(
    text: str, reason: Reason, line: int, content: str
) -> None:
    with pytest.raises(PhonebookError) as caught:
        parse_phonebook_text(text, GERMANY)
    assert caught.value.reason is reason
    assert caught.value.line == line
    assert caught.value.content == content
    assert f"line {line}" in str(caught.value)


def test_a_duplicate_names_the_earlier_line_and_the_same_name_twice_is_fine() -> None:
    with pytest.raises(PhonebookError) as caught:
        parse_phonebook_text("# a\n030 123456 = Anna\n\n0049 30 123456 = Bob\n", GERMANY)
    assert (caught.value.line, caught.value.other_line) == (4, 2)
    assert caught.value.placeholders == {
        "line": "4",
        "content": "0049 30 123456 = Bob",
        "other_line": "2",
    }
    assert PhonebookError(Reason.FILE_NOT_FOUND).placeholders == dict.fromkeys(
        ("line", "content", "other_line"), ""
    )
    assert parse_phonebook_text("030 123456 = Anna\n+49 30 123456 = Anna\n", GERMANY) == [
        PhonebookEntry("030 123456", "Anna", 1)
    ]


def test_long_lines_are_shortened_in_errors() -> None:
    with pytest.raises(PhonebookError) as caught:
        parse_phonebook_text("x" * 500, GERMANY)
    assert len(caught.value.content) == 80
    assert caught.value.content.endswith("…")


# --- vCard --------------------------------------------------------------------------------

VCARD_21 = """BEGIN:VCARD
VERSION:2.1
N:Schmidt;Anna;;;
FN:Anna Schmidt
TEL;HOME;VOICE:030 123456
TEL;CELL:+49 170 1234567
END:VCARD
BEGIN:VCARD
VERSION:2.1
N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Garc=C3=ADa;Sof=C3=ADa;;;
FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Sof=C3=ADa Garc=C3=ADa =
(B=C3=BCro)
TEL;WORK:+34 91 123 45 67
END:VCARD
"""

VCARD_30 = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "FN:Dubois\\, Marie\r\n"
    "N:Dubois;Marie;;;\r\n"
    "item1.TEL;TYPE=CELL,VOICE:+33 1 42 27\r\n"
    "  81 86\r\n"
    "EMAIL:marie@example.com\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:MIICajCCAdOgAwIBAgICBEUwDQYJKoZIhvcNAQEEBQAwdzELMAkGA1UEBhMCVVMx\r\n"
    " LDAqBgNVBAoTI05ldHNjYXBlIENvbW11bmljYXRpb25zIENvcnBvcmF0aW9uMRww==\r\n"
    "END:VCARD\r\n"
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "N:Novak;Jan;;;\r\n"
    "TEL;TYPE=WORK:030 987654 ext. 12\r\n"
    "TEL;TYPE=HOME:030 55555x7\r\n"
    "END:VCARD\r\n"
)

VCARD_40 = """BEGIN:VCARD
VERSION:4.0
FN:Pizzeria Napoli
TEL;VALUE=uri;TYPE="voice,work":tel:+39-081-555-1234;ext=5
TEL;VALUE=uri:tel:+39-333-123-4567
END:VCARD
BEGIN:VCARD
VERSION:4.0
ORG:Stadtwerke;Kundendienst
TEL:0800 1234567
END:VCARD
"""


def test_vcard_21() -> None:
    parsed = parse_vcard(VCARD_21, GERMANY)
    assert parsed.format == "vcard"
    assert [(e.number, e.name, e.line) for e in parsed.entries] == [
        ("030 123456", "Anna Schmidt", 5),
        ("+49 170 1234567", "Anna Schmidt", 6),
        ("+34 91 123 45 67", "Sofía García (Büro)", 13),
    ]


def test_vcard_30_folded_escaped_grouped_and_n_without_fn() -> None:
    parsed = parse_vcard(VCARD_30, GERMANY)
    assert [(e.number, e.name) for e in parsed.entries] == [
        ("+33 1 42 27 81 86", "Dubois, Marie"),
        ("030 987654", "Jan Novak"),
        ("030 55555", "Jan Novak"),
    ]


def test_vcard_40_tel_uris_and_org_as_name() -> None:
    parsed = parse_vcard(VCARD_40, ITALY)
    assert [(e.number, e.name) for e in parsed.entries] == [
        ("+39-081-555-1234", "Pizzeria Napoli"),
        ("+39-333-123-4567", "Pizzeria Napoli"),
        ("0800 1234567", "Stadtwerke"),
    ]
    book = Phonebook(ITALY, file_entries=parsed.entries)
    assert book.lookup("0815551234").name == "Pizzeria Napoli"


def test_vcard_quoted_parameters_blank_lines_and_unknown_charsets() -> None:
    text = (
        'BEGIN:VCARD\nVERSION:4.0\nFN:Colon\nTEL;TYPE="x:y":+49 30 1\nEND:VCARD\n'
        "\n\n"
        "BEGIN:VCARD\nVERSION:2.1\n"
        "FN;ENCODING=QUOTED-PRINTABLE;CHARSET=X-UNKNOWN:Sof=EDa\nTEL:030 2\nEND:VCARD\n"
    )
    parsed = parse_vcard(text, GERMANY)
    assert [(e.number, e.name) for e in parsed.entries] == [
        ("+49 30 1", "Colon"),
        ("030 2", "Sofía"),
    ]


def test_vcard_skips_contacts_without_number_or_name_and_repeated_numbers() -> None:
    text = (
        "BEGIN:VCARD\nFN:Only Mail\nEMAIL:a@b.c\nEND:VCARD\n"
        "BEGIN:VCARD\nTEL:030 111\nEND:VCARD\n"
        "BEGIN:VCARD\nFN:Empty Tel\nTEL:\nEND:VCARD\n"
        "BEGIN:VCARD\nFN:First\nTEL:030 222\nEND:VCARD\n"
        "BEGIN:VCARD\nFN:Second\nTEL:+49 30 222\nEND:VCARD\n"
    )
    parsed = parse_vcard(text, GERMANY)
    assert [(e.number, e.name) for e in parsed.entries] == [("030 222", "First")]
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (1, "no_number"),
        (5, "no_name"),
        (8, "no_number"),
        (18, "duplicate"),
    ]


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("BEGIN:VCARD\nFN:Anna\nTEL:030 1\n", Reason.VCARD_NOT_CLOSED, 1),
        ("BEGIN:VCARD\nFN:A\nBEGIN:VCARD\nFN:B\nEND:VCARD\n", Reason.VCARD_NOT_CLOSED, 1),
        ("FN:Anna\nBEGIN:VCARD\nEND:VCARD\n", Reason.VCARD_NOT_OPENED, 1),
        ("BEGIN:VCARD\nFN:A\nTEL:1\nEND:VCARD\nEND:VCARD\n", Reason.VCARD_NOT_OPENED, 5),
        ("BEGIN:VCARD\nFN:Anna\nthis is no property\nEND:VCARD\n", Reason.VCARD_BAD_LINE, 3),
        ('BEGIN:VCARD\nFN:Anna\nTEL;TYPE="a:b\nEND:VCARD\n', Reason.VCARD_BAD_LINE, 3),
        ("BEGIN:VCARD\nFN:Anna\n:030 1\nEND:VCARD\n", Reason.VCARD_BAD_LINE, 3),
        ("BEGIN:VCARD\nFN:Anna\nTEL:030 CALL ME\nEND:VCARD\n", Reason.INVALID_NUMBER, 3),
        ("BEGIN:VCARD\nFN:Anna\nEND:VCARD\n", Reason.NO_ENTRIES, None),
        ("", Reason.NO_ENTRIES, None),
    ],
)
def test_broken_vcards(text: str, reason: Reason, line: int | None) -> None:
    with pytest.raises(PhonebookError) as caught:
        parse_vcard(text, GERMANY)
    assert caught.value.reason is reason
    assert caught.value.line == line


# --- CSV ----------------------------------------------------------------------------------


def test_csv_with_header_and_semicolons() -> None:
    text = "Name;Telefon\nAnna Schmidt;030 123456\nRossi, Luca;+39 06 1234 5678\n"
    parsed = parse_csv(text, GERMANY)
    assert parsed.format == "csv"
    assert [(e.number, e.name, e.line) for e in parsed.entries] == [
        ("030 123456", "Anna Schmidt", 2),
        ("+39 06 1234 5678", "Rossi, Luca", 3),
    ]


def test_csv_without_header_number_first_with_commas() -> None:
    text = '030 123456,Anna Schmidt\n"+33 1 42 27 81 86","Dubois, Marie"\n'
    parsed = parse_csv(text, GERMANY)
    assert [(e.number, e.name, e.line) for e in parsed.entries] == [
        ("030 123456", "Anna Schmidt", 1),
        ("+33 1 42 27 81 86", "Dubois, Marie", 2),
    ]


def test_csv_with_tabs_and_unknown_headers() -> None:
    text = "Wer\tWas\tWo\nAnna\t030 123456\tBerlin\nBob\t0612345678\tParis\n"
    parsed = parse_csv(text, GERMANY)
    assert [(e.number, e.name) for e in parsed.entries] == [
        ("030 123456", "Anna"),
        ("0612345678", "Bob"),
    ]


def test_csv_outlook_export() -> None:
    text = (
        '"First Name","Middle Name","Last Name","Company","Business Fax",'
        '"Business Phone","Home Phone","Mobile Phone","E-mail Address"\r\n'
        '"Anna","","Schmidt","","030 999","030 123456","","+49 170 1234567","a@b.c"\r\n'
        '"","","","Stadtwerke","","0800 1234567","","",""\r\n'
        '"Mail","","Only","","","","","","m@o.c"\r\n'
    )
    parsed = parse_csv(text, GERMANY)
    assert [(e.number, e.name, e.line) for e in parsed.entries] == [
        ("030 123456", "Anna Schmidt", 2),
        ("+49 170 1234567", "Anna Schmidt", 2),
        ("0800 1234567", "Stadtwerke", 3),
    ]
    assert [(s.line, s.reason) for s in parsed.skipped] == [(4, "no_number")]


def test_csv_google_export_with_several_numbers_in_a_cell() -> None:
    text = (
        "Name,Given Name,Family Name,Phone 1 - Type,Phone 1 - Value,"
        "Phone 2 - Type,Phone 2 - Value\n"
        "Luca Rossi,Luca,Rossi,Mobile,+39 333 123 4567 ::: +39 06 1234 5678,Work,\n"
    )
    parsed = parse_csv(text, ITALY)
    assert [(e.number, e.name) for e in parsed.entries] == [
        ("+39 333 123 4567", "Luca Rossi"),
        ("+39 06 1234 5678", "Luca Rossi"),
    ]


def test_csv_rows_spanning_lines_keep_their_first_line() -> None:
    text = 'name,number\n"Anna\nSchmidt",030 1\nBob,030 2\n'
    parsed = parse_csv(text, GERMANY)
    assert [(e.name, e.line) for e in parsed.entries] == [("Anna Schmidt", 2), ("Bob", 4)]


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("name,number\nAnna,030 123456\nBob,030 CALL ME\n", Reason.INVALID_NUMBER, 3),
        ('name,number\nAnna,030 123456\n"Bob,030 2\n', Reason.CSV_BAD_ROW, 3),
        ('name,number\nAnna,"030 1"x\n', Reason.CSV_BAD_ROW, 2),
        ("name,number\nAnna,030 1\nBob," + "1" * 200_000 + "\n", Reason.CSV_BAD_ROW, 3),
        ("name,city\nAnna,Berlin\nBob,Paris\n", Reason.CSV_NO_NUMBER_COLUMN, 1),
        ("name,number\nAnna,\nBob, \n", Reason.NO_ENTRIES, None),
        ("number\n030 123456\n030 654321\n", Reason.CSV_NO_NAME_COLUMN, 1),
        ("Nummer;Typ\n030 123456;\n030 654321;\n", Reason.CSV_NO_NAME_COLUMN, 1),
        ("name,number\n", Reason.NO_ENTRIES, None),
        ("\n\n", Reason.NO_ENTRIES, None),
    ],
)
def test_broken_csv(text: str, reason: Reason, line: int | None) -> None:
    with pytest.raises(PhonebookError) as caught:
        parse_csv(text, GERMANY)
    assert caught.value.reason is reason
    assert caught.value.line == line


# --- files --------------------------------------------------------------------------------


def test_reading_files(tmp_path: Path) -> None:
    vcard = tmp_path / "contacts.vcf"
    vcard.write_text(VCARD_21, encoding="utf-8")
    parsed = read_phonebook_file(vcard, GERMANY)
    assert parsed.format == "vcard"
    assert len(parsed.entries) == 3
    assert parsed.stamp == file_stamp(vcard)

    csv_file = tmp_path / "contacts.csv"
    csv_file.write_bytes("Name;Nummer\nJürgen Groß;030 1\n".encode("cp1252"))
    parsed = read_phonebook_file(csv_file, GERMANY)
    assert (parsed.format, parsed.entries[0].name) == ("csv", "Jürgen Groß")

    unnamed = tmp_path / "export"  # no suffix: the content says vCard
    unnamed.write_text(VCARD_40)
    assert read_phonebook_file(unnamed, ITALY).format == "vcard"


def test_a_changed_file_has_another_stamp(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("name,number\nAnna,030 1\n")
    before = file_stamp(path)
    path.write_text("name,number\nAnna,030 1\nBob,030 2\n")
    assert file_stamp(path) != before
    assert file_stamp(tmp_path / "missing.csv") is None


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.vcf", None, Reason.FILE_NOT_FOUND),
        ("folder.csv", "dir", Reason.FILE_UNREADABLE),
        ("notes.pdf", b"%PDF-1.4", Reason.UNKNOWN_FORMAT),
        ("big.csv", b"x" * (MAX_FILE_BYTES + 1), Reason.FILE_TOO_LARGE),
    ],
)
def test_file_errors(
    tmp_path: Path, name: str, content: bytes | str | None, reason: Reason
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(PhonebookError) as caught:
        read_phonebook_file(path, GERMANY)
    assert caught.value.reason is reason


def test_a_file_is_read_only_inside_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "contacts.csv").write_text("name,number\nAnna,030 1\n")
    (tmp_path / "outside.csv").write_text("name,number\nEve,030 2\n")
    (folder / "link.csv").symlink_to(tmp_path / "outside.csv")
    assert read_phonebook_file_in(folder, "contacts.csv", GERMANY).entries[0].name == "Anna"
    for name in ("../outside.csv", "link.csv", str(tmp_path / "outside.csv")):
        with pytest.raises(PhonebookError) as caught:
            read_phonebook_file_in(folder, name, GERMANY)
        assert (caught.value.reason, caught.value.content) == (Reason.FILE_OUTSIDE_CONFIG, name)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("Sofía".encode(), "Sofía"),
        (b"\xef\xbb\xbfSof\xc3\xada", "Sofía"),
        ("Sofía €".encode("utf-16"), "Sofía €"),
        ("Sofía €".encode("cp1252"), "Sofía €"),
        (b"\x81\x8d", "\x81\x8d"),  # not Windows-1252 either: Latin-1 takes every byte
    ],
)
def test_decoding(data: bytes, text: str) -> None:
    assert decode_file(data) == text


# --- lookup -------------------------------------------------------------------------------


def _extension(number: str, name: str) -> Extension:
    return Extension(
        number=number,
        type=ExtensionType.SIP,
        name=name,
        state=ExtensionState.IDLE,
        state_raw="Idle",
    )


EXTENSIONS = {
    "2002": _extension("2002", "Luca Rossi"),
    "2003": _extension("2003", ""),
    "2004": _extension("2004", "2004"),
}


@pytest.fixture
def book() -> Phonebook:
    return Phonebook(
        GERMANY,
        entries=parse_phonebook_text(
            "030 123456 = Anna (typed)\n2002 = Not the PBX's name\n2003 = Kitchen\n", GERMANY
        ),
        file_entries=[
            PhonebookEntry("+49 30 123456", "Anna (file)"),
            PhonebookEntry("+33 1 42 27 81 86", "Marie Dubois"),
        ],
    )


@pytest.mark.parametrize(
    ("number", "name", "source"),
    [
        ("+49 30 123456", "Anna (typed)", NameSource.PHONEBOOK),  # text beats file
        ("004930123456", "Anna (typed)", NameSource.PHONEBOOK),
        ("0033142278186", "Marie Dubois", NameSource.FILE),
        ("2002", "Luca Rossi", NameSource.EXTENSION),  # the PBX wins for extensions
        (" 2002 ", "Luca Rossi", NameSource.EXTENSION),
        ("2003", "Kitchen", NameSource.PHONEBOOK),  # a blank extension name does not count
        ("2004", None, NameSource.NONE),  # a name that only repeats the number neither
        ("0612345678", None, NameSource.NONE),
        ("anonymous", None, NameSource.NONE),
        ("", None, NameSource.NONE),
        (None, None, NameSource.NONE),
    ],
)
def test_lookup_precedence(
    book: Phonebook, number: str | None, name: str | None, source: NameSource
) -> None:
    found = book.lookup(number, extensions=EXTENSIONS)
    assert (found.name, found.source) == (name, source)


def test_lookup_without_extensions_uses_the_phonebook(book: Phonebook) -> None:
    assert book.lookup("2002").name == "Not the PBX's name"
    assert len(book) == 4


def test_lookup_reports_the_canonical_number(book: Phonebook) -> None:
    assert book.lookup("+49 30 123456").number == "030123456"
    assert book.lookup("0049 170 1").number == "0170 1".replace(" ", "")
    assert book.lookup("anonymous").number is None


def test_dialled_numbers_try_without_then_with_the_outside_line_prefix() -> None:
    book = Phonebook(
        WITH_OUTSIDE_LINE,
        entries=[PhonebookEntry("030 123456", "Anna"), PhonebookEntry("912 345", "Nines")],
    )
    assert book.lookup("9030123456", dialled=True).name == "Anna"
    assert book.lookup("9030123456").name is None  # not dialled: no prefix to strip
    # The PBX already took the prefix off: the number as it came is tried next.
    assert book.lookup("912345", dialled=True).name == "Nines"
    assert book.lookup("030123456", dialled=True).name == "Anna"


def test_entries_with_no_phone_number_are_ignored() -> None:
    assert len(Phonebook(GERMANY, entries=[PhonebookEntry("n/a", "Nobody")])) == 0

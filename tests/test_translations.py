"""Every translations/*.json follows hassfest's rules for strings and matches en.json.

hassfest (the validator Home Assistant's GitHub action runs) checks only en.json of a custom
integration, and Home Assistant formats every language's strings with the placeholders the
code passes: a stray ``{`` or a misspelt placeholder in another language would show up only
in that language's UI, as a raw string or a formatting error. These tests check all files.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
TRANSLATIONS = ROOT / "custom_components" / "smartpbx" / "translations"
ENGLISH = TRANSLATIONS / "en.json"
LANGUAGE_FILES = sorted(TRANSLATIONS.glob("*.json"))
OTHER_LANGUAGE_FILES = [path for path in LANGUAGE_FILES if path != ENGLISH]

# hassfest's translations.py: placeholders are refused in entity states, state attribute
# names and states, and units (those strings are looked up, never formatted).
_NO_PLACEHOLDERS = re.compile(
    r"^entity\.[^.]+\.[^.]+\.(state\.[^.]+|state_attributes\.[^.]+\.(name|state\.[^.]+)"
    r"|unit_of_measurement)$"
)
_SINGLE_QUOTED_PLACEHOLDER = re.compile(r"'{\w+}'")  # hassfest's RE_PLACEHOLDER_IN_SINGLE_QUOTES
# hassfest's other rules for every string: no HTML (config_validation.string_with_no_html),
# no leading or trailing spaces.
_HTML = re.compile(r"<[a-z].*?>", re.IGNORECASE)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _strings(tree: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) of every string in a translation file."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _strings(value, f"{path}.{key}" if path else key)
    else:
        assert isinstance(tree, str), f"{path}: {tree!r} is not a string"
        yield path, tree


def placeholders(text: str) -> set[str]:
    """The placeholder names Home Assistant would format into ``text``.

    Raises ValueError for anything hassfest refuses: unbalanced braces, a placeholder that
    is not an identifier (``{"cmd": ...}``, ``{0}``, ``{a.b}``), or one in single quotes.
    """
    if _SINGLE_QUOTED_PLACEHOLDER.search(text):
        raise ValueError("a placeholder inside single quotes")
    names: set[str] = set()
    # The same parser hassfest's validate_placeholders uses; it raises on a lone brace.
    for _literal, field_name, _spec, _conversion in string.Formatter().parse(text):
        if field_name is None:
            continue
        if not field_name.isidentifier():
            raise ValueError(f"{{{field_name}}} is not a valid placeholder name")
        names.add(field_name)
    return names


def hassfest_problems(translations: Any) -> list[str]:
    """Every string of a translation file that hassfest's rules refuse."""
    problems = []
    for key, text in _strings(translations):
        if text != text.strip():
            problems.append(f"{key}: leading or trailing spaces: {text!r}")
        if _HTML.search(text):
            problems.append(f"{key}: HTML: {text!r}")
        try:
            found = placeholders(text)
        except ValueError as err:
            problems.append(f"{key}: {err}: {text!r}")
            continue
        if found and _NO_PLACEHOLDERS.match(key):
            problems.append(f"{key}: placeholders are not allowed here: {text!r}")
    return problems


def parity_problems(reference: Any, translated: Any) -> list[str]:
    """How a translation differs from en.json in keys or in placeholders per string."""
    expected = dict(_strings(reference))
    actual = dict(_strings(translated))
    problems = [f"missing: {key}" for key in sorted(expected.keys() - actual.keys())]
    problems += [f"not in en.json: {key}" for key in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        try:
            want, have = placeholders(expected[key]), placeholders(actual[key])
        except ValueError:
            continue  # reported by test_strings_pass_hassfests_rules
        if want != have:
            problems.append(f"{key}: placeholders {sorted(have)}, en.json has {sorted(want)}")
        if not actual[key].strip():
            problems.append(f"{key}: empty")
    return problems


def test_the_checks_catch_what_hassfest_refuses() -> None:
    """The rules themselves, on strings hassfest rejects and accepts."""
    refused = [
        'for example {"cmd": "deviceInfo"}',  # what hassfest reported in issue 15
        "a lone { brace",
        "a lone } brace",
        "positional {0}",
        "attribute {entry.title}",
        "quoted '{name}'",
    ]
    for text in refused:
        with pytest.raises(ValueError):
            placeholders(text)
    assert placeholders("{name} (serial number {serial})") == {"name", "serial"}
    assert placeholders("literal braces {{ and }} are fine") == set()
    state_with_placeholder = {"entity": {"sensor": {"status": {"state": {"idle": "{x} idle"}}}}}
    assert hassfest_problems(state_with_placeholder)
    assert hassfest_problems({"entity": {"sensor": {"status": {"name": "{x}"}}}}) == []
    assert hassfest_problems({"a": "Anruf "}) == ["a: leading or trailing spaces: 'Anruf '"]
    assert hassfest_problems({"a": "<b>Anruf</b>"}) == ["a: HTML: '<b>Anruf</b>'"]
    assert hassfest_problems({"a": "2 < 3 > 1"}) == []


def test_parity_check_finds_missing_extra_and_changed_placeholders() -> None:
    reference = {"a": "Call {number}", "b": {"c": "Queue"}}
    assert parity_problems(reference, {"a": "Anruf {number}", "b": {"c": "Warteschlange"}}) == []
    assert parity_problems(reference, {"a": "Anruf {number}"}) == ["missing: b.c"]
    assert parity_problems(reference, {**reference, "d": "x"}) == ["not in en.json: d"]
    assert parity_problems(reference, {"a": "Anruf {nummer}", "b": {"c": "W"}}) == [
        "a: placeholders ['nummer'], en.json has ['number']"
    ]


@pytest.mark.parametrize("path", LANGUAGE_FILES, ids=lambda path: path.stem)
def test_strings_pass_hassfests_rules(path: Path) -> None:
    assert hassfest_problems(_load(path)) == []


@pytest.mark.parametrize("path", OTHER_LANGUAGE_FILES, ids=lambda path: path.stem)
def test_translation_has_exactly_the_keys_and_placeholders_of_english(path: Path) -> None:
    assert parity_problems(_load(ENGLISH), _load(path)) == []


def test_translation_files_are_named_as_home_assistant_languages() -> None:
    # Home Assistant picks a file by the user's language tag: "pt-BR", "zh-Hans", "de".
    for path in LANGUAGE_FILES:
        assert re.fullmatch(r"[a-z]{2,3}(-[A-Z][a-zA-Z]{1,3})?", path.stem), path.name

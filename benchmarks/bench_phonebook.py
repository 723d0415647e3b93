"""Phonebook lookups: a 10,000-entry phonebook against a plain dict, in one process.

No broker, no simulator, no Home Assistant: ``Phonebook.lookup`` is pure Python that
runs on the event loop for every number of every call event, so its cost per lookup is
what matters. ``python -m benchmarks.bench_phonebook --out FILE [--quick]`` (run by
``scripts/bench`` like the other benchmarks, in a fresh interpreter).

- *phonebook*: ``Phonebook.lookup`` of 10,000 caller ids written as they arrive
  (``+49 ...``, ``0049 ...``, national, foreign, extensions with the PBX's extension
  map, dialled numbers with an outside-line prefix, unknown numbers, ``anonymous``),
  against a phonebook whose 10,000 entries are written in other forms.
- *baseline*: ``dict.get`` of the same lookups' canonical keys, computed beforehand: the
  floor of any lookup table, normalisation left out.

Both take turns, 5 rounds each (3 quick); the median round counts. Target (issue 14):
under 1 ms per lookup. A second pair of rows measures the same at 100 entries: a
lookup must not grow with the phonebook. Building the phonebook (the options' text,
and a vCard file of the same size) is shown for scale, without a target.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import gc
import logging
from pathlib import Path
import random
import sys
import time

from custom_components.smartpbx.pbx.models import Extension, ExtensionState, ExtensionType
from custom_components.smartpbx.pbx.phonebook import (
    DialPlan,
    Phonebook,
    normalize_number,
    parse_phonebook_text,
    parse_vcard,
)

from .common import BenchResult, Row, median
from .profiling import profiled

ENTRIES = 10_000
SMALL = 100
LOOKUPS = 10_000
EXTENSIONS = 200
TARGET_US = 1000.0
PLAN = DialPlan(country_code="49", trunk_prefix="0", outside_line_prefix="9")


def _subscriber(rng: random.Random) -> str:
    return str(rng.randrange(1_000_000, 9_999_999))


def _entries(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """(number as written in the phonebook, name); distinct numbers."""
    written: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(written) < count:
        kind = rng.random()
        if kind < 0.5:
            number = f"0{rng.choice(['30', '40', '89', '170', '151'])} {_subscriber(rng)}"
        elif kind < 0.8:
            trunk = rng.choice(["(0)", ""])
            number = f"+49 {trunk}{rng.randrange(200, 999)} {_subscriber(rng)}"
        else:
            country = rng.choice(["33", "39", "44", "86"])
            number = f"+{country} {rng.randrange(1, 99)} {_subscriber(rng)}"
        key = normalize_number(number, PLAN)
        if key is None or key in seen:
            continue
        seen.add(key)
        written.append((number, f"Contact {len(written)}"))
    return written


def _as_dialled(number: str) -> str:
    """Another writing of ``number``: how a caller id or a dialled number may come."""
    compact = number.replace(" ", "").replace("(0)", "").replace("(", "").replace(")", "")
    if compact.startswith("+49"):
        return "0" + compact[3:]
    if compact.startswith("+"):
        return "00" + compact[1:]
    return "+49" + compact[1:]


def _queries(
    rng: random.Random, entries: list[tuple[str, str]], extensions: dict[str, Extension]
) -> list[tuple[str, bool]]:
    """(number, dialled): 55 % known numbers in another form, 10 % dialled with the
    outside-line prefix, 15 % extensions, 15 % unknown, 5 % no number at all."""
    queries: list[tuple[str, bool]] = []
    extension_numbers = list(extensions)
    for _ in range(LOOKUPS):
        kind = rng.random()
        number, _name = rng.choice(entries)
        if kind < 0.55:
            queries.append((_as_dialled(number), False))
        elif kind < 0.65:
            queries.append(("9" + _as_dialled(number), True))
        elif kind < 0.80:
            queries.append((rng.choice(extension_numbers), False))
        elif kind < 0.95:
            queries.append((f"0{rng.randrange(200, 999)}{_subscriber(rng)}", False))
        else:
            queries.append(("anonymous", False))
    return queries


def _extensions() -> dict[str, Extension]:
    return {
        str(2000 + n): Extension(
            number=str(2000 + n),
            type=ExtensionType.SIP,
            name=f"Extension {n}" if n % 4 else "",
            state=ExtensionState.IDLE,
            state_raw="Idle",
        )
        for n in range(EXTENSIONS)
    }


def _timed_us(work: Callable[[], object], count: int) -> float:
    gc.collect()
    started = time.perf_counter_ns()
    work()
    return (time.perf_counter_ns() - started) / 1000 / count


def _vcard(entries: list[tuple[str, str]]) -> str:
    return "".join(
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nTEL;TYPE=CELL:{number}\r\nEND:VCARD\r\n"
        for number, name in entries
    )


def run(quick: bool, profile: Path | None = None) -> BenchResult:
    rng = random.Random("phonebook-bench")
    rounds = 3 if quick else 5
    extensions = _extensions()
    entries = _entries(rng, ENTRIES)
    queries = _queries(rng, entries, extensions)

    text = "".join(f"{number} = {name}\n" for number, name in entries)
    gc.collect()
    started = time.perf_counter()
    book = Phonebook(PLAN, parse_phonebook_text(text, PLAN))
    build_seconds = time.perf_counter() - started
    assert len(book) == ENTRIES
    vcard = _vcard(entries)
    gc.collect()
    started = time.perf_counter()
    from_file = Phonebook(PLAN, file_entries=parse_vcard(vcard, PLAN).entries)
    vcard_seconds = time.perf_counter() - started
    assert len(from_file) == ENTRIES

    small_entries = entries[:SMALL]
    small_book = Phonebook(
        PLAN, parse_phonebook_text("".join(f"{n} = {m}\n" for n, m in small_entries), PLAN)
    )

    # The baseline's keys, computed outside its timing: a dict of the same size.
    plain = {normalize_number(number, PLAN): name for number, name in entries}
    keys = [normalize_number(number, PLAN, dialled=dialled) or "" for number, dialled in queries]
    small_plain = {normalize_number(number, PLAN): name for number, name in small_entries}

    def lookups(phonebook: Phonebook) -> Callable[[], object]:
        def work() -> object:
            lookup = phonebook.lookup
            return [
                lookup(number, dialled=dialled, extensions=extensions)
                for number, dialled in queries
            ]

        return work

    def plain_gets(table: dict[str | None, str]) -> Callable[[], object]:
        def work() -> object:
            get = table.get
            return [get(key) for key in keys]

        return work

    found = sum(
        book.lookup(number, dialled=dialled, extensions=extensions).name is not None
        for number, dialled in queries
    )
    timings: dict[str, list[float]] = {"book": [], "plain": [], "small": [], "small_plain": []}
    with profiled(profile, "phonebook"):
        for _ in range(rounds):
            timings["book"].append(_timed_us(lookups(book), LOOKUPS))
            timings["plain"].append(_timed_us(plain_gets(plain), LOOKUPS))
            timings["small"].append(_timed_us(lookups(small_book), LOOKUPS))
            timings["small_plain"].append(_timed_us(plain_gets(small_plain), LOOKUPS))

    per_lookup = median(timings["book"])
    small_per_lookup = median(timings["small"])
    rows = [
        Row(
            "5 phonebook",
            f"lookup in a {ENTRIES:,}-entry phonebook, per lookup",
            per_lookup,
            "µs",
            median(timings["plain"]),
            "dict.get of pre-normalised keys",
            target="< 1 ms",
            met=per_lookup < TARGET_US,
            note=f"median of {rounds} rounds of {LOOKUPS:,} lookups (caller ids in other"
            f" writings, dialled numbers, extensions, unknown numbers); {found:,} named",
        ),
        Row(
            "5 phonebook",
            f"lookup at {ENTRIES:,} entries vs {SMALL} entries",
            per_lookup,
            "µs",
            small_per_lookup,
            f"same lookups, {SMALL}-entry phonebook",
            note="about 1 = the cost does not grow with the phonebook; dict.get at"
            f" {SMALL} entries {median(timings['small_plain']):.3g} µs",
        ),
        Row(
            "5 phonebook",
            f"parse + build: {ENTRIES:,}-line options text",
            build_seconds * 1000,
            "ms",
            note="once per options change, not per call",
        ),
        Row(
            "5 phonebook",
            f"parse + build: {ENTRIES:,}-card vCard 3.0",
            vcard_seconds * 1000,
            "ms",
            note="once per options change or file change, not per call",
        ),
    ]
    return BenchResult(
        name="phonebook",
        rows=rows,
        details={"entries": ENTRIES, "lookups": LOOKUPS, "timings_us": timings},
    )


def main() -> None:
    # Accepts run_child's arguments; only --out, --quick and --profile matter here.
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", nargs="?", default="phonebook")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", type=Path, default=None)
    args, _ignored = parser.parse_known_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    started = time.monotonic()
    result = run(args.quick, args.profile)
    result.seconds = time.monotonic() - started
    args.out.write_text(result.to_json())


if __name__ == "__main__":
    main()

"""``python -m benchmarks``: run the benchmarks and print one table (see BENCHMARKS.md).

Starts its own Mosquitto on a free loopback port (``tests/broker.py``), runs each
benchmark in a fresh interpreter (``benchmarks.child``), and prints the table. Exits 1
if a benchmark crashed or an event or command was lost; a missed target alone does not
fail the run (these machines are shared: the table is for people, not for CI's verdict).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import math
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

from homeassistant.helpers.entity_platform import (
    MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY as ENTITY_CAP,
)

from tests.broker import MosquittoBroker

from .common import (
    ROOT,
    BenchResult,
    Row,
    calibration_ms,
    die_with_parent,
    fmt,
    machine_description,
    slope,
)

ALL = ("commands", "events", "scale", "idle", "phonebook")
CHILD_MODULES = {"phonebook": "benchmarks.bench_phonebook"}
"""Benchmarks that need no broker or simulator run their own module; the rest child.py."""
FULL_SCALE = (100, 1000, 1500, 2000)
"""Four points for the slopes; a count that reaches Home Assistant's cap of enabled
entities per entry (~4,300 extensions with this plan) is shown but left out of them."""
CHILD_TIMEOUT = 20 * 60
MEMORY_TARGET_KIB = 40.0
DIY_TARGET = 3.0
"""Our events/s at least this many times the do-it-yourself peer's, on both paths."""
LINEARITY_LIMIT = 1.25
"""Between the two largest counts a cost may grow at most this times as fast as the
extensions (1,000 to 1,500: x1.5 allows up to x1.875).

Judged on the two largest counts, where fixed costs weigh least and noise on a small
difference (100 to 1,000 at a few hundred milliseconds) cannot flip the verdict."""


_NODELAY = "set_tcp_nodelay true"


class TunedMosquittoBroker(MosquittoBroker):
    """The test broker, with ``set_tcp_nodelay true`` whether or not tests/broker.py sets it.

    With Mosquitto's default (false), a reply that follows the broker's PUBACK to our
    QoS 1 command waits for our kernel's delayed ACK: ~40 ms per round trip, which would
    bury everything the benchmarks try to see. The commands benchmark measures that
    default separately, on a DefaultMosquittoBroker.
    """

    def _write_config(self) -> None:
        super()._write_config()
        config = self._dir / "mosquitto.conf"
        lines = config.read_text().splitlines()
        if _NODELAY not in lines:
            config.write_text("\n".join([*lines, _NODELAY]) + "\n")


class DefaultMosquittoBroker(MosquittoBroker):
    """The test broker with Mosquitto's default ``set_tcp_nodelay false``, as users run it."""

    def _write_config(self) -> None:
        super()._write_config()
        config = self._dir / "mosquitto.conf"
        lines = [line for line in config.read_text().splitlines() if "set_tcp_nodelay" not in line]
        config.write_text("\n".join(lines) + "\n")


@dataclass
class Outcome:
    name: str
    result: BenchResult | None
    error: str | None
    seconds: float


def run_child(
    name: str,
    broker: MosquittoBroker,
    logs: Path,
    *,
    quick: bool,
    extra: list[str] | None = None,
    tag: str | None = None,
    profile: Path | None = None,
) -> Outcome:
    tag = tag or name
    out = logs / f"{tag}.json"
    command = [
        sys.executable,
        "-m",
        CHILD_MODULES.get(name, "benchmarks.child"),
        name,
        "--port",
        str(broker.port),
        "--out",
        str(out),
        "--sim-log",
        str(logs / f"{tag}.simulator.log"),
        *(["--quick"] if quick else []),
        *(["--profile", str(profile)] if profile else []),
        *(extra or []),
    ]
    print(f"bench: {tag} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(logs / f"{tag}.log", "wb") as log:
        try:
            completed = subprocess.run(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=CHILD_TIMEOUT,
                preexec_fn=die_with_parent,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome(tag, None, f"timed out after {CHILD_TIMEOUT} s", CHILD_TIMEOUT)
    seconds = time.monotonic() - started
    print(f"bench: {tag} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    if completed.returncode != 0 or not out.exists():
        tail = (logs / f"{tag}.log").read_text(errors="replace").splitlines()[-15:]
        return Outcome(tag, None, f"exit {completed.returncode}:\n" + "\n".join(tail), seconds)
    return Outcome(tag, BenchResult.from_json(out.read_text()), None, seconds)


def scale_summary(results: list[BenchResult], calibration: float) -> list[Row]:
    """Slopes over the extension counts, and whether growth is linear."""
    points = sorted(
        (r.details["extensions"], r.details)
        for r in results
        if "extensions" in r.details and r.details.get("broker") == "set_tcp_nodelay true"
    )
    if len(points) < 2:
        return []
    counts = [n for n, _ in points]
    rows: list[Row] = []

    capped = [n for n, d in points if d["enabled_entities"] >= ENTITY_CAP]
    span = "/".join(f"{n:,}" for n in counts if n not in capped)
    cap_note = (
        f"; {', '.join(f'{n:,}' for n in capped)} ext left out: Home Assistant's cap of"
        f" {ENTITY_CAP:,} enabled entities per entry was reached there (entities missing)"
        if capped
        else ""
    )
    # A point where Home Assistant's entity cap cut entities off is not the same PBX:
    # slopes and the linearity verdict use the others.
    fitted_points = [(n, d) for n, d in points if n not in capped] or points

    def marginal(key: str) -> tuple[float, float | None]:
        """Least-squares slope, and the growth factor over the two largest counts."""
        values = [(float(n), float(d[key])) for n, d in fitted_points]
        fitted = slope(values)
        if len(values) < 3:
            return fitted, None
        (n1, v1), (n2, v2) = values[-2:]
        return fitted, ((v2 / v1) / (n2 / n1) if v1 > 0 else math.inf)

    memory_slope, memory_growth = marginal("rss_added")
    bare_slope = slope([(float(n), float(d["bare_rss"])) for n, d in fitted_points])
    rows.append(
        Row(
            "3 scale",
            f"memory per extension (slope over {span})",
            memory_slope / 1024,
            "KiB/ext",
            bare_slope / 1024,
            "bare HA: same entity count",
            target=f"≤ {MEMORY_TARGET_KIB:g} KB/ext",
            met=memory_slope / 1024 <= MEMORY_TARGET_KIB * 1000 / 1024,
            note=_growth_note(memory_growth) + cap_note,
        )
    )
    setup_slope, setup_growth = marginal("setup_seconds")
    bare_setup_slope = slope([(float(n), float(d["bare_seconds"])) for n, d in fitted_points])
    rows.append(
        Row(
            "3 scale",
            f"setup time per extension (slope over {span})",
            setup_slope * 1000,
            "ms/ext",
            bare_setup_slope * 1000,
            "bare HA: same entity count",
            note=_growth_note(setup_growth)
            + f"; {setup_slope * 1000 / calibration * 1000:.2f} calibration units/1k ext"
            + cap_note,
        )
    )
    if setup_growth is not None and memory_growth is not None:
        worst = max(setup_growth, memory_growth)
        largest = [n for n, _ in fitted_points][-2:]
        rows.append(
            Row(
                "3 scale",
                f"growth {largest[0]:,}→{largest[1]:,} ext vs linear (setup, memory)",
                worst,
                "x",
                target=f"≤ {LINEARITY_LIMIT} (linear)",
                met=worst <= LINEARITY_LIMIT,
                note=f"setup {setup_growth:.2f}, memory {memory_growth:.2f}: cost growth"
                " divided by extension growth; 1 = linear, below 1 = fixed costs thinning"
                + cap_note,
            )
        )
    poll_values = [
        (float(n), float(sorted(d["poll_seconds"])[len(d["poll_seconds"]) // 2])) for n, d in points
    ]
    poll_slope = slope(poll_values)
    rows.append(
        Row(
            "3 scale",
            f"poll cycle time per extension (slope over {'/'.join(f'{n:,}' for n in counts)})",
            poll_slope * 1e6,
            "µs/ext",
            note=f"messages per poll: {', '.join(str(d['poll_messages'][0]) for _, d in points)}"
            " (independent of the extension count)",
        )
    )
    event_points = [(float(n), float(d["event_cpu_us"])) for n, d in points]
    event_slope = slope(event_points)
    rows.append(
        Row(
            "3 scale",
            "CPU per extension_status event vs PBX size",
            event_points[-1][1],
            "µs/event",
            event_points[0][1],
            f"same at {counts[0]:,} ext",
            note=f"at {counts[-1]:,} ext; grows {event_slope * 1000:.0f} µs per 1,000"
            " extensions (should not grow)",
        )
    )
    return rows


def diy_summary(results: list[BenchResult]) -> list[Row]:
    """Our burst throughput on each path against the do-it-yourself peer's (issue 11)."""
    ours = next((r for r in results if r.name == "events"), None)
    diy = next((r for r in results if r.name == "events-diy"), None)
    if ours is None or diy is None:
        return []
    peer = statistics.median(diy.details["throughput"])
    rows = []
    for path in ("direct", "ha-mqtt"):
        value = statistics.median(ours.details["throughput"][path])
        rows.append(
            Row(
                "1 events",
                f"{path}: burst throughput vs the do-it-yourself peer",
                value,
                "events/s",
                peer,
                "HA MQTT sensor + template per extension",
                ratio=value / peer,
                target=f"≥ {DIY_TARGET:g}x peer",
                met=value / peer >= DIY_TARGET,
                note="each in its own Home Assistant process, same burst; the processes"
                " run one after the other, so machine load can differ between them",
            )
        )
    return rows


def _growth_note(growth: float | None) -> str:
    if growth is None:
        return "2 points: no linearity check"
    return (
        f"over the two largest counts it grows {growth:.2f} x as fast as the extensions"
        f" (linear: ≤ {LINEARITY_LIMIT})"
    )


def render_table(rows: list[Row]) -> list[str]:
    header = ["benchmark", "metric", "value", "baseline", "ratio", "target", "ok", "baseline is"]
    body = []
    for row in rows:
        ok = "" if row.met is None else ("yes" if row.met else "MISSED")
        body.append(
            [
                row.benchmark,
                row.metric,
                fmt(row.value, row.unit),
                fmt(row.baseline, row.unit) if row.baseline is not None else "",
                f"{row.ratio:.2f}x" if row.ratio is not None else "",
                row.target,
                ok,
                row.baseline_name,
            ]
        )
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in body
    ]
    notes = [f"- {row.metric}: {row.note}" for row in rows if row.note]
    return [*lines, "", "Notes:", *notes]


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="short version for CI (under ~2 minutes)"
    )
    parser.add_argument(
        "--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}"
    )
    parser.add_argument(
        "--extensions",
        default=None,
        help="extension counts for the scale benchmark"
        " (default 100,1000,1500,2000; quick 100,1000)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write all results here")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="also write the table and machine here"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile the measured sections with pyinstrument into this folder"
        " (slows them: the table of a profiled run is not a result)",
    )
    parser.add_argument("--logs", type=Path, default=None, help="keep the logs in this folder")
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    default_counts = "100,1000" if args.quick else ",".join(str(n) for n in FULL_SCALE)
    counts = [int(n) for n in (args.extensions or default_counts).split(",")]

    started = time.monotonic()
    machine = machine_description()
    calibration_before = calibration_ms()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="smartpbx-bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    with TunedMosquittoBroker() as broker, DefaultMosquittoBroker() as default_broker:
        for name in wanted:
            if name == "scale":
                for count in counts:
                    outcomes.append(
                        run_child(
                            "scale",
                            broker,
                            logs,
                            quick=args.quick,
                            extra=["--extensions", str(count)],
                            tag=f"scale-{count}",
                            profile=args.profile,
                        )
                    )
                if not args.quick:
                    # What users with Mosquitto's defaults get (see BENCHMARKS.md).
                    outcomes.append(
                        run_child(
                            "scale",
                            default_broker,
                            logs,
                            quick=True,
                            extra=["--extensions", "1000", "--broker-label", "Mosquitto defaults"],
                            tag="scale-1000-mosquitto-defaults",
                        )
                    )
            else:
                extra = ["--default-port", str(default_broker.port)] if name == "commands" else []
                outcomes.append(
                    run_child(
                        name, broker, logs, quick=args.quick, extra=extra, profile=args.profile
                    )
                )
                if name == "events":
                    # The do-it-yourself peer, alone in a Home Assistant of its own.
                    outcomes.append(run_child("events-diy", broker, logs, quick=args.quick))
    calibration_after = calibration_ms()
    calibration = (calibration_before + calibration_after) / 2
    elapsed = time.monotonic() - started

    rows: list[Row] = []
    results = [o.result for o in outcomes if o.result is not None]
    for result in results:
        rows += result.rows
    rows += scale_summary([r for r in results if r.name.startswith("scale-")], calibration)
    rows += diy_summary(results)
    rows.sort(key=lambda row: row.benchmark)
    crashed = [o for o in outcomes if o.error is not None]
    lost = sum(r.lost_events for r in results)

    mode = "quick" if args.quick else "full"
    header = [
        f"Smart PBX benchmarks ({mode} run, {elapsed:.0f} s), {time.strftime('%Y-%m-%d %H:%M')}",
        "machine: "
        + ", ".join(f"{key} {value}" for key, value in machine.items())
        + f", load average at end {os.getloadavg()[0]:.1f}",
        f"calibration loop: {calibration_before:.0f} ms at start, {calibration_after:.0f} ms"
        " at end (drift between them shows how busy the machine was)",
        "benchmark wall times: " + ", ".join(f"{o.name} {o.seconds:.0f} s" for o in outcomes),
        "",
    ]
    table = render_table(rows)
    print("\n".join([*header, *table]))
    for outcome in crashed:
        print(f"\nCRASHED: {outcome.name}: {outcome.error}")
    if lost:
        print(f"\nLOST: {lost} events or commands were not delivered")
    print(f"\nlogs: {logs}")
    if args.markdown is not None:
        args.markdown.write_text("\n".join([*header, *table]) + "\n")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "mode": mode,
                    "machine": machine,
                    "calibration_ms": [calibration_before, calibration_after],
                    "seconds": elapsed,
                    "results": [json.loads(r.to_json()) for r in results],
                    "crashed": [{"name": o.name, "error": o.error} for o in crashed],
                },
                indent=2,
            )
        )
    return 1 if crashed or lost else 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the benchmarks: statistics, process measurements, result rows."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from dataclasses import asdict, dataclass, field
import gc
import json
import math
import os
from pathlib import Path
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM if the benchmark process dies, however it dies."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, 15, 0, 0, 0)


# --- statistics ---------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return math.nan
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den if den else math.nan


# --- process measurements -----------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def settled_rss() -> int:
    """RSS after a full garbage collection, so that dead cycles are not counted."""
    gc.collect()
    gc.collect()
    return rss_bytes()


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def calibration_ms(rounds: int = 5) -> float:
    """Median time of a fixed pure-Python workload: the run's unit of machine speed.

    JSON round trips of a PBX-sized object, dict and string work: the same kinds of
    work the integration does, so that a slower (or busier) machine scales both alike.
    """
    payload = {
        "event": "extension_status",
        "extension": "8001",
        "ipaddr": "sip:8001@192.168.8.171:63414",
        "status": "InUse",
        "extra": [{"number": str(n), "status": "Idle", "type": "SIP"} for n in range(8)],
    }
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        states: dict[str, str] = {}
        for i in range(4000):
            decoded = json.loads(json.dumps(payload))
            key = f"sensor.extension_{decoded['extension']}_{i % 97}"
            states[key] = decoded["status"].lower()
            sorted(decoded)
        timings.append((time.perf_counter() - start) * 1000)
    return median(timings)


def machine_description() -> dict[str, str]:
    """What the run was measured on (recorded with the results)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mosquitto = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        probe = subprocess.run(
            ["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True, timeout=5, check=False
        )
        first = (probe.stdout or probe.stderr).splitlines()
        if first:
            mosquitto = first[0].replace("mosquitto version", "").strip()
    from importlib.metadata import version

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": _memory_total(),
        "os": platform.platform(terse=True),
        "python": sys.version.split()[0],
        "homeassistant": version("homeassistant"),
        "aiomqtt": version("aiomqtt"),
        "paho-mqtt": version("paho-mqtt"),
        "mosquitto": mosquitto,
    }


def _memory_total() -> str:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


# --- results ------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One line of the results table.

    ``value`` and ``baseline`` are in ``unit``; ``ratio`` is value / baseline unless the
    benchmark sets it (e.g. throughput is baseline-relative the other way round).
    ``target`` is text; ``met`` is None when the row has no target.
    """

    benchmark: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline not in (None, 0) and self.baseline is not None:
            self.ratio = self.value / self.baseline


@dataclass(slots=True)
class BenchResult:
    """What one benchmark process reports back."""

    name: str
    rows: list[Row] = field(default_factory=list)
    lost_events: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_plain)

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        raw = json.loads(text)
        rows = [Row(**row) for row in raw.pop("rows")]
        return cls(rows=rows, **raw)


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def fmt(value: float | None, unit: str = "") -> str:
    """A number for the table: 3 significant digits, thousands as k."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100_000:
        text = f"{value / 1000:,.0f}k"
    elif magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    elif magnitude == 0:
        text = "0"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip() if unit else text

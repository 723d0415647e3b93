"""Run one benchmark in a fresh interpreter and write its result as JSON.

``python -m benchmarks.child NAME --port P --out FILE [--quick] [--profile DIR] ...``.
Each benchmark gets a process of its own so that memory figures start from a clean
interpreter and nothing one benchmark leaves behind (tasks, registries, caches) touches
the next. The simulated PBX runs in yet another process (see simhost.py).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import logging
from pathlib import Path
import sys
import time

from .common import BenchResult
from .profiling import profiled
from .simhost import SimHost

_NAMES = ("commands", "events", "events-diy", "scale", "idle")


async def _run(args: argparse.Namespace) -> BenchResult:
    sim = SimHost(args.host, args.port, log_path=args.sim_log)
    await sim.start()
    try:
        runner: Callable[[], Awaitable[BenchResult]]
        if args.name == "commands":
            from . import bench_commands

            def runner() -> Awaitable[BenchResult]:
                return bench_commands.run(
                    args.host, args.port, args.quick, sim, args.default_port, args.sim_log
                )
        elif args.name == "events":
            from . import bench_events

            def runner() -> Awaitable[BenchResult]:
                return bench_events.run(args.host, args.port, args.quick, sim, args.profile)
        elif args.name == "events-diy":
            from . import bench_events_diy

            def runner() -> Awaitable[BenchResult]:
                return bench_events_diy.run(args.host, args.port, args.quick, sim, args.profile)
        elif args.name == "scale":
            from . import bench_scale

            def runner() -> Awaitable[BenchResult]:
                return bench_scale.run(
                    args.host,
                    args.port,
                    args.quick,
                    sim,
                    args.extensions,
                    args.profile,
                    broker_label=args.broker_label,
                )
        else:
            from . import bench_idle

            def runner() -> Awaitable[BenchResult]:
                return bench_idle.run(args.host, args.port, args.quick, sim)

        return await runner()
    finally:
        await sim.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=_NAMES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--extensions", type=int, default=1000)
    parser.add_argument(
        "--broker-label", default=None, help="scale: name the broker's setup in the rows"
    )
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--sim-log", type=Path, default=None)
    parser.add_argument(
        "--default-port", type=int, default=None, help="a Mosquitto left at its defaults"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    started = time.monotonic()
    if args.name == "commands":
        with profiled(args.profile, "commands"):
            result = asyncio.run(_run(args))
    else:
        # Home Assistant's own event loop set-up (executor, exception handler).
        from homeassistant.runner import create_event_loop

        with asyncio.Runner(loop_factory=create_event_loop) as loop_runner:
            result = loop_runner.run(_run(args))
    result.seconds = time.monotonic() - started
    args.out.write_text(result.to_json())


if __name__ == "__main__":
    main()

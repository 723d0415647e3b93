"""Optional profiling of a measured section (``scripts/bench --profile``).

Profiled runs are for finding causes, not for the table: the sampler slows the loop.
pyinstrument samples the event loop's thread; its text report goes to the profile
directory together with an HTML one.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from pathlib import Path


@contextlib.contextmanager
def profiled(directory: Path | None, name: str) -> Iterator[None]:
    if directory is None:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False)
        )
        (directory / f"{name}.html").write_text(profiler.output_html())

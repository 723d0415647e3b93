"""Warnings that cannot flood the log.

A misbehaving PBX (or anything else publishing on its topics) can send garbage many
times a second. Each kind of problem is logged at WARNING at most once per interval; the
ones suppressed meanwhile are counted and reported with the next warning of that kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
import time
from typing import Final

DEFAULT_INTERVAL: Final = 60.0


@dataclass(slots=True)
class _KeyState:
    last_logged: float
    suppressed: int = 0


class RateLimitedWarnings:
    """Log a warning per key at most once per ``interval`` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged within the interval.

        Returns whether it was logged. Suppressed warnings are still logged at DEBUG so
        that nothing is invisible when debugging.
        """
        now = self._clock()
        state = self._keys.get(key)
        if state is not None and now - state.last_logged < self._interval:
            state.suppressed += 1
            self._logger.debug(message, *args)
            return False
        suppressed = state.suppressed if state is not None else 0
        self._keys[key] = _KeyState(last_logged=now)
        if suppressed:
            self._logger.warning("%s (%d similar warnings suppressed)", message % args, suppressed)
        else:
            self._logger.warning(message, *args)
        return True

    def suppressed(self, key: str) -> int:
        """How many warnings of ``key`` were suppressed since the last one logged."""
        state = self._keys.get(key)
        return 0 if state is None else state.suppressed

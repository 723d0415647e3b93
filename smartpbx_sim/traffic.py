"""Random but reproducible live traffic: calls that ring, talk and hang up, IVR keys, CDRs.

Runs on the PBX's simulated clock (``SimulatedPbx.advance``), so the same seed and the
same clock steps always produce the same calls, call ids and CDRs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import random

from .errors import PbxError
from .model import Disposition, ExtStatus
from .names import EXTERNAL_NUMBERS
from .pbx import SimulatedPbx, Timer

# Relative weights of what the next call is.
_SCENARIOS = {
    "internal": 4,
    "inbound": 2,
    "ivr": 2,
    "queue": 1,
    "outbound": 2,
    "conference": 1,
}


class TrafficGenerator:
    """Starts calls at random (Poisson) times at ``calls_per_minute`` on average."""

    def __init__(self, pbx: SimulatedPbx, calls_per_minute: float, seed: int | None = None) -> None:
        if calls_per_minute < 0:
            raise ValueError("calls_per_minute must not be negative")
        self._pbx = pbx
        self._rate = calls_per_minute
        self._rng = random.Random(f"traffic-{pbx.config.seed if seed is None else seed}")
        self._timers: list[Timer] = []
        self._running = False
        self.started: Counter[str] = Counter()
        """Calls started per scenario."""
        self.refused = 0
        """Attempts the PBX refused (nobody free, no trunk...)."""

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._running or self._rate <= 0:
            return
        self._running = True
        self._schedule_arrival()

    def stop(self) -> None:
        """Stop starting calls; calls in progress are left to end by themselves."""
        self._running = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        timer: Timer | None = None

        def fire() -> None:
            if timer in self._timers:
                self._timers.remove(timer)
            action()

        # Kept across a PBX reboot: the traffic pattern is the world's, not the device's.
        timer = self._pbx.schedule(delay, fire, keep_on_reboot=True)
        self._timers.append(timer)

    def _schedule_arrival(self) -> None:
        self._later(self._rng.expovariate(self._rate / 60.0), self._arrival)

    def _arrival(self) -> None:
        if not self._running:
            return
        self._schedule_arrival()
        names = list(_SCENARIOS)
        scenario = self._rng.choices(names, weights=[_SCENARIOS[n] for n in names])[0]
        try:
            started = getattr(self, f"_start_{scenario}")()
        except PbxError:
            started = False
        if started:
            self.started[scenario] += 1
        else:
            self.refused += 1

    # ------------------------------------------------------------------ helpers

    def _idle_extensions(self) -> list[str]:
        return [n for n in self._pbx.extensions if self._pbx.extension_status(n) is ExtStatus.IDLE]

    def _talk_time(self) -> float:
        return self._rng.uniform(5.0, 120.0)

    def _hangup_later(self, callid: str, delay: float) -> None:
        def hangup() -> None:
            if callid in self._pbx.calls:
                self._pbx.hangup_call(callid)

        self._later(delay, hangup)

    def _ring_then_talk(self, callid: str) -> None:
        """Hang up after the answer delay plus a talk time; sometimes give up while ringing."""
        delay = self._pbx.config.answer_delay
        if delay is None or self._rng.random() < 0.15:
            give_up = self._rng.uniform(1.0, 8.0)
            if delay is None or give_up < delay:
                self._hangup_later(callid, give_up)
                return
        self._hangup_later(callid, (delay or 0.0) + self._talk_time())

    # ------------------------------------------------------------------ scenarios

    def _start_internal(self) -> bool:
        idle = self._idle_extensions()
        if len(idle) < 2:
            return False
        caller, callee = self._rng.sample(idle, 2)
        self._ring_then_talk(self._pbx.place_call(caller, callee))
        return True

    def _start_inbound(self) -> bool:
        idle = self._idle_extensions()
        if not idle:
            return False
        callid = self._pbx.incoming_call(self._rng.choice(EXTERNAL_NUMBERS), self._rng.choice(idle))
        if callid in self._pbx.calls:
            self._ring_then_talk(callid)
        return True

    def _start_ivr(self) -> bool:
        if not self._pbx.ivr_numbers:
            return False
        ivr = self._rng.choice(self._pbx.ivr_numbers)
        caller = self._rng.choice(EXTERNAL_NUMBERS)
        callid = self._pbx.incoming_call(caller, ivr)
        at = 0.0
        for _ in range(self._rng.randint(1, 3)):
            at += self._rng.uniform(2.0, 6.0)
            digit = self._rng.choice("0123456789*#")

            def press(digit: str = digit) -> None:
                if callid in self._pbx.calls:
                    self._pbx.ivr_keypress(ivr, caller, digit, callid)

            self._later(at, press)
        self._hangup_later(callid, at + self._rng.uniform(1.0, 10.0))
        return True

    def _start_queue(self) -> bool:
        if not self._pbx.queues:
            return False
        queue = self._rng.choice(list(self._pbx.queues))
        callid = self._pbx.incoming_call(self._rng.choice(EXTERNAL_NUMBERS), queue)
        self._hangup_later(callid, self._rng.uniform(10.0, 150.0))
        return True

    def _start_outbound(self) -> bool:
        idle = [n for n in self._idle_extensions() if self._pbx.extensions[n].permission >= 4]
        if not idle:
            return False
        callid = self._pbx.place_call(self._rng.choice(idle), self._rng.choice(EXTERNAL_NUMBERS))
        if self._rng.random() < 0.1:
            # The carrier rejects the call (congestion, bad number): a FAILED CDR.
            def fail() -> None:
                if callid in self._pbx.calls:
                    self._pbx.hangup_call(callid, Disposition.FAILED)

            self._later(self._rng.uniform(0.5, 3.0), fail)
        else:
            self._ring_then_talk(callid)
        return True

    def _start_conference(self) -> bool:
        idle = self._idle_extensions()
        if not self._pbx.conferences or not idle:
            return False
        room = self._rng.choice(list(self._pbx.conferences))
        callid = self._pbx.place_call(self._rng.choice(idle), room)
        self._hangup_later(callid, self._rng.uniform(30.0, 300.0))
        return True

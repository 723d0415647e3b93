"""SimulatedPbx: the PBX as a pure, I/O-free, deterministic state machine.

Commands go in through :meth:`SimulatedPbx.handle_command`; everything the PBX publishes
(replies, events, CDRs) comes out through one ``publish(topic, payload)`` callback with
full topic names. Time only moves when :meth:`SimulatedPbx.advance` is called, so answer
delays and ring timeouts are exact and tests never sleep. The runner drives the same object
from a broker and the wall clock.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
import heapq
import itertools
import json
import logging
import random
import re
from typing import Any

from . import commands, wire
from .config import PbxConfig
from .errors import PbxError
from .model import (
    Alarm,
    CallKind,
    Conference,
    ConferenceMember,
    Direction,
    Disposition,
    Extension,
    ExtStatus,
    LiveCall,
    Queue,
    QueueMember,
    Trunk,
)
from .names import (
    CONFERENCE_DESCRIPTIONS,
    EXTENSION_NAMES,
    LETTERS,
    QUEUE_DESCRIPTIONS,
    QUEUE_STRATEGIES,
)

_LOGGER = logging.getLogger(__name__)

Publisher = Callable[[str, bytes], None]

# A number the PBX would route to a trunk: "+" or "0" prefixed, or at least 5 digits.
# Shorter unknown numbers are internal numbers that do not exist.
_EXTERNAL_NUMBER = re.compile(r"^(\+[0-9]{3,}|0[0-9]{2,}|[0-9]{5,})$")
LISTEN_TYPES = ("listen", "whisper", "barge")


@dataclass(frozen=True, slots=True)
class Published:
    """One message the PBX published."""

    topic: str
    payload: bytes

    @property
    def kind(self) -> str:
        """``response``, ``event``, ``cdr`` or whatever follows ``api/v1.0/``."""
        return topic_kind(self.topic)

    def json(self) -> Any:
        return json.loads(self.payload)


def topic_kind(topic: str) -> str:
    _, sep, rest = topic.partition(f"/api/{wire.API_VERSION}/")
    return rest if sep else topic


@dataclass(order=True, slots=True)
class Timer:
    """A scheduled callback on the simulated clock; ``cancel()`` makes it a no-op."""

    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    keep_on_reboot: bool = field(default=False, compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedPbx:
    """A Smart PBX with consistent state, speaking the vendor's wire format.

    Not thread-safe; call it from one thread (or one event loop).
    """

    def __init__(self, config: PbxConfig | None = None, publish: Publisher | None = None) -> None:
        self._config = config or PbxConfig()
        self.publish: Publisher | None = publish
        """Receives ``(full_topic, payload)`` for every message; ``None`` drops them."""
        self._rng = random.Random(self._config.seed)
        self._now = self._config.start_time
        self._boot_time = self._now - self._config.initial_uptime
        self._timers: list[Timer] = []
        self._timer_seq = itertools.count()
        # Asterisk uniqueid counter and channel-name suffix counter.
        self._uniq = self._rng.randint(20, 99)
        self._chan_seq = itertools.count(1)
        self._silent = False
        self._held: list[tuple[str, bytes]] | None = None
        self.published_counts: Counter[str] = Counter()
        """Messages published so far per topic kind (``response``, ``event``, ``cdr``...)."""
        self.dropped_counts: Counter[str] = Counter()
        """Messages not published because the PBX was silent, per topic kind."""
        self.commands_received = 0
        self.commands_ignored = 0
        """Commands dropped unread while silent or addressed to another token."""
        self.history: deque[Published] = deque(maxlen=self._config.history_size)
        """The most recent published messages (bounded by ``config.history_size``)."""
        self._extensions: dict[str, Extension] = {}
        self._trunks: dict[str, Trunk] = {}
        self._queues: dict[str, Queue] = {}
        self._conferences: dict[str, Conference] = {}
        self._ivrs: tuple[str, ...] = ()
        self._calls: dict[str, LiveCall] = {}
        self._transfers: dict[str, tuple[str, str]] = {}
        """Attended transfers in progress: channel -> (original call id, consultation id)."""
        self._build(self._config)

    # ------------------------------------------------------------------ state views

    @property
    def config(self) -> PbxConfig:
        return self._config

    @property
    def token(self) -> str:
        return self._config.token

    @property
    def base_topic(self) -> str:
        return wire.base_topic(self._config.token)

    @property
    def command_filter(self) -> str:
        """The subscription a PBX makes: ``device/<token>/api/v1.0/command/#``."""
        return wire.command_filter(self._config.token)

    @property
    def now(self) -> float:
        """The simulated clock, epoch seconds."""
        return self._now

    @property
    def uptime(self) -> float:
        return self._now - self._boot_time

    @property
    def silent(self) -> bool:
        """When True the PBX drops commands unread and publishes nothing (a hung device).

        Timers and scripting still change state; their messages are counted in
        :attr:`dropped_counts` and lost, as a device that lost its broker link would.
        """
        return self._silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self._silent = value

    @property
    def extensions(self) -> Mapping[str, Extension]:
        return self._extensions

    @property
    def trunks(self) -> Mapping[str, Trunk]:
        return self._trunks

    @property
    def queues(self) -> Mapping[str, Queue]:
        return self._queues

    @property
    def conferences(self) -> Mapping[str, Conference]:
        return self._conferences

    @property
    def ivr_numbers(self) -> tuple[str, ...]:
        return self._ivrs

    @property
    def calls(self) -> Mapping[str, LiveCall]:
        """Live calls by call id, oldest first."""
        return self._calls

    def extension_status(self, number: str) -> ExtStatus:
        """An extension's status, derived from registration, scripting and live calls."""
        ext = self._extensions[number]
        if not ext.available:
            return ExtStatus.UNAVAILABLE
        if ext.status_override is not None:
            return ext.status_override
        ringing = False
        for call in self._calls.values():
            if call.caller_ext == number or (
                call.callee_ext == number and call.answered is not None
            ):
                return ExtStatus.IN_USE
            if call.callee_ext == number:
                ringing = True
        return ExtStatus.RINGING if ringing else ExtStatus.IDLE

    def calls_of(self, number: str) -> list[LiveCall]:
        """Live calls an extension takes part in (as caller or callee)."""
        return [c for c in self._calls.values() if number in (c.caller_ext, c.callee_ext)]

    def find_call(self, callid_or_channel: str) -> LiveCall | None:
        """A live call by call id, or by one of its channels (as ``hangup`` accepts)."""
        if callid_or_channel in self._calls:
            return self._calls[callid_or_channel]
        for call in self._calls.values():
            if callid_or_channel in (call.source, call.destination):
                return call
        return None

    def describe(self) -> str:
        """A one-line summary for logs (never includes the token)."""
        registered = sum(1 for e in self._extensions.values() if e.available)
        return (
            f"{len(self._extensions)} extensions ({registered} registered), "
            f"{len(self._trunks)} trunks, {len(self._queues)} queues, "
            f"{len(self._conferences)} conferences, IVR {','.join(self._ivrs) or '-'}"
        )

    # ------------------------------------------------------------------ build

    def _build(self, config: PbxConfig) -> None:
        """Create the extension/trunk/queue/conference plan from the config and seed."""
        rng = random.Random(f"plan-{config.seed}")
        names = list(EXTENSION_NAMES)
        rng.shuffle(names)
        name_iter = itertools.cycle(names)
        # A fixed share of SIP phones is not registered; never the first, which examples
        # and tests dial from.
        offline = set(
            rng.sample(
                range(1, max(1, config.sip_extensions)),
                round(config.unregistered_ratio * max(0, config.sip_extensions - 1)),
            )
        )
        self._extensions = {}
        for i in range(config.sip_extensions):
            number = str(config.first_sip + i)
            name = next(name_iter)
            registered = i not in offline
            self._extensions[number] = Extension(
                number=number,
                kind="SIP",
                # A SIP account left unnamed shows its number, as in the document.
                username=name or number,
                registered=registered,
                ipaddr=self._random_contact(rng, number) if registered else None,
            )
        for i in range(config.fxs_extensions):
            number = str(config.first_fxs + i)
            self._extensions[number] = Extension(
                number=number, kind="FXS", username=next(name_iter), port=i + 1
            )
        self._trunks = {}
        for _ in range(config.sip_trunks):
            name = "SIP_" + "".join(rng.choice(LETTERS) for _ in range(6))
            self._trunks[name] = Trunk(name=name, kind="SIP")
        for i in range(config.fxo_trunks):
            # The first line is always plugged in so outbound calls have a way out.
            connected = i == 0 or rng.random() < 0.5
            self._trunks[f"FXO-{i + 1}"] = Trunk(
                name=f"FXO-{i + 1}",
                kind="FXO",
                port=i + 1,
                connected=connected,
                idle_vbat=rng.randint(48, 52) if connected else rng.randint(0, 1),
            )
        numbers = list(self._extensions)
        self._queues = {}
        for i in range(config.queues):
            number = str(config.first_queue + i)
            picked = set(rng.sample(numbers, min(config.queue_members, len(numbers))))
            self._queues[number] = Queue(
                number=number,
                description=QUEUE_DESCRIPTIONS[i % len(QUEUE_DESCRIPTIONS)],
                strategy=QUEUE_STRATEGIES[i % len(QUEUE_STRATEGIES)],
                members=[QueueMember(agent=n) for n in numbers if n in picked],
            )
        self._conferences = {}
        for i in range(config.conferences):
            number = str(config.first_conference + i)
            moderators = sorted(rng.sample(numbers, min(rng.randint(1, 2), len(numbers))))
            self._conferences[number] = Conference(
                number=number,
                description=CONFERENCE_DESCRIPTIONS[i % len(CONFERENCE_DESCRIPTIONS)],
                moderators=moderators,
                participantpassword=self._random_pin(rng),
                moderatorpassword=self._random_pin(rng),
                allowinvite=rng.random() < 0.7,
                waitformoderator=rng.random() < 0.5,
            )
        self._ivrs = tuple(config.ivr_numbers)
        self._check_number_plan()
        for number in self._extensions:
            self._extensions[number].reported = self.extension_status(number)

    def _check_number_plan(self) -> None:
        seen: set[str] = set()
        for number in itertools.chain(
            self._extensions, self._queues, self._conferences, self._ivrs
        ):
            if number in seen:
                raise ValueError(f"number {number} is used twice in the dial plan")
            seen.add(number)

    @staticmethod
    def _random_contact(rng: random.Random, number: str) -> str:
        port = 5060 if rng.random() < 0.4 else rng.randint(49152, 65535)
        return f"sip:{number}@192.168.8.{rng.randint(100, 250)}:{port}"

    @staticmethod
    def _random_pin(rng: random.Random) -> str:
        # Many rooms have no PIN at all (the document's second conference).
        if rng.random() < 0.4:
            return ""
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 5)))

    def _kind_of(self, number: str) -> str | None:
        if number in self._extensions:
            return "extension"
        if number in self._ivrs:
            return "ivr"
        if number in self._queues:
            return "queue"
        if number in self._conferences:
            return "conference"
        if _EXTERNAL_NUMBER.match(number):
            return "external"
        return None

    # ------------------------------------------------------------------ clock

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward, firing due timers in order."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        while self._timers and self._timers[0].due <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.due)
            timer.callback()
        self._now = target

    def tick(self) -> None:
        """Fire timers that are due now without moving the clock."""
        self.advance(0)

    def schedule(
        self, delay: float, callback: Callable[[], None], *, keep_on_reboot: bool = False
    ) -> Timer:
        """Run ``callback`` after ``delay`` simulated seconds (from :meth:`advance`)."""
        timer = Timer(self._now + max(0.0, delay), next(self._timer_seq), callback, keep_on_reboot)
        heapq.heappush(self._timers, timer)
        return timer

    @property
    def next_timer_due(self) -> float | None:
        """When the next pending timer fires, or None."""
        live = [t.due for t in self._timers if not t.cancelled]
        return min(live) if live else None

    # ------------------------------------------------------------------ publishing

    def _topic(self, suffix: str) -> str:
        return f"{self.base_topic}/{suffix}"

    def _send(self, topic: str, payload: bytes, *, hold: bool = True) -> None:
        if self._silent:
            self.dropped_counts[topic_kind(topic)] += 1
            return
        if hold and self._held is not None:
            self._held.append((topic, payload))
            return
        self._deliver(topic, payload)

    def _deliver(self, topic: str, payload: bytes) -> None:
        self.published_counts[topic_kind(topic)] += 1
        self.history.append(Published(topic, payload))
        if self.publish is not None:
            self.publish(topic, payload)

    def _emit(self, suffix: str, payload: dict[str, object]) -> None:
        self._send(self._topic(suffix), wire.encode(payload))

    def publish_raw(self, topic_suffix: str, payload: bytes) -> None:
        """Publish arbitrary bytes on ``device/<token>/api/v1.0/<topic_suffix>``.

        For tests of malformed input; it is published even while :attr:`silent`.
        """
        self._deliver(self._topic(topic_suffix), payload)

    def emit_event(self, payload: dict[str, object]) -> None:
        """Publish any event dict on the event topic (e.g. an event type clients don't know)."""
        self._emit("event", payload)

    def send_response(self, payload: dict[str, object]) -> None:
        """Publish a reply dict on the response topic (used by the command layer).

        Goes out at once, ahead of the events the command caused (see handle_command).
        """
        self._send(self._topic("response"), wire.encode(payload), hold=False)

    def number(self, value: int) -> int | str:
        """A count as the wire shows it: a string, or an int with the ``numbers_as_ints`` quirk."""
        return value if self._config.quirks.numbers_as_ints else str(value)

    def wire_list(self, items: Sequence[Mapping[str, object]]) -> object:
        """A list as the wire shows it: the field profile writes an empty one as ``{}``."""
        if not items and self._config.field_firmware:
            return {}
        return items

    def direction_text(self, direction: Direction) -> str:
        """A call's direction as the wire says it (the field profile never says Internal)."""
        if direction is Direction.INTERNAL and self._config.field_firmware:
            return str(Direction.OUTBOUND)
        return str(direction)

    def emit_device_status(self, online: bool) -> None:
        """Publish ``{"status": "online"|"offline"}`` on the ``status`` topic (field profile).

        The runner does it when it connects and before it disconnects; the same payload
        is its MQTT will. The document profile has no status topic: nothing is published.
        """
        if self._config.field_firmware:
            self._emit("status", self.device_status_payload(online))

    @staticmethod
    def device_status_payload(online: bool) -> dict[str, object]:
        return {"status": "online" if online else "offline"}

    def _call_status_changed(self, ended: LiveCall | None = None) -> None:
        """Field profile: a ``callstatus`` event listing the live calls, and ``hangup``.

        The event name and the calllist entry fields are field facts; that the list holds
        every live call, and the ``hangup`` event's fields, are this simulator's guesses.
        """
        if not self._config.field_firmware:
            return
        if ended is not None:
            self._emit(
                "event",
                {
                    "event": "hangup",
                    "callid": ended.callid,
                    "channel": ended.source,
                    "caller": ended.caller,
                    "called": ended.called,
                },
            )
        calllist = [
            {
                "caller": call.caller,
                "called": call.called,
                "state": call.state,
                "callid": call.callid,
                "calltype": self.direction_text(call.direction),
            }
            for call in self._calls.values()
        ]
        self._emit("event", {"event": "callstatus", "calllist": self.wire_list(calllist)})

    # ------------------------------------------------------------------ commands

    def handle_command(self, sub_topic: str, payload: bytes | str) -> None:
        """Process one command published on ``command/<sub_topic>``.

        ``sub_topic`` is ``system``, ``cfg``, ``call``, ``queue`` or ``conf``; a full topic
        (``device/<token>/api/v1.0/command/call``) is accepted too, and ignored when it is
        addressed to another token. Never raises for bad input: replies ``Failed`` when the
        request can be answered, ignores it otherwise.
        """
        self.commands_received += 1
        sub = self._sub_topic(sub_topic)
        if sub is None or self._silent:
            self.commands_ignored += 1
            return
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        # The reply goes out before the events the command causes, as the PBX acknowledges
        # an originate before its channels ring.
        outer, self._held = self._held, []
        try:
            commands.dispatch(self, sub, raw)
        finally:
            held, self._held = self._held, outer
        for topic, data in held:
            self._send(topic, data)

    def is_command_topic(self, topic: str) -> bool:
        """Whether a full topic is one this PBX takes commands on (``.../command/<sub>``)."""
        return topic.startswith(f"{self.base_topic}/command/")

    def _sub_topic(self, topic: str) -> str | None:
        if "/" not in topic:
            return topic
        prefix = f"{self.base_topic}/command/"
        return topic[len(prefix) :] if topic.startswith(prefix) else None

    # ------------------------------------------------------------------ identifiers

    def _new_callid(self) -> str:
        """Asterisk uniqueid: epoch seconds, a dot, a counter (``1673080587.2118``)."""
        self._uniq += 1
        return f"{int(self._now)}.{self._uniq}"

    def _ext_channel(self, ext: Extension) -> str:
        if ext.kind == "FXS":
            return f"FXS/{ext.port}"
        return f"PJSIP/{ext.number}-{next(self._chan_seq):08x}"

    def _trunk_channel(self, trunk: Trunk) -> str:
        if trunk.kind == "FXO":
            return f"FXO/{trunk.port}"
        return f"PJSIP/{trunk.name}-{next(self._chan_seq):08x}"

    def _local_channel(self, number: str) -> str:
        return f"Local/{number}@from-internal-{next(self._chan_seq):08x};1"

    # ------------------------------------------------------------------ status events

    def _status_event(self, ext: Extension, status: ExtStatus) -> None:
        event: dict[str, object] = {"event": "extension_status", "extension": ext.number}
        if ext.kind == "SIP" and ext.ipaddr and status is not ExtStatus.UNAVAILABLE:
            event["ipaddr"] = ext.ipaddr
        event["status"] = str(status)
        self._emit("event", event)

    def _sync(self, *numbers: str | None) -> None:
        """Publish extension_status for each given extension whose status changed."""
        for number in numbers:
            ext = self._extensions.get(number) if number else None
            if ext is None:
                continue
            status = self.extension_status(ext.number)
            if status != ext.reported:
                ext.reported = status
                self._status_event(ext, status)

    def _invite(self, from_number: str, to_number: str, callid: str) -> None:
        key = "called" if self._config.quirks.called_for_callid else "callid"
        self._emit("event", {"event": "invite", "from": from_number, "to": to_number, key: callid})

    # ------------------------------------------------------------------ calls

    def _require_available(self, number: str, role: str) -> Extension:
        ext = self._extensions[number]
        if not ext.available:
            raise PbxError(f"{role} is unavailable")
        return ext

    def _permission_needed(self, number: str) -> int:
        """Permission level an external number needs (see extension_set ``permission``)."""
        if number.startswith(("+", "00")):
            return 4
        if number.startswith("0"):
            return 3
        return 2

    def _check_outbound(self, number: str, via: Extension) -> Trunk:
        if via.permission < self._permission_needed(number):
            raise PbxError("permission denied")
        trunk = self._free_trunk()
        if trunk is None:
            raise PbxError("no trunk available")
        return trunk

    def _free_trunk(self, name: str | None = None) -> Trunk | None:
        if name is not None:
            trunk = self._trunks.get(name)
            return trunk if trunk and trunk.connected and not trunk.in_call else None
        # SIP trunks first: FXO lines are the fallback of a typical office dial plan.
        for kind in ("SIP", "FXO"):
            for trunk in self._trunks.values():
                if trunk.kind == kind and trunk.connected and not trunk.in_call:
                    return trunk
        return None

    def _dialpermission(self, value: str | None) -> Extension:
        if not value:
            raise PbxError("dialpermission is required")
        ext = self._extensions.get(value)
        if ext is None:
            raise PbxError("dialpermission is not existing")
        return ext

    def place_call(
        self,
        caller: str,
        callee: str,
        *,
        dialpermission: str | None = None,
        autoanswer: bool = False,
    ) -> str:
        """The ``dial`` command: ring ``callee`` on behalf of ``caller``; returns the call id.

        ``caller`` is an extension, an IVR or a queue number; ``callee`` an extension, IVR,
        queue, conference or external number. Raises :class:`PbxError` as the PBX refuses.
        """
        caller_kind = self._kind_of(caller)
        caller_ext: Extension | None = None
        if caller_kind == "extension":
            caller_ext = self._require_available(caller, "caller")
            if self.calls_of(caller):
                raise PbxError("caller is busy")
        elif caller_kind not in ("ivr", "queue"):
            raise PbxError("caller is not existing")
        callee_kind = self._kind_of(callee)
        if callee_kind is None:
            raise PbxError("callee is not existing")
        if callee == caller:
            raise PbxError("caller and callee are the same")
        trunk: Trunk | None = None
        if callee_kind == "extension":
            self._require_available(callee, "callee")
        elif callee_kind == "external":
            # An extension dials out with its own permission; a queue or IVR must borrow one.
            via = caller_ext or self._dialpermission(dialpermission)
            trunk = self._check_outbound(callee, via)
        elif callee_kind == "conference" and caller_ext is None:
            raise PbxError("caller is not an extension")
        source = self._ext_channel(caller_ext) if caller_ext else self._local_channel(caller)
        call = LiveCall(
            callid=self._new_callid(),
            caller=caller,
            source=source,
            called=callee,
            destination="",
            direction=Direction.OUTBOUND if trunk else Direction.INTERNAL,
            start=self._now,
            caller_ext=caller if caller_ext else None,
        )
        self._calls[call.callid] = call
        if caller_ext:
            caller_ext.status_override = None
        self._sync(call.caller_ext)
        self._route(call, callee_kind, trunk, autoanswer)
        return call.callid

    def incoming_call(
        self,
        from_number: str,
        to_number: str,
        *,
        trunk: str | None = None,
        autoanswer: bool = False,
    ) -> str:
        """An outside caller rings in over a trunk (FXO or SIP); returns the call id.

        ``to_number`` is an extension, IVR, queue or conference. An unavailable extension
        gives a ``FAILED`` CDR, a busy one ``BUSY``, as on the PBX.
        """
        kind = self._kind_of(to_number)
        if kind in (None, "external"):
            raise PbxError("callee is not existing")
        line = self._free_trunk(trunk)
        if line is None:
            raise PbxError("no trunk available")
        call = LiveCall(
            callid=self._new_callid(),
            caller=from_number,
            source=self._trunk_channel(line),
            called=to_number,
            destination="",
            direction=Direction.INBOUND,
            start=self._now,
            trunk=line.name,
        )
        if line.kind == "FXO":
            line.in_call = True
        self._calls[call.callid] = call
        if kind == "extension" and not self._extensions[to_number].available:
            self._end_call(call, Disposition.FAILED)
            return call.callid
        assert kind is not None
        self._route(call, kind, None, autoanswer)
        return call.callid

    def _route(self, call: LiveCall, kind: str, trunk: Trunk | None, autoanswer: bool) -> None:
        """Connect a new call's far end: ring a phone or trunk, or enter an IVR/queue/room."""
        callee = call.called
        if kind == "extension":
            ext = self._extensions[callee]
            if self.extension_status(callee) is not ExtStatus.IDLE:
                self._end_call(call, Disposition.BUSY)
                return
            ext.status_override = None
            call.callee_ext = callee
            call.destination = self._ext_channel(ext)
            self._sync(callee)
            self._invite(call.caller, callee, call.callid)
            self._ring(call, autoanswer)
        elif kind == "external":
            assert trunk is not None
            call.trunk = trunk.name
            call.destination = self._trunk_channel(trunk)
            if trunk.kind == "FXO":
                trunk.in_call = True
            self._ring(call, autoanswer)
        elif kind == "ivr":
            call.kind = CallKind.IVR
            call.destination = self._local_channel(callee)
            self._answer(call)
        elif kind == "queue":
            call.kind = CallKind.QUEUE
            call.queue = callee
            call.destination = self._local_channel(callee)
            # The queue answers at once (the caller hears music) and then looks for an agent.
            self._answer(call)
            queue = self._queues[callee]
            queue.waiting.append(call.callid)
            queue.max = max(queue.max, len(queue.waiting))
            self._schedule_dispatch()
        elif kind == "conference":
            call.kind = CallKind.CONFERENCE
            call.conference = callee
            call.destination = f"ConfBridge/{callee}"
            self._answer(call)

    def _ring(self, call: LiveCall, autoanswer: bool) -> None:
        delay = self._config.answer_delay
        if autoanswer or delay == 0:
            self._answer(call)
            return
        self._call_status_changed()
        callid = call.callid
        if delay is not None:
            self.schedule(delay, lambda: self._answer_if_live(callid))
        self.schedule(self._config.ring_timeout, lambda: self._ring_timeout(callid))

    def _answer_if_live(self, callid: str) -> None:
        call = self._calls.get(callid)
        if call is not None and call.answered is None:
            self._answer(call)

    def _ring_timeout(self, callid: str) -> None:
        call = self._calls.get(callid)
        if call is not None and call.answered is None:
            self._end_call(call, Disposition.NO_ANSWER)

    def _answer(self, call: LiveCall) -> None:
        call.answered = self._now
        if call.kind is CallKind.CONFERENCE:
            # A conf_invite leg (placed by the room) joins its called party; an extension
            # that dialled the room joins itself.
            if call.caller == call.conference:
                self._join(call, call.called, call.destination)
            else:
                self._join(call, call.caller, call.source)
        self._sync(call.callee_ext)
        self._call_status_changed()

    def answer_call(self, callid: str) -> None:
        """Answer a ringing call now (the called phone picks up)."""
        call = self._calls.get(callid)
        if call is None:
            raise PbxError("Channel not found")
        if call.answered is None:
            self._answer(call)

    def hangup_call(self, callid_or_channel: str, disposition: Disposition | None = None) -> None:
        """The ``hangup`` command: end a call by call id or channel name, with its CDR."""
        call = self.find_call(callid_or_channel)
        if call is None:
            raise PbxError("Channel not found")
        self._end_call(call, disposition)

    def _end_call(self, call: LiveCall, disposition: Disposition | None = None) -> None:
        if self._calls.pop(call.callid, None) is None:
            return
        for channel, legs in list(self._transfers.items()):
            if call.callid in legs:
                del self._transfers[channel]
        if disposition is None:
            disposition = (
                Disposition.ANSWERED if call.answered is not None else Disposition.NO_ANSWER
            )
        trunk = self._trunks.get(call.trunk) if call.trunk else None
        if trunk is not None and trunk.kind == "FXO":
            trunk.in_call = False
        for number in (call.caller_ext, call.callee_ext):
            if number and number in self._extensions:
                self._extensions[number].status_override = None
        freed_agent = False
        if call.queue and (queue := self._queues.get(call.queue)) is not None:
            freed_agent = self._queue_call_ended(queue, call)
        if call.conference and (conf := self._conferences.get(call.conference)) is not None:
            conf.members = [m for m in conf.members if m.callid != call.callid]
        # A listen/whisper/barge session ends with the call it listens to.
        for spy in [c for c in self._calls.values() if c.spied_call == call.callid]:
            self._end_call(spy)
        self._sync(call.caller_ext, call.callee_ext)
        self._emit_call_cdr(call, disposition)
        self._call_status_changed(ended=call)
        if freed_agent or self._is_agent(call.caller_ext) or self._is_agent(call.callee_ext):
            self._schedule_dispatch()

    def _emit_call_cdr(self, call: LiveCall, disposition: Disposition) -> None:
        billsec = int(self._now - call.answered) if call.answered is not None else 0
        self._emit(
            "cdr",
            {
                "event": "cdr",
                "callid": call.callid,
                "src": call.caller,
                "srctech": call.source,
                "dst": call.called,
                "dsttech": call.destination,
                "start": wire.cdr_time(call.start, self._config.timezone),
                "end": wire.cdr_time(self._now, self._config.timezone),
                "billsec": self.number(billsec),
                "disposition": str(disposition),
                "direction": self.direction_text(call.direction),
                "dtmf": call.dtmf,
                "recordfile": "",
            },
        )

    # ------------------------------------------------------------------ listen

    def listen(self, monitor: str, extension: str, mode: str) -> str:
        """The ``listen`` command: ``monitor`` spies on ``extension``'s call; returns a call id."""
        if mode not in LISTEN_TYPES:
            raise PbxError("type is invalid")
        if monitor not in self._extensions:
            raise PbxError("monitor is not existing")
        if extension not in self._extensions:
            raise PbxError("extension is not existing")
        if monitor == extension:
            raise PbxError("monitor and extension are the same")
        spy_ext = self._require_available(monitor, "monitor")
        if self.calls_of(monitor):
            raise PbxError("monitor is busy")
        target = next(iter(self.calls_of(extension)), None)
        if target is None:
            raise PbxError("extension is not in a call")
        target_channel = target.source if target.caller_ext == extension else target.destination
        spy_ext.status_override = None
        call = LiveCall(
            callid=self._new_callid(),
            caller=monitor,
            source=self._ext_channel(spy_ext),
            called=extension,
            destination=target_channel,
            direction=Direction.INTERNAL,
            start=self._now,
            kind=CallKind.SPY,
            answered=self._now,
            caller_ext=monitor,
            spied_call=target.callid,
        )
        self._calls[call.callid] = call
        self._sync(monitor)
        self._call_status_changed()
        return call.callid

    # ------------------------------------------------------------------ field commands

    def _own_channel(self, call: LiveCall, number: str) -> tuple[str, str]:
        """(the extension's channel, the other party's) in ``call``."""
        if call.caller_ext == number:
            return call.source, call.destination
        return call.destination, call.source

    def extension_call(self, extension: str) -> dict[str, object]:
        """``extcallinfo`` (field profile): the extension's current call and its channels."""
        if extension not in self._extensions:
            raise PbxError("extension is not existing")
        call = next(iter(self.calls_of(extension)), None)
        if call is None:
            raise PbxError("extension is not in a call")
        channel, peer = self._own_channel(call, extension)
        return {
            "callid": call.callid,
            "channelid": channel,
            "peerchannelid": peer,
            "from": call.caller,
            "to": call.called,
            "direction": self.direction_text(call.direction),
        }

    def attended_transfer(self, channel: str, target: str) -> str:
        """``atxfer`` (field profile): the extension on ``channel`` consults ``target``.

        The other party waits; ``target`` rings (answering after ``answer_delay``).
        Returns the consultation call's id. Finish with :meth:`transfer_operate`.
        """
        call = self.find_call(channel)
        if call is None:
            raise PbxError("Channel not found")
        transferer = call.caller_ext if channel == call.source else call.callee_ext
        if transferer is None:
            raise PbxError("channel is not an extension's")
        if channel in self._transfers:
            raise PbxError("transfer already in progress")
        if self._kind_of(target) != "extension":
            raise PbxError("tonumber is not existing")
        if target in (call.caller_ext, call.callee_ext):
            raise PbxError("tonumber is already in the call")
        self._require_available(target, "tonumber")
        if self.extension_status(target) is not ExtStatus.IDLE:
            raise PbxError("tonumber is busy")
        ext = self._extensions[transferer]
        consult = LiveCall(
            callid=self._new_callid(),
            caller=transferer,
            source=self._ext_channel(ext),
            called=target,
            destination="",
            direction=Direction.INTERNAL,
            start=self._now,
            caller_ext=transferer,
        )
        self._calls[consult.callid] = consult
        self._transfers[channel] = (call.callid, consult.callid)
        self._route(consult, "extension", None, autoanswer=False)
        return consult.callid

    def transfer_operate(self, channel: str, operate: str) -> None:
        """``atxferoperate`` (field profile): ``complete`` hands the waiting party to the
        transfer target and frees the transferer; ``cancel`` drops the consultation."""
        if operate not in ("complete", "cancel"):
            raise PbxError("operate is invalid")
        pending = self._transfers.pop(channel, None)
        if pending is None:
            raise PbxError("No transfer in progress")
        original = self._calls.get(pending[0])
        consult = self._calls.get(pending[1])
        if original is None or consult is None:
            raise PbxError("Channel not found")
        if operate == "cancel":
            self._end_call(consult)
            return
        transferer = consult.caller_ext
        target = consult.called
        # The consultation leg becomes the target's side of the original call.
        del self._calls[consult.callid]
        if original.caller_ext == transferer:
            original.caller, original.caller_ext = target, target
            original.source = consult.destination
        else:
            original.called, original.callee_ext = target, target
            original.destination = consult.destination
        if consult.answered is None:
            # A transfer completed while the target still rings: it rings on with the
            # waiting party (Asterisk's "blond" transfer).
            original.answered = None
            self._ring(original, autoanswer=False)
        self._sync(transferer, target)
        self._call_status_changed()

    # ------------------------------------------------------------------ queues

    def _queue(self, number: str) -> Queue:
        queue = self._queues.get(number)
        if queue is None:
            raise PbxError("queue is not existing")
        return queue

    def queue_add(self, queue: str, extension: str) -> None:
        q = self._queues.get(queue)
        if q is None:
            raise PbxError("Unable to add interface to queue: No such queue")
        if extension not in self._extensions:
            raise PbxError("extension is not existing")
        if q.member(extension) is not None:
            raise PbxError("Unable to add interface: Already there")
        q.members.append(QueueMember(agent=extension))
        self._schedule_dispatch()

    def queue_remove(self, queue: str, extension: str) -> None:
        q = self._queues.get(queue)
        if q is None:
            raise PbxError("Unable to remove interface from queue: No such queue")
        member = q.member(extension)
        if member is None:
            raise PbxError("Unable to remove interface: Not there")
        q.members.remove(member)

    def queue_pause(self, queue: str, extension: str, paused: bool) -> None:
        q = self._queues.get(queue)
        if q is None:
            raise PbxError("Interface not found")
        member = q.member(extension)
        if member is None:
            raise PbxError("Interface not found")
        member.paused = paused
        if not paused:
            self._schedule_dispatch()

    def queue_pause_everywhere(self, extension: str, paused: bool) -> int:
        """``queue_paused`` with ``queue: ""`` (field profile): every queue of the agent.

        Returns how many queues were changed; none at all is the PBX's "Interface not found".
        """
        members = [m for q in self._queues.values() if (m := q.member(extension)) is not None]
        if not members:
            raise PbxError("Interface not found")
        for member in members:
            member.paused = paused
        if not paused:
            self._schedule_dispatch()
        return len(members)

    def _is_agent(self, number: str | None) -> bool:
        return number is not None and any(q.member(number) for q in self._queues.values())

    def _schedule_dispatch(self) -> None:
        """Connect waiting queue callers to free agents once an agent would pick up."""
        if not any(q.waiting for q in self._queues.values()):
            return
        delay = self._config.answer_delay
        if delay == 0:
            self._dispatch_queues()
        elif delay is not None:
            self.schedule(delay, self._dispatch_queues)

    def _dispatch_queues(self) -> None:
        for queue in self._queues.values():
            while queue.waiting:
                agent = self._pick_agent(queue)
                if agent is None:
                    break
                call = self._calls[queue.waiting.pop(0)]
                ext = self._extensions[agent]
                call.callee_ext = agent
                call.destination = self._ext_channel(ext)
                call.agent_connected = self._now
                ext.status_override = None
                self._invite(call.caller, agent, call.callid)
                self._sync(agent)

    def _pick_agent(self, queue: Queue) -> str | None:
        free = [
            m.agent
            for m in queue.members
            if not m.paused
            and m.agent in self._extensions
            and self.extension_status(m.agent) is ExtStatus.IDLE
        ]
        if not free:
            return None
        if queue.strategy == "random":
            return self._rng.choice(free)
        if queue.strategy in ("roundrobin", "rrmemory", "rrordered"):
            order = [m.agent for m in queue.members]
            for offset in range(len(order)):
                agent = order[(queue.next_member + offset) % len(order)]
                if agent in free:
                    queue.next_member = (order.index(agent) + 1) % len(order)
                    return agent
        # ringall: every free agent rings and the first listed one answers.
        return free[0]

    def _queue_call_ended(self, queue: Queue, call: LiveCall) -> bool:
        """Update the queue's counters; True when an agent became free."""
        if call.agent_connected is None:
            if call.callid in queue.waiting:
                queue.waiting.remove(call.callid)
            queue.abandoned += 1
            return False
        hold = call.agent_connected - (call.answered or call.start)
        talk = self._now - call.agent_connected
        # Asterisk's queue averages: new = (old * 3 + sample) / 4.
        queue.holdtime = int((queue.holdtime * 3 + hold) / 4)
        queue.talktime = int((queue.talktime * 3 + talk) / 4)
        queue.completed += 1
        return True

    # ------------------------------------------------------------------ conferences

    def _conference(self, number: str) -> Conference:
        conf = self._conferences.get(number)
        if conf is None:
            raise PbxError("conference is not existing")
        return conf

    def _join(self, call: LiveCall, member: str, channel: str) -> None:
        conf = self._conferences[call.conference or ""]
        conf.members.append(
            ConferenceMember(
                callerid=member,
                channel=channel,
                callid=call.callid,
                admin=member in conf.moderators,
                joined=self._now,
            )
        )

    def conference_invite(self, conf: str, member: str, dialpermission: str | None = None) -> str:
        """The ``conf_invite`` command: the PBX calls ``member`` into the room; returns call id.

        The member joins when the call is answered (after ``answer_delay``).
        """
        room = self._conference(conf)
        kind = self._kind_of(member)
        trunk: Trunk | None = None
        if kind == "extension":
            self._require_available(member, "member")
            if self.extension_status(member) is not ExtStatus.IDLE:
                raise PbxError("member is busy")
            if dialpermission and dialpermission not in self._extensions:
                raise PbxError("dialpermission is not existing")
        elif kind == "external":
            trunk = self._check_outbound(member, self._dialpermission(dialpermission))
        else:
            raise PbxError("member is not existing")
        if any(m.callerid == member for m in room.members):
            raise PbxError("member is already in the conference")
        call = LiveCall(
            callid=self._new_callid(),
            caller=conf,
            source=self._local_channel(conf),
            called=member,
            destination="",
            direction=Direction.OUTBOUND if trunk else Direction.INTERNAL,
            start=self._now,
            kind=CallKind.CONFERENCE,
            conference=conf,
        )
        self._calls[call.callid] = call
        if trunk is not None:
            call.trunk = trunk.name
            call.destination = self._trunk_channel(trunk)
            if trunk.kind == "FXO":
                trunk.in_call = True
        else:
            ext = self._extensions[member]
            ext.status_override = None
            call.callee_ext = member
            call.destination = self._ext_channel(ext)
            self._sync(member)
            self._invite(conf, member, call.callid)
        self._ring(call, autoanswer=False)
        return call.callid

    def _conference_member(self, conf: str, channel: str) -> ConferenceMember:
        room = self._conferences.get(conf)
        if room is None:
            raise PbxError("No Conference by that name found.")
        member = room.member_by_channel(channel)
        if member is None:
            raise PbxError("No Channel by that name found in Conference.")
        return member

    def conference_kick(self, conf: str, channel: str) -> None:
        member = self._conference_member(conf, channel)
        call = self._calls.get(member.callid)
        if call is not None:
            self._end_call(call)

    def conference_mute(self, conf: str, channel: str, muted: bool) -> None:
        member = self._conference_member(conf, channel)
        member.muted = muted
        if muted:
            member.talking = False

    def set_talking(self, conf: str, channel: str, talking: bool) -> None:
        """Scripting: mark a conference member as talking (muted members never talk)."""
        member = self._conference_member(conf, channel)
        member.talking = talking and not member.muted

    # ------------------------------------------------------------------ configuration

    def _extension(self, number: str) -> Extension:
        ext = self._extensions.get(number)
        if ext is None:
            raise PbxError("extension is not existing")
        return ext

    def set_extension(
        self,
        number: str,
        *,
        fullname: str | None = None,
        permission: int | None = None,
        logged_out: bool | None = None,
    ) -> None:
        """The ``extension_set`` command: name, outbound permission 0-4, login/logout."""
        ext = self._extension(number)
        if permission is not None and not 0 <= permission <= 4:
            raise PbxError("permission is invalid")
        if fullname is not None:
            ext.username = fullname
        if permission is not None:
            ext.permission = permission
        if logged_out is not None and logged_out != ext.logged_out:
            ext.logged_out = logged_out
            if logged_out:
                for call in self.calls_of(number):
                    self._end_call(call)
            self._sync(number)

    def set_alarm(self, number: str, alarm: Alarm) -> None:
        """The ``alarm_set`` command (validation of the fields is the command layer's)."""
        self._extension(number).alarm = alarm

    # ------------------------------------------------------------------ scripting

    def ivr_keypress(self, ivr: str, caller: str, dtmf: str, callid: str | None = None) -> str:
        """Emit an ``ivrdtmf`` event; returns the call id used.

        Without ``callid`` the caller's live call to that IVR is used (its CDR then carries
        the keys pressed), or a fresh id when there is none.
        """
        if callid is None:
            call = next(
                (c for c in self._calls.values() if c.called == ivr and c.caller == caller), None
            )
            callid = call.callid if call else self._new_callid()
        if (call := self._calls.get(callid)) is not None:
            call.dtmf += dtmf
        key = "called" if self._config.quirks.called_for_callid else "callid"
        self._emit(
            "event", {"event": "ivrdtmf", "ivr": ivr, "caller": caller, "dtmf": dtmf, key: callid}
        )
        return callid

    def emit_cdr(
        self,
        src: str = "2005",
        dst: str = "2006",
        *,
        disposition: str = "ANSWERED",
        billsec: int = 0,
        direction: str = "Internal",
        srctech: str | None = None,
        dsttech: str | None = None,
        callid: str | None = None,
        start: float | None = None,
        end: float | None = None,
        dtmf: str = "",
        recordfile: str = "",
    ) -> dict[str, object]:
        """Publish a CDR for a call that did not go through the simulator; returns it.

        Channels default to the extensions' own (``FXS/5``, ``PJSIP/8001-...``).
        """
        end = self._now if end is None else end
        start = end - billsec if start is None else start
        payload: dict[str, object] = {
            "event": "cdr",
            "callid": callid or self._new_callid(),
            "src": src,
            "srctech": srctech if srctech is not None else self._channel_name(src),
            "dst": dst,
            "dsttech": dsttech if dsttech is not None else self._channel_name(dst),
            "start": wire.cdr_time(start, self._config.timezone),
            "end": wire.cdr_time(end, self._config.timezone),
            "billsec": self.number(billsec),
            "disposition": disposition,
            "direction": direction,
            "dtmf": dtmf,
            "recordfile": recordfile,
        }
        self._emit("cdr", payload)
        return payload

    def _channel_name(self, number: str) -> str:
        ext = self._extensions.get(number)
        return self._ext_channel(ext) if ext else ""

    def set_extension_status(self, number: str, status: ExtStatus | str) -> None:
        """Force an extension's status and publish it (even when unchanged).

        ``Unavailable`` unregisters the phone; any other status registers it and holds
        until the extension's calls change (e.g. ``Busy`` as do-not-disturb).
        """
        ext = self._extension(number)
        wanted = ExtStatus(status)
        if wanted is ExtStatus.UNAVAILABLE:
            ext.registered = False
            ext.status_override = None
            for call in self.calls_of(number):
                self._end_call(call, Disposition.FAILED)
        else:
            if not ext.registered:
                ext.registered = True
                ext.ipaddr = ext.ipaddr or self._random_contact(self._rng, number)
            ext.logged_out = False
            ext.status_override = None
            if self.extension_status(number) is not wanted:
                ext.status_override = wanted
        ext.reported = self.extension_status(number)
        self._status_event(ext, ext.reported)

    def burst_extension_status(self, count: int) -> int:
        """Publish ``count`` extension_status events back to back; returns how many.

        Cycles over registered extensions without calls, alternating each between InUse and
        Idle so that the state stays consistent (an even burst per extension ends Idle).
        """
        pool = [
            n
            for n, e in self._extensions.items()
            if e.available and not self.calls_of(n) and e.status_override is None
        ] or list(self._extensions)
        if not pool:
            return 0
        for i in range(count):
            number = pool[i % len(pool)]
            busy = (i // len(pool)) % 2 == 0
            self.set_extension_status(number, ExtStatus.IN_USE if busy else ExtStatus.IDLE)
        return count

    def set_trunk_connected(self, name: str, connected: bool) -> None:
        """Plug or unplug a trunk (FXO ``vbat`` follows); calls on it end."""
        trunk = self._trunks.get(name)
        if trunk is None:
            raise PbxError("trunk is not existing")
        trunk.connected = connected
        if connected and trunk.kind == "FXO" and trunk.idle_vbat < 40:
            trunk.idle_vbat = self._rng.randint(48, 52)
        if not connected:
            for call in [c for c in self._calls.values() if c.trunk == name]:
                self._end_call(call, Disposition.FAILED)

    def add_extension(
        self,
        number: str | None = None,
        *,
        kind: str = "SIP",
        username: str | None = None,
        port: int | None = None,
        registered: bool = True,
    ) -> Extension:
        """Create an extension (next free number of its kind by default) and announce it."""
        if kind not in ("SIP", "FXS"):
            raise ValueError("kind must be SIP or FXS")
        same = [int(e.number) for e in self._extensions.values() if e.kind == kind]
        first = self._config.first_sip if kind == "SIP" else self._config.first_fxs
        if number is None:
            number = str(max(same, default=first - 1) + 1)
        if self._kind_of(number) not in (None, "external"):
            raise ValueError(f"number {number} is already in use")
        if kind == "FXS" and port is None:
            used = {e.port for e in self._extensions.values() if e.kind == "FXS"}
            port = next(p for p in itertools.count(1) if p not in used)
        ext = Extension(
            number=number,
            kind=kind,
            username=(number if kind == "SIP" else "") if username is None else username,
            port=port if kind == "FXS" else None,
            registered=registered,
            ipaddr=self._random_contact(self._rng, number) if kind == "SIP" else None,
        )
        self._extensions[number] = ext
        self._sync(number)
        return ext

    def remove_extension(self, number: str) -> None:
        """Delete an extension: its calls end, it leaves every queue."""
        self._extension(number)
        for call in self.calls_of(number):
            self._end_call(call)
        for queue in self._queues.values():
            queue.members = [m for m in queue.members if m.agent != number]
        del self._extensions[number]

    def reboot(self, config: PbxConfig | None = None) -> None:
        """Restart: uptime 0, live calls dropped without CDRs, state rebuilt from the config.

        A different ``config`` (same token) changes the extension set, as reconfiguring a
        device and rebooting it does. Nothing is published; clients must re-read.
        """
        if config is not None:
            if config.token != self._config.token:
                raise ValueError("reboot cannot change the token")
            self._config = config
        self._calls.clear()
        self._transfers.clear()
        self._timers = [t for t in self._timers if t.keep_on_reboot and not t.cancelled]
        heapq.heapify(self._timers)
        self._boot_time = self._now
        self._build(self._config)

    def iter_history(self, kind: str | None = None) -> Iterator[Published]:
        """Published messages still in :attr:`history`, optionally of one kind."""
        return (p for p in self.history if kind is None or p.kind == kind)

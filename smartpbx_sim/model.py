"""The PBX's state: extensions, trunks, queues, conferences and live calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ExtStatus(StrEnum):
    """Extension states as the PBX reports them (Asterisk hint states)."""

    IDLE = "Idle"
    IN_USE = "InUse"
    RINGING = "Ringing"
    BUSY = "Busy"
    UNAVAILABLE = "Unavailable"


class Disposition(StrEnum):
    """Asterisk CDR dispositions."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"


class Direction(StrEnum):
    INTERNAL = "Internal"
    OUTBOUND = "Outbound"
    INBOUND = "Inbound"


# Asterisk device states as queue member ``status`` codes (see NOTES.md).
QUEUE_DEVICE_STATE = {
    ExtStatus.IDLE: 1,
    ExtStatus.IN_USE: 2,
    ExtStatus.BUSY: 3,
    ExtStatus.UNAVAILABLE: 5,
    ExtStatus.RINGING: 6,
}


@dataclass(slots=True)
class Alarm:
    """A wake-up call set by ``alarm_set``."""

    start: str
    clock_sound: str
    cycle: str
    times: str
    days: str


@dataclass(slots=True)
class Extension:
    number: str
    kind: str  # "SIP" or "FXS"
    username: str
    port: int | None = None  # FXS channel
    registered: bool = True  # SIP only: an unregistered phone is Unavailable
    logged_out: bool = False  # extension_set logout_status "1"
    permission: int = 4  # 0 device ... 4 international
    ipaddr: str | None = None  # SIP contact while registered
    # Set by scripting (e.g. Busy = do-not-disturb); holds until the extension's calls change.
    status_override: ExtStatus | None = None
    reported: ExtStatus | None = None  # last status published, to emit only changes
    alarm: Alarm | None = None

    @property
    def available(self) -> bool:
        return self.registered and not self.logged_out


@dataclass(slots=True)
class Trunk:
    name: str
    kind: str  # "SIP" or "FXO"
    port: int | None = None
    connected: bool = True
    idle_vbat: int = 0  # FXO on-hook line voltage while connected
    in_call: bool = False  # FXO only: the line is off-hook

    @property
    def status(self) -> str:
        if not self.connected:
            return "Disconnected"
        # A SIP trunk carries many calls and stays Idle; an FXO line carries one.
        return "InUse" if self.in_call else "Idle"

    @property
    def vbat(self) -> int:
        """Line voltage: ~50 V on hook, ~8 V off hook, ~0-1 V with no line plugged in."""
        if self.kind != "FXO":
            return 0
        if not self.connected:
            return 1 if self.idle_vbat % 2 else 0
        return 8 if self.in_call else self.idle_vbat


@dataclass(slots=True)
class QueueMember:
    agent: str
    paused: bool = False


@dataclass(slots=True)
class Queue:
    number: str
    description: str
    strategy: str
    members: list[QueueMember] = field(default_factory=list)
    max: int = 0
    completed: int = 0
    abandoned: int = 0
    holdtime: int = 0  # running average, seconds
    talktime: int = 0  # running average, seconds
    waiting: list[str] = field(default_factory=list)  # call ids waiting for an agent
    next_member: int = 0  # round-robin position

    def member(self, agent: str) -> QueueMember | None:
        return next((m for m in self.members if m.agent == agent), None)


@dataclass(slots=True)
class ConferenceMember:
    callerid: str
    channel: str
    callid: str
    admin: bool
    joined: float
    muted: bool = False
    talking: bool = False


@dataclass(slots=True)
class Conference:
    number: str
    description: str
    moderators: list[str]
    participantpassword: str
    moderatorpassword: str
    allowinvite: bool
    waitformoderator: bool
    members: list[ConferenceMember] = field(default_factory=list)

    def member_by_channel(self, channel: str) -> ConferenceMember | None:
        return next((m for m in self.members if m.channel == channel), None)


class CallKind(StrEnum):
    """What a live call connects, which decides how it is answered and ended."""

    DIRECT = "direct"  # a party calls another party
    IVR = "ivr"  # the called party is an IVR menu
    QUEUE = "queue"  # the called party is a queue, answered by an agent
    SPY = "spy"  # a listen/whisper/barge session on another call
    CONFERENCE = "conference"  # a conference participant's leg


@dataclass(slots=True)
class LiveCall:
    callid: str
    caller: str
    source: str
    called: str
    destination: str
    direction: Direction
    start: float
    kind: CallKind = CallKind.DIRECT
    answered: float | None = None
    caller_ext: str | None = None  # extensions whose status this call drives
    callee_ext: str | None = None
    trunk: str | None = None
    queue: str | None = None
    conference: str | None = None
    spied_call: str | None = None
    agent_connected: float | None = None  # queue calls: when an agent took the call
    dtmf: str = ""
    recording: str = "no"

    @property
    def state(self) -> str:
        return "Up" if self.answered is not None else "Ringing"

"""Immutable, typed models of every Smart PBX response and event.

Every model keeps the payload it was parsed from in ``raw`` (excluded from equality and
repr), so fields the firmware adds later are never lost. Parsing lives in ``parsing``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum
import logging
from typing import Any, Protocol

_LOGGER = logging.getLogger(__name__)

type RawPayload = Mapping[str, Any]


def _plain(payload: RawPayload) -> dict[str, Any]:
    """A plain dict copy, so nobody holding it can mutate a model's payload."""
    return {
        key: _plain(value) if isinstance(value, Mapping) else value
        for key, value in payload.items()
    }


def _iso(value: datetime | None) -> str | None:
    # The PBX prints its local wall-clock time without a zone: keep it naive, as sent.
    return None if value is None else value.isoformat()


class ExtensionState(StrEnum):
    """Extension (Asterisk hint) state, normalised. UNKNOWN keeps the raw text elsewhere."""

    IDLE = "idle"
    IN_USE = "in_use"
    BUSY = "busy"
    RINGING = "ringing"
    ON_HOLD = "on_hold"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


class ExtensionType(StrEnum):
    """Kind of extension."""

    SIP = "sip"
    FXS = "fxs"
    UNKNOWN = "unknown"


class TrunkState(StrEnum):
    """Trunk state, normalised."""

    IDLE = "idle"
    IN_USE = "in_use"
    BUSY = "busy"
    DISCONNECTED = "disconnected"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


class TrunkType(StrEnum):
    """Kind of trunk."""

    SIP = "sip"
    FXO = "fxo"
    UNKNOWN = "unknown"


class CallDirection(StrEnum):
    """Direction of a live call or CDR, normalised; the wire text is kept beside it."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"
    UNKNOWN = "unknown"


class TransferOperation(StrEnum):
    """What ``atxferoperate`` does with an attended transfer in progress.

    COMPLETE is what field clients send (verified on real devices); CANCEL is the
    Asterisk-style counterpart nobody has been seen sending (unverified).
    """

    COMPLETE = "complete"
    CANCEL = "cancel"


class DeviceStatus(StrEnum):
    """What the PBX says on its ``status`` topic (its MQTT will message)."""

    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class ListenMode(StrEnum):
    """Modes of the ``listen`` command."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


class Permission(StrEnum):
    """Outbound permission of an extension; the value is what the wire carries."""

    INTERNAL = "0"
    IN_HOUSE = "1"
    LOCAL = "2"
    NATIONAL = "3"
    INTERNATIONAL = "4"


class CallDisposition(StrEnum):
    """Outcome of a call in a CDR (Asterisk dispositions)."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    UNKNOWN = "unknown"


class QueueMemberState(StrEnum):
    """Asterisk device state codes carried as a queue member's ``status``."""

    UNKNOWN = "unknown"
    NOT_IN_USE = "not_in_use"
    IN_USE = "in_use"
    BUSY = "busy"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"
    RINGING = "ringing"
    RING_IN_USE = "ring_in_use"
    ON_HOLD = "on_hold"


@dataclass(frozen=True, slots=True)
class CommandReply:
    """A reply to any command: status, message and the whole payload."""

    success: bool
    message: str
    request_id: str | None
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Answer to ``deviceInfo``."""

    device_name: str
    serial: str
    firmware: str
    system_time: datetime | None
    """PBX local wall-clock time (naive: the PBX does not say its zone)."""
    uptime: timedelta | None
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)

    @property
    def display_name(self) -> str:
        """The device name, or the serial when the PBX has none."""
        return self.device_name or self.serial


@dataclass(frozen=True, slots=True)
class Extension:
    """One entry of ``extension_list``."""

    number: str
    type: ExtensionType
    name: str
    state: ExtensionState
    state_raw: str
    port: str | None = None
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)

    @property
    def own_name(self) -> str | None:
        """Its name, unless blank or just its number again (SIP's default)."""
        name = self.name.strip()
        return name if name and name != self.number else None

    def with_state(self, event: ExtensionStatusEvent) -> Extension:
        """This extension in the state ``event`` reports."""
        # Spelled out rather than dataclasses.replace, which inspects the fields on every
        # call: this runs for every status event.
        return Extension(
            number=self.number,
            type=self.type,
            name=self.name,
            state=event.state,
            state_raw=event.state_raw,
            port=self.port,
            raw=self.raw,
        )


@dataclass(frozen=True, slots=True)
class Trunk:
    """One entry of ``trunk_list``."""

    name: str
    type: TrunkType
    state: TrunkState
    state_raw: str
    port: str | None = None
    line_voltage: float | None = None
    """FXO line voltage (``vbat``) in volts; None for SIP trunks."""
    latency_ms: float | None = None
    """SIP qualify round trip when the state says so (``OK (12 ms)``), else None."""
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


class PartyNamer(Protocol):
    """The name of a party's number, None if unknown; ``dialled``: it was dialled out."""

    def __call__(self, number: str | None, *, dialled: bool = False) -> str | None: ...


@dataclass(frozen=True, slots=True)
class LiveCall:
    """One entry of ``livecall``."""

    callid: str
    caller: str
    source: str
    called: str
    destination: str
    duration: timedelta | None
    state: str
    direction: str
    """The wire text (``Internal``, ``Inbound``...); ``direction_kind`` is its meaning."""
    recording: str
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)
    direction_kind: CallDirection = CallDirection.UNKNOWN

    @property
    def outbound(self) -> bool:
        """Dialled to the outside: ``called`` may carry the outside-line prefix."""
        return self.direction_kind is CallDirection.OUTBOUND

    def involves(self, number: str) -> bool:
        """Whether ``number`` is the caller or the called party."""
        return number in (self.caller, self.called)

    def peer_of(self, number: str) -> str:
        """The other party, as seen from ``number``."""
        return self.called if self.caller == number else self.caller

    def attributes(self, name: PartyNamer) -> dict[str, Any]:
        """Plain data with the parties' names; the called party of an outbound call was dialled."""
        return {
            "caller": self.caller,
            "caller_name": name(self.caller),
            "called": self.called,
            "called_name": name(self.called, dialled=self.outbound),
            "state": self.state,
            "duration": None if self.duration is None else int(self.duration.total_seconds()),
            "direction": self.direction,
        }


def calls_of_extension(calls: Iterable[LiveCall], number: str) -> list[LiveCall]:
    """The live calls extension ``number`` takes part in, as caller or called party."""
    return [call for call in calls if call.involves(number)]


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    """``deviceInfo``, ``extension_list`` and ``trunk_list``, asked together.

    The dicts are new for each snapshot: their holder may keep them up to date (apply).
    """

    device_info: DeviceInfo
    extensions: dict[str, Extension]
    """By number."""
    trunks: dict[str, Trunk]
    """By name."""

    def apply(self, event: ExtensionStatusEvent) -> Extension | None:
        """Put ``event``'s state into its extension; the extension as it was, or None when
        nothing changed (already in that state, or not listed: the next list brings it)."""
        current = self.extensions.get(event.extension)
        if current is None:
            _LOGGER.debug("Status event for unlisted extension %s", event.extension)
            return None
        if current.state == event.state and current.state_raw == event.state_raw:
            return None
        self.extensions[event.extension] = current.with_state(event)
        return current


@dataclass(frozen=True, slots=True)
class DialResult:
    """Answer to ``dial`` and ``listen``: the new call's id."""

    callid: str | None
    message: str
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Queue:
    """One entry of ``queue_list``."""

    number: str
    description: str
    members: tuple[str, ...]
    strategy: str
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class QueueMember:
    """A member (agent) in ``queue_status``."""

    agent: str
    """The extension number (``8004`` also when the PBX says ``PJSIP/8004``)."""
    state: QueueMemberState
    state_code: int | None
    paused: bool | None
    """None when the PBX sent no pause flag or a word this library cannot read."""
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)
    agent_raw: str = ""
    """The agent as the PBX wrote it (``PJSIP/8004``, ``8004``)."""
    state_raw: str = ""
    paused_raw: str = ""


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """Answer to ``queue_status``. Counters are None when the PBX sent nothing usable."""

    queue: str
    strategy: str
    max_callers: int | None
    calls: int | None
    """Calls waiting in the queue now."""
    hold_time: int | None
    """Average hold time, seconds."""
    talk_time: int | None
    """Average talk time, seconds."""
    completed: int | None
    abandoned: int | None
    members: tuple[QueueMember, ...]
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Conference:
    """One entry of ``conf_list``. The PINs are kept out of repr; never expose them."""

    number: str
    description: str
    moderators: tuple[str, ...]
    allow_invite: bool
    wait_for_moderator: bool
    participant_pin: str = field(default="", repr=False)
    moderator_pin: str = field(default="", repr=False)
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


CONFERENCE_PIN_KEYS = frozenset({"participantpassword", "moderatorpassword"})
"""Where a raw ``conf_list`` entry holds the PINs: redact them wherever raw replies show."""


@dataclass(frozen=True, slots=True)
class ConferenceMember:
    """A participant in ``conf_status``."""

    callerid: str
    channel: str
    admin: bool
    marked_user: bool
    wait_marked: bool
    waiting: bool
    muted: bool
    talking: bool
    answered_time: timedelta | None
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ConferenceStatus:
    """Answer to ``conf_status``."""

    conference: str
    members: tuple[ConferenceMember, ...]
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExtensionStatusEvent:
    """``extension_status`` event."""

    extension: str
    state: ExtensionState
    state_raw: str
    ip_address: str | None = None
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InviteEvent:
    """``invite`` event: a call is offered to an extension."""

    from_number: str
    to_number: str
    callid: str | None
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain data under the wire's names."""
        return {"from": self.from_number, "to": self.to_number, "callid": self.callid}


@dataclass(frozen=True, slots=True)
class IvrDtmfEvent:
    """``ivrdtmf`` event: a caller pressed a key in an IVR."""

    ivr: str
    caller: str
    dtmf: str
    callid: str | None
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain data under the wire's names."""
        return {"ivr": self.ivr, "caller": self.caller, "dtmf": self.dtmf, "callid": self.callid}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A CDR from the cdr topic, with the document's name variants normalised."""

    callid: str | None
    src: str
    src_channel: str
    dst: str
    dst_channel: str
    start: datetime | None
    """PBX local time, naive."""
    end: datetime | None
    billsec: int | None
    """Billable seconds."""
    disposition: CallDisposition
    disposition_raw: str
    direction: str
    """The wire text; ``direction_kind`` is its meaning."""
    dtmf: str
    record_file: str
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)
    direction_kind: CallDirection = CallDirection.UNKNOWN

    @property
    def outbound(self) -> bool:
        """Dialled to the outside: ``dst`` may carry the outside-line prefix."""
        return self.direction_kind is CallDirection.OUTBOUND

    @property
    def missed(self) -> bool:
        """Not answered, whatever the direction: NO ANSWER, BUSY, FAILED, an unknown word."""
        return self.disposition is not CallDisposition.ANSWERED

    def as_dict(self) -> dict[str, Any]:
        """Plain data: the normalised fields, times in ISO 8601, the wire's direction."""
        return {
            "callid": self.callid,
            "src": self.src,
            "src_channel": self.src_channel,
            "dst": self.dst,
            "dst_channel": self.dst_channel,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "billsec": self.billsec,
            "disposition": self.disposition.value,
            "disposition_raw": self.disposition_raw,
            "direction": self.direction,
            "dtmf": self.dtmf,
            "record_file": self.record_file,
        }


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event this library does not model; the payload is kept whole."""

    event: str
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain data: the event's name and a copy of its payload."""
        return {"event": self.event, "payload": _plain(self.raw)}


# The events below are newer than the document (seen in the field, see FIELD.md). They
# subclass UnknownEvent so that a consumer written before them still receives them whole,
# as it received them before this library modelled them; match them before UnknownEvent.


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStatusEvent(UnknownEvent):
    """``callstatus`` / ``call_status`` event (field firmware): the calls it lists.

    Field fact: ``calllist: [{caller, called, state, callid, calltype}]``. Field clients
    read it as the PBX's current calls; whether it lists every call or only the changed
    ones is not known, so ``calls`` is what this message said, nothing more.
    """

    calls: tuple[LiveCall, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain data: one name for both spellings (the payload keeps it), the calls typed."""
        return {
            "event": "callstatus",
            "calls": [
                {
                    "callid": call.callid,
                    "caller": call.caller,
                    "called": call.called,
                    "state": call.state,
                    "direction": call.direction_kind.value,
                }
                for call in self.calls
            ],
            "payload": _plain(self.raw),
        }

    def merged_with(self, known: Iterable[LiveCall]) -> tuple[LiveCall, ...]:
        """This event's calls; one already ``known`` keeps its details, takes the new state.

        The event's entries carry no channels or durations (a ``livecall`` poll has them).
        """
        by_id = {call.callid: call for call in known}
        return tuple(
            call if (old := by_id.get(call.callid)) is None else replace(old, state=call.state)
            for call in self.calls
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupEvent(UnknownEvent):
    """``hangup`` event (field firmware: the name is a fact, its fields are guesses)."""

    callid: str | None
    channel: str | None
    caller: str | None = None
    called: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data: the fields read and a copy of the payload."""
        return {
            "event": self.event,
            "callid": self.callid,
            "channel": self.channel,
            "caller": self.caller,
            "called": self.called,
            "payload": _plain(self.raw),
        }

    def ends(self, call: LiveCall) -> bool:
        """Whether this event names ``call``, by call id or by one of its channels."""
        if self.callid is not None and self.callid == call.callid:
            return True
        return self.channel is not None and self.channel in (call.source, call.destination)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStatusEvent(UnknownEvent):
    """A message on the ``status`` topic: ``{"status": "online" | "offline"}``.

    The PBX's MQTT will message (field fact): ``offline`` arrives when the broker lost
    the PBX, ``online`` when it is back. ``event`` is always ``"status"``.
    """

    status: DeviceStatus
    status_raw: str

    @property
    def online(self) -> bool | None:
        """True online, False offline, None when the payload said something else."""
        if self.status is DeviceStatus.UNKNOWN:
            return None
        return self.status is DeviceStatus.ONLINE


@dataclass(frozen=True, slots=True)
class ExtensionCall:
    """Answer to ``extcallinfo`` (field firmware): an extension's current call."""

    extension: str
    callid: str | None
    channel: str | None
    """The extension's own channel (``PJSIP/8001-0000001a``): what to hang up or transfer."""
    peer_channel: str | None
    from_number: str
    to_number: str
    direction: CallDirection
    direction_raw: str
    raw: RawPayload = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, str | None]:
        """The call as plain data, the numbers under ``from`` and ``to`` as the PBX names them."""
        return {
            "callid": self.callid,
            "channel": self.channel,
            "peer_channel": self.peer_channel,
            "from": self.from_number,
            "to": self.to_number,
            "direction": self.direction.value,
            "direction_raw": self.direction_raw,
        }


type PbxEvent = (
    ExtensionStatusEvent
    | InviteEvent
    | IvrDtmfEvent
    | CallRecord
    | CallStatusEvent
    | HangupEvent
    | DeviceStatusEvent
    | UnknownEvent
)


def json_ready(value: object) -> Any:
    """A model (or tuple of models) as JSON-ready data: durations in whole seconds.

    Fields kept out of repr (``raw``, conference PINs) are left out as well.
    """
    if is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: json_ready(getattr(value, item.name)) for item in fields(value) if item.repr
        }
    if isinstance(value, tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, Enum):
        return value.value
    return value

"""Configuration of a simulated PBX: what it has, how it behaves, which quirks it shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from enum import StrEnum

# 2022-12-30 11:53:40 UTC: the era of the vendor's examples. A fixed default start keeps
# call ids, timestamps and CDRs reproducible; the runner replaces it with the wall clock.
DEFAULT_START_TIME = 1672401220.0

# 49:03:10, the uptime of a PBX that has been running for two days (hours exceed 24).
DEFAULT_INITIAL_UPTIME = 49 * 3600 + 3 * 60 + 10.0


class FirmwareProfile(StrEnum):
    """Which firmware the simulator plays (see FIELD.md in the project's spec notes).

    DOCUMENT answers as the vendor document describes: its spelling ``pused``, empty
    lists as ``[]``, directions ``Internal``/``Outbound`` (``Inbound`` for calls from a
    trunk), and ``Failed`` / ``unknown cmd`` to the commands the document lacks.

    FIELD answers as firmware in the field does: ``extcallinfo``, ``atxfer`` and
    ``atxferoperate``; ``queue_paused`` with ``queue: ""`` (every queue of the agent);
    ``paused`` instead of ``pused``; ``{}`` for an empty list (LuCI's encoder); a
    ``callstatus`` event when a call starts, is answered or ends, and a ``hangup`` event
    when it ends; ``{"status": "online"}`` on the ``status`` topic when it connects (and
    ``offline`` as its MQTT will and when it stops); directions ``Inbound``/``Outbound``
    only (a call placed by an extension is ``Outbound``).
    """

    DOCUMENT = "document"
    FIELD = "field"


@dataclass(frozen=True, slots=True)
class Quirks:
    """Deviations seen between the vendor document, its examples and field firmware.

    All off by default (the default wire format already follows the examples). Each one
    on reproduces something a tolerant client must accept.
    """

    lowercase_status: bool = False
    """Replies carry ``"status": "success"`` / ``"failed"`` as field code sees."""
    numbers_as_ints: bool = False
    """Counters, ports, billsec... sent as JSON numbers instead of strings."""
    omit_request_id: bool = False
    """Replies never echo ``request_id`` (some examples in the document lack it)."""
    called_for_callid: bool = False
    """``invite`` / ``ivrdtmf`` name the call id ``called`` as the document's tables do."""
    nested_queue_members: bool = False
    """``queue_status`` nests ``members`` inside ``params`` as the document's table does."""
    vbat_as_string: bool = False
    """FXO ``vbat`` as a string (the table) instead of a number (the example)."""


@dataclass(frozen=True, slots=True)
class PbxConfig:
    """Everything a :class:`~smartpbx_sim.pbx.SimulatedPbx` is built from.

    The same config and seed always give the same extensions, names, PINs, call ids and
    traffic, so tests can assert on exact values.
    """

    token: str = "demo-token"
    serial: str = "XR18132110000787"
    devicename: str = "SPX1004O4S"
    firmware: str = "0.0.1-beta-20220610"
    sip_extensions: int = 12
    fxs_extensions: int = 4
    sip_trunks: int = 2
    fxo_trunks: int = 4
    queues: int = 2
    queue_members: int = 3
    conferences: int = 2
    ivr_numbers: tuple[str, ...] = ("9000",)
    first_sip: int = 8001
    first_fxs: int = 2001
    first_queue: int = 6666
    first_conference: int = 7001
    seed: int = 0
    answer_delay: float | None = 2.0
    """Seconds a called party rings before answering; ``None``: never answers."""
    ring_timeout: float = 30.0
    """Seconds an unanswered call rings before it ends with ``NO ANSWER``."""
    unregistered_ratio: float = 0.2
    """Share of SIP extensions (never the first) that are not registered (Unavailable)."""
    start_time: float = DEFAULT_START_TIME
    """Epoch seconds the simulated clock starts at."""
    initial_uptime: float = DEFAULT_INITIAL_UPTIME
    timezone: tzinfo = field(default=UTC)
    """Zone of ``systemtime`` and CDR timestamps (the PBX prints local time)."""
    quirks: Quirks = field(default_factory=Quirks)
    profile: FirmwareProfile = FirmwareProfile.DOCUMENT
    """Which firmware's habits the PBX shows (FirmwareProfile)."""
    history_size: int = 1000
    """How many published messages :attr:`SimulatedPbx.history` keeps."""

    def __post_init__(self) -> None:
        counts = {
            "sip_extensions": self.sip_extensions,
            "fxs_extensions": self.fxs_extensions,
            "sip_trunks": self.sip_trunks,
            "fxo_trunks": self.fxo_trunks,
            "queues": self.queues,
            "queue_members": self.queue_members,
            "conferences": self.conferences,
        }
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if not self.token or any(c in self.token for c in "/+#"):
            raise ValueError("token must be non-empty and contain no '/', '+' or '#'")
        if not 0.0 <= self.unregistered_ratio <= 1.0:
            raise ValueError("unregistered_ratio must be between 0 and 1")
        if self.answer_delay is not None and self.answer_delay < 0:
            raise ValueError("answer_delay must not be negative")
        object.__setattr__(self, "profile", FirmwareProfile(self.profile))

    @property
    def field_firmware(self) -> bool:
        """Whether the PBX plays the field's firmware (FirmwareProfile.FIELD)."""
        return self.profile is FirmwareProfile.FIELD

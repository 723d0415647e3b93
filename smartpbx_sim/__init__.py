"""A Smart PBX simulator speaking the vendor's MQTT API, for development and tests.

``SimulatedPbx`` is the pure state machine (no I/O, simulated clock); ``SimulatorRunner``
connects one to an MQTT broker; ``python -m smartpbx_sim`` runs it from the command line.
Never shipped with the integration.
"""

from .config import FirmwareProfile, PbxConfig, Quirks
from .errors import PbxError
from .model import CallKind, Direction, Disposition, ExtStatus
from .pbx import Published, SimulatedPbx, Timer, topic_kind
from .traffic import TrafficGenerator

__all__ = [
    "CallKind",
    "Direction",
    "Disposition",
    "ExtStatus",
    "FirmwareProfile",
    "PbxConfig",
    "PbxError",
    "Published",
    "Quirks",
    "SimulatedPbx",
    "Timer",
    "TrafficGenerator",
    "topic_kind",
]
